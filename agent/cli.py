"""`feed-agent` command line: parse arguments, load the configuration, call the core, map to exit codes.

The exit status is a contract cron jobs rely on: 0 every file completed without record errors,
1 anything failed, was rejected, held, timed out or had record errors, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from agent import __version__, failpoints, interrupts
from agent.config import load_config
from agent.errors import AgentError, ConfigError, os_error_message
from agent.feeds import DELIMITER_NAMES, FEED_TYPES, ORDER_EXPLANATION
from agent.inspection import Inspection, plan_order
from agent.printable import printable, printable_lines
from agent.profiles import LEARN, TargetProfile, profile_for
from agent.records import CheckResult
from agent.settings import OPERATIONS, Config, TargetSettings

log = logging.getLogger(__name__)


class ExitStatus(enum.IntEnum):
    OK = 0
    PROBLEM = 1
    USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on usage errors already; keep its message but add a hint."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.USAGE, f"feed-agent: error: {message} (see 'feed-agent --help')\n")


def build_parser(*, simulator_arguments: bool = True) -> argparse.ArgumentParser:
    """The whole command line; `simulator_arguments=False` leaves `simulate`'s options out, so a
    command that is not `simulate` does not import the simulator package to describe them."""
    parser = _Parser(
        prog="feed-agent",
        description="Delivers SIS flat files to Blackboard Learn, S3 buckets and job APIs, in dependency "
        "order, and reports what happened.",
    )
    parser.add_argument("--version", action="version", version=f"feed-agent {__version__}")
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help="configuration file (default: $FEED_AGENT_CONFIG, else conf/agent.ini of this install)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("watch", help="watch the drop folders until stopped (SIGTERM/SIGINT)")
    run = sub.add_parser("run", help="process every file present now, wait for each, then exit (for cron)")
    run.add_argument("--route", help="only this route's folder (e.g. a weekly refresh route)")
    run.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing when every file succeeded or there was nothing to do; else a short summary "
        "on stderr (cron mails only the nights that need a look)",
    )

    post = sub.add_parser("post", help="send one file by hand and follow it to the end")
    post.add_argument("file", type=Path)
    post.add_argument(
        "--object",
        choices=sorted(FEED_TYPES),
        metavar="SLUG",
        help="Learn object type (default: detected from the header)",
    )
    post.add_argument("--operation", choices=OPERATIONS, help="default: the route's operation")
    post.add_argument("--route", help="route whose target and operation to use (default: the first)")
    post.add_argument("--keep", action="store_true", help="leave the file where it is (no archive)")
    post.add_argument("--force", action="store_true", help="send even if the refresh guard would hold it")

    inspect = sub.add_parser("inspect", help="detect type, delimiter, rows and problems; no network")
    inspect.add_argument("files", nargs="+", type=Path, metavar="FILE")
    inspect.add_argument("--json", action="store_true", help="print a JSON list")
    inspect.add_argument("--object", choices=sorted(FEED_TYPES), metavar="SLUG", help="force the type")
    inspect.add_argument("--route", help="inspect as this route's target would (reads the configuration)")

    status = sub.add_parser("status", help="recent files and batches from the journal")
    status.add_argument("--limit", type=int, default=20)

    history = sub.add_parser("history", help="each feed's recent deliveries from the journal, with a sparkline")
    history.add_argument("--route", help="only this route")
    history.add_argument("--object", choices=sorted(FEED_TYPES), metavar="SLUG", help="only this object type")
    history.add_argument("--days", type=float, default=30, help="how far back (default 30)")

    check = sub.add_parser("check", help="validate the configuration and reach every target and the mail server")
    check.add_argument("--send-test-email", action="store_true")
    check.add_argument(
        "--canary",
        action="store_true",
        help="S3 targets: write a small, clearly named test object (a write-only bucket allows nothing else)",
    )

    errors = sub.add_parser("errors", help="print a delivered file's record log from Learn (saved, or fetched now)")
    errors.add_argument("file", help="the file's name as it arrived, or its reference code")
    errors.add_argument("--csv", action="store_true", help="print the log as CSV")

    demo = sub.add_parser("demo", help="a self-contained demonstration against the built-in simulator")
    demo.add_argument("--dir", type=Path, help="work folder (default: ./demo-run)")

    simulate = sub.add_parser("simulate", help="run the Learn simulator (for demos and tests)")
    if simulator_arguments:
        from agent.simulator import add_arguments

        add_arguments(simulate)
    # Not in the main help (no `help=`): the crash-test points, for FEED_AGENT_FAILPOINT=NAME[:N].
    sub.add_parser("failpoints", description="The crash-test points of FEED_AGENT_FAILPOINT=NAME[:N] (testing only).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    # Importing the simulator package costs every command ~25 ms of start-up; only `simulate` needs
    # its options (a word "simulate" anywhere, even a file name, just brings them in: never fewer).
    parser = build_parser(simulator_arguments="simulate" in words)
    args = parser.parse_args(argv)
    from agent.logs import setup_logging

    setup_logging(verbose=args.verbose, fmt=args.log_format, console_level=_console_level(args))
    try:
        return int(_dispatch(args))
    except ConfigError as exc:
        print(f"feed-agent: configuration error: {exc.message}", file=sys.stderr)
        return ExitStatus.USAGE
    except AgentError as exc:  # every failure we foresee: one plain line, no traceback
        print(f"feed-agent: {exc.message}", file=sys.stderr)
        return exc.exit_status
    except OSError as exc:  # a folder that cannot be read or written, a full disk
        print(f"feed-agent: {os_error_message(exc)}", file=sys.stderr)
        return ExitStatus.PROBLEM
    except KeyboardInterrupt:
        print("feed-agent: interrupted", file=sys.stderr)
        return ExitStatus.PROBLEM
    except Exception as exc:  # a bug: one plain line (secrets masked); its traceback with --verbose
        from agent.logs import redact

        logging.getLogger(__name__).debug("unexpected error", exc_info=exc)
        what = redact(f"{type(exc).__name__}: {exc}")
        print(f"feed-agent: unexpected error ({what}); run again with -v for the details", file=sys.stderr)
        return ExitStatus.PROBLEM


def _console_level(args: argparse.Namespace) -> int | None:
    """What reaches stderr besides a command's own output: `post` narrates each step on stdout, so
    its INFO lines would say everything twice (each poll too); `run --quiet` prints only its summary."""
    from agent.logs import QUIET

    if args.command == "post":
        return logging.WARNING
    if args.command == "run" and getattr(args, "quiet", False):
        return QUIET
    return None


def entry_point() -> None:
    sys.exit(main())


def _load(args: argparse.Namespace) -> Config:
    from agent.logs import register_secrets

    config = load_config(args.config)
    register_secrets(config.secrets())
    return config


def _failpoints_first(command: str) -> int | None:
    """The hidden `failpoints` command, and a bad FEED_AGENT_FAILPOINT refused before any command runs."""
    if command == "failpoints":
        print(failpoints.describe())
        return ExitStatus.OK
    if failpoints.PROBLEM:
        raise ConfigError(failpoints.PROBLEM)
    return None


def _journal_view(command: str, config: Config, args: argparse.Namespace) -> str:
    """The read-only views of the journal: `status` (recent files, batches, jobs) and `history`."""
    if command == "status":
        from agent.commands import status_report

        return status_report(config, limit=args.limit)
    from agent.commands import history

    return history(config, route=args.route, slug=args.object, days=args.days)


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    listed = _failpoints_first(command)
    if listed is not None:
        return listed
    if command == "inspect":
        return _inspect(args)
    if command == "simulate":
        from agent.simulator import run_from_args

        return run_from_args(args)
    if command == "demo":
        from agent.demo import run_demo

        return run_demo(args.dir)
    config = _load(args)
    if command == "check":
        from agent.commands import check

        return _print_checks(check(config, send_test_email=args.send_test_email, canary=args.canary))
    if command in ("status", "history"):
        print(_journal_view(command, config, args))
        return ExitStatus.OK
    if command == "post":
        return _post(args, config)
    if command == "errors":
        from agent.errorlog import print_record_log, record_log_for

        print_record_log(record_log_for(config, args.file), as_csv=args.csv)
        return ExitStatus.OK
    if command == "run":
        from agent.daemon import run_once

        verdict = run_once(config, route_name=args.route)
        for line in verdict.attention:
            print(f"feed-agent: {printable(line)}", file=sys.stderr)  # one line each, names escaped
        return ExitStatus.OK if verdict.ok else ExitStatus.PROBLEM
    if command == "watch":
        from agent.daemon import watch

        return ExitStatus.OK if watch(config) else ExitStatus.PROBLEM
    raise AssertionError(f"unhandled command {command}")


def _post(args: argparse.Namespace, config: Config) -> int:
    """`post`: Ctrl-C or SIGTERM abandons the upload (or ends the polling) and says where the file was left."""
    from agent.meter import terminal_meter
    from agent.posting import post_file

    stop = threading.Event()
    with interrupts.stop_on_signals(stop):
        outcome = post_file(
            config,
            args.file,
            object_slug=args.object,
            operation=args.operation,
            route_name=args.route,
            keep=args.keep,
            force=args.force,
            echo=lambda line: print(printable_lines(line)),  # no ESC from a file name reaches the terminal
            upload_progress=terminal_meter(sys.stdout),
            stop=stop,
        )
    return ExitStatus.OK if outcome.status.ok else ExitStatus.PROBLEM


def _print_checks(results: list[CheckResult]) -> int:
    width = max((len(r.item) for r in results), default=0)
    for result in results:
        mark = ("WARN" if result.warning else "OK  ") if result.ok else "FAIL"
        print(f"{mark} {result.item.ljust(width)}  {result.detail}".rstrip())
    return ExitStatus.OK if all(r.ok for r in results) else ExitStatus.PROBLEM


# ----------------------------------------------------------------------------------------------
# inspect


def _inspect(args: argparse.Namespace) -> int:
    profile, forced, settings, encoding = LEARN, args.object, None, "utf-8"
    if args.route:
        config = _load(args)
        route = config.route(args.route)
        settings = config.target_for(route)
        profile = profile_for(settings.type)
        forced, encoding = forced or route.object, route.encoding
    results = [_inspect_one(path, profile, forced, settings, encoding) for path in args.files]
    ordered = plan_order(results, {r.path: _mtime(Path(r.path)) for r in results})
    if args.json:
        print(json.dumps([r.to_json() for r in ordered], indent=2, ensure_ascii=False))
    else:
        print(render_inspection_table(ordered))
    return ExitStatus.OK if all(r.ok for r in results) else ExitStatus.PROBLEM


def _inspect_one(
    path: Path, profile: TargetProfile, forced: str | None, settings: TargetSettings | None, encoding: str
) -> Inspection:
    if path.is_dir():
        result = Inspection(file=path.name, path=str(path))
        result.problems.append("is a folder, not a file")
        return result
    return profile.inspect(path, forced, settings, encoding)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def render_inspection_table(results: list[Inspection]) -> str:
    """The human table of `inspect`: one line per file in planned order, then problems and notes."""
    headers = ("#", "FILE", "OBJECT", "DELIM", "ROWS", "ENCODING", "RESULT")
    rows = []
    for r in results:
        encoding = (r.encoding or "?") + (" +BOM" if r.bom else "")
        verdict = "ok" if r.ok else f"{len(r.problems)} problem{'s' if len(r.problems) != 1 else ''}"
        delimiter = DELIMITER_NAMES.get(r.delimiter or "", "-")
        if r.expected_delimiter and delimiter not in ("-", r.expected_delimiter):
            delimiter += f" ({r.expected_delimiter} expected)"
        rows.append(
            (str(r.order or ""), printable(r.file), r.object or "unknown", delimiter, f"{r.rows:,}", encoding, verdict)
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(headers)).rstrip()]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    details = []
    for r in results:
        details += [f"  {printable(r.file)}: {problem}" for problem in r.problems]
        details += [f"  {printable(r.file)}: note: {note}" for note in r.notes]
    if details:
        lines += ["", "Details:", *details]
    expected = sorted({r.expected_delimiter for r in results if r.expected_delimiter})
    if expected:
        lines += ["", f"Delimiter: the route's Learn integration reads {' or '.join(expected)}-delimited files only."]
    if len(results) > 1:
        lines += ["", f"Order: {ORDER_EXPLANATION}."]
    return "\n".join(lines)
