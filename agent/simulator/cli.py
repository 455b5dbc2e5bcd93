"""`feed-agent simulate` (and `python -m agent.simulator`): the simulators as a foreground process."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import replace

from agent.simulator.faults import Faults
from agent.simulator.jobapi import OUTCOMES, JobApiSimulator
from agent.simulator.learn import LearnSimulator
from agent.simulator.rows import DELIMITERS


def _retry_after(text: str) -> int | None:
    if text.lower() == "none":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("give 0 or more seconds, or 'none'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: any free port, printed)")
    parser.add_argument("--username", default="sis-integration", help="the integration's username")
    parser.add_argument("--password", default="sis-password", help="the integration's password")
    parser.add_argument("--integration", default="BBLEARN", help="integration id in the URL (default BBLEARN)")
    parser.add_argument("--rows-per-second", type=float, default=500.0, help="processing speed (default 500)")
    parser.add_argument(
        "--start-delay",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="how long a new data set shows nothing queued yet (default 0.2)",
    )
    parser.add_argument(
        "--delimiter",
        choices=tuple(DELIMITERS),
        default="pipe",
        help="the integration's Feed File Delimiter (default pipe, Learn's default); a file written with "
        "another delimiter fails every record, as on a real Learn",
    )
    rest = parser.add_argument_group("Learn REST (OAuth2 token and SIS data set log)")
    rest.add_argument("--rest-key", default="rest-key", help="the REST application's key")
    rest.add_argument("--rest-secret", default="rest-secret", help="the REST application's secret")
    rest.add_argument("--token-seconds", type=float, default=3599.0, help="token lifetime (default 3599)")
    faults = parser.add_argument_group("fault modes (invented, for rehearsing bad days)")
    faults.add_argument("--fail-uploads", type=int, default=0, metavar="N", help="the first N uploads answer 500")
    faults.add_argument("--slow", type=float, default=0.0, metavar="SECONDS", help="delay every answer")
    faults.add_argument(
        "--read-rate", type=float, default=0.0, metavar="BYTES", help="read uploads at most this many bytes/s"
    )
    faults.add_argument("--stuck", action="store_true", help="accepted data sets never leave the queue")
    faults.add_argument("--no-code", action="store_true", help="uploads answer 200 without a reference code")
    faults.add_argument(
        "--html-page", action="store_true", help="uploads answer 200 with an SSO sign-in page (a 32-hex nonce, no code)"
    )
    faults.add_argument(
        "--drop-uploads",
        type=int,
        default=0,
        metavar="N",
        help="the first N uploads are read, then the connection is closed unanswered (not accepted)",
    )
    faults.add_argument(
        "--withhold-answers",
        type=int,
        default=0,
        metavar="N",
        help="the first N uploads are ACCEPTED but never answered (the answer is lost)",
    )
    faults.add_argument(
        "--withhold-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="close a withheld connection after this long (default 0: when the client gives up)",
    )
    faults.add_argument(
        "--throttle-uploads", type=int, default=0, metavar="N", help="the first N uploads answer 429 with Retry-After"
    )
    faults.add_argument("--status-failures", type=int, default=0, metavar="N", help="the first N status requests fail")
    faults.add_argument(
        "--status-failure-code", type=int, default=503, metavar="CODE", help="their status code (default 503)"
    )
    faults.add_argument(
        "--status-503", type=int, default=0, metavar="N", help="the first N status requests answer 503 (older name)"
    )
    faults.add_argument(
        "--retry-after",
        type=_retry_after,
        default=1,
        metavar="SECONDS",
        help="Retry-After on 429 and 503 answers (default 1; 'none' sends none)",
    )
    faults.add_argument("--rest-forbidden", action="store_true", help="log calls answer 403 (entitlement missing)")
    faults.add_argument("--rest-throttle", type=int, default=0, metavar="N", help="the next N REST calls answer 429")
    faults.add_argument(
        "--log-locked-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the log answers 423 this long after processing ends",
    )
    jobs = parser.add_argument_group("AlumnIQ-like job API (off unless --job-api)")
    jobs.add_argument("--job-api", action="store_true", help="also start the job API stand-in")
    jobs.add_argument("--job-api-port", type=int, default=0, help="its port (default 0: any free port, printed)")
    jobs.add_argument("--job-api-key", default="alumniq-api-key", help="the API key it accepts")
    jobs.add_argument("--jobs", default="warehouse", help="comma-separated job names (default warehouse)")
    jobs.add_argument("--job-outcome", choices=OUTCOMES, default="success", help="how every job ends (webhook)")
    jobs.add_argument("--job-notify-seconds", type=float, default=2.0, help="webhook delay (default 2)")
    jobs.add_argument(
        "--job-throttle",
        type=int,
        default=0,
        metavar="N",
        help="the first N job calls answer 429 (or --job-throttle-status) with --retry-after",
    )
    jobs.add_argument("--job-throttle-status", type=int, choices=(429, 503), default=429, help="default 429")


def faults_from_args(args: argparse.Namespace) -> Faults:
    return replace(
        Faults(),
        fail_uploads=args.fail_uploads,
        slow_seconds=args.slow,
        read_bytes_per_second=args.read_rate,
        stuck=args.stuck,
        no_code=args.no_code,
        html_page=args.html_page,
        drop_uploads=args.drop_uploads,
        withhold_answers=args.withhold_answers,
        withhold_seconds=args.withhold_seconds,
        throttle_uploads=args.throttle_uploads,
        status_failures=args.status_failures or args.status_503,
        status_failure_code=args.status_failure_code if args.status_failures else 503,
        retry_after=args.retry_after,
        rest_forbidden=args.rest_forbidden,
        rest_throttle=args.rest_throttle,
        log_locked_seconds=args.log_locked_seconds,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; prints what listens, then one line per upload."""
    simulator = LearnSimulator(
        host=args.host,
        port=args.port,
        username=args.username,
        password=args.password,
        integration=args.integration,
        rows_per_second=args.rows_per_second,
        start_delay=args.start_delay,
        rest_key=args.rest_key,
        rest_secret=args.rest_secret,
        token_seconds=args.token_seconds,
        delimiter=args.delimiter,
    )
    simulator.faults = faults_from_args(args)
    simulator.on_event = lambda message: print(message, flush=True)
    job_api: JobApiSimulator | None = None
    if args.job_api:
        names = [name.strip() for name in args.jobs.split(",") if name.strip()]
        job_api = JobApiSimulator(
            host=args.host,
            port=args.job_api_port,
            api_key=args.job_api_key,
            jobs=names,
            notify_seconds=args.job_notify_seconds,
        )
        for name in names:
            job_api.set_outcome(name, args.job_outcome)
        job_api.throttle(args.job_throttle, args.job_throttle_status, args.retry_after)
        job_api.on_event = lambda message: print(message, flush=True)
    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals can only be caught there
        previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    simulator.start()
    if job_api is not None:
        job_api.start()
    try:
        _announce(simulator, job_api)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if job_api is not None:
            job_api.stop()
        simulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("Learn simulator stopped", flush=True)
    return 0


def _announce(simulator: LearnSimulator, job_api: JobApiSimulator | None) -> None:
    say = _say
    say(
        f"Learn simulator listening on {simulator.url} (integration {simulator.integration}, "
        f"username {simulator.username})"
    )
    say(f"Faults: {simulator.faults.describe()}. Stop with Ctrl-C.")
    say(
        f"  Flat-file uploads: {simulator.endpoint}/<object>/<store|refresh|refreshlegacy|delete> "
        f"({simulator.delimiter}-delimited)"
    )
    say(f"  Data set status:   {simulator.endpoint}/dataSetStatus/<reference code>")
    say(
        f"  REST:              {simulator.rest_base} (token {simulator.token_url}, key {simulator.rest_key}, "
        f"tokens last {simulator.token_seconds:g} s)"
    )
    say(f"  Processing:        {simulator.rows_per_second:g} records/s after {simulator.start_delay:g} s queued")
    if job_api is not None:
        say(f"  Job API:           {job_api.job_url} (jobs {', '.join(sorted(job_api.jobs))})")


def _say(line: str) -> None:
    print(line, flush=True)
