"""Upload benchmark: the agent's streamed Learn upload against curl, on the same file and server.

Why: the agent must post files of any size without holding them in memory and without being much
slower than the obvious tool. Each client runs as its own child process; its peak RSS comes from
`os.wait4` (ru_maxrss), its wall time from the parent's clock. The far end is bench/discard_server.py
in another process (hash and discard), so the server's work never competes with the client's GIL.

    .venv/bin/python bench/upload_bench.py --size-mb 256
    .venv/bin/python bench/upload_bench.py            # 1 GiB

Targets (issue 15): agent <= 2x `curl -T` and <= 1.0x `curl --data-binary @` wall time; agent peak
RSS <= 80 MB and flat in file size (curl --data-binary holds the whole file in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agent.hashing import sha256_of

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
FEED_AGENT = REPO / ".venv" / "bin" / "feed-agent"
USERNAME, PASSWORD, INTEGRATION = "bench", "bench-password", "BBLEARN"
HEADER = "external_person_key|data_source_key|firstname|lastname|user_id|email|available_ind\n"

# Run with `python -S -I` so it stays ~7 MB: Linux carries the RSS high-water mark across fork+exec,
# so a child spawned straight from this (larger) process would report at least our own RSS.
LAUNCHER = textwrap.dedent("""
    import json, os, sys, time
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.execvp(sys.argv[2], sys.argv[2:])
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    with open(sys.argv[1], "w") as out:
        json.dump({"seconds": seconds, "maxrss_kb": usage.ru_maxrss,
                   "exit": os.waitstatus_to_exitcode(status)}, out)
""")

AGENT_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from agent.settings import LearnTargetSettings, Secret
    from agent.records import Submission
    from agent.retry import RetryPolicy
    from agent.targets.learn import LearnTarget
    url, path = sys.argv[1], Path(sys.argv[2])
    settings = LearnTargetSettings(name="bench", url=url, integration="BBLEARN", username=Secret("bench"),
                                   password=Secret("bench-password"))
    if path.name != "-":
        receipt = LearnTarget(settings, retry=RetryPolicy(attempts=1)).submit(
            Submission(path=path, name=path.name, object="person", operation="store", rows=0))
        print(receipt.reference)
""")


@dataclass
class Run:
    name: str
    seconds: float
    peak_rss_mb: float
    ok: bool
    note: str = ""


def generate(path: Path, size_mb: int) -> int:
    """A pipe-delimited person file of at most size_mb MiB (whole lines); returns its row count.

    At most, not about: curl --data-binary refuses a file over 1 GiB, and the issue's 1 GiB row
    compares with it at that size, so `--size-mb 1024` must not overshoot by the last block."""
    target = size_mb * 1024 * 1024
    rows, written = 0, len(HEADER)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write(HEADER)
        while True:
            lines = [
                f"P{i:09d}|SIS|First{i}|Last{i}|user{i}|user{i}@example.edu|Y\n"
                for i in range(rows + 1, rows + 100_001)
            ]
            block = "".join(lines)
            if written + len(block) > target:
                for line in lines:  # the last lines that still fit
                    if written + len(line) > target:
                        return rows
                    out.write(line)
                    written += len(line)
                    rows += 1
            out.write(block)
            written += len(block)
            rows += len(lines)


def start_discard_server() -> tuple[subprocess.Popen[str], str, str]:
    """bench/discard_server.py in its own process (its hashing never competes with a client's GIL):
    the process (the caller terminates it), its URL and its person/store upload URL."""
    server = subprocess.Popen(
        [str(PYTHON), str(REPO / "bench" / "discard_server.py"), "--username", USERNAME, "--password", PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    server_url = server.stdout.readline().split()[-1]
    return server, server_url, f"{server_url}/webapps/bb-data-integration-flatfile-{INTEGRATION}/endpoint/person/store"


def measure(name: str, command: list[str], env: dict[str, str] | None, work: Path) -> Run:
    """Runs one child under the lean launcher: wall seconds and peak RSS (os.wait4) of that child alone."""
    report = work / "measure.json"
    launcher = [sys.executable, "-S", "-I", "-c", LAUNCHER, str(report), *command]
    done = subprocess.run(launcher, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    facts = json.loads(report.read_text())
    ok = done.returncode == 0 and facts["exit"] == 0
    output = done.stdout.decode(errors="replace").strip().splitlines() or ["(no output)"]
    note = "" if ok else output[0][:200]
    return Run(name, facts["seconds"], facts["maxrss_kb"] / 1024, ok, note)


def last_upload(server_url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{server_url}/_last", timeout=30) as answer:
        result: dict[str, object] = json.loads(answer.read())
        return result


def feed_agent_config(folder: Path, server_url: str) -> Path | None:
    """A throw-away config for `feed-agent post`, or None when the package is not installed."""
    if not FEED_AGENT.exists():
        return None
    for sub in ("var", "drop"):
        (folder / sub).mkdir(exist_ok=True)
    (folder / ".env").write_text(f"BENCH_USERNAME={USERNAME}\nBENCH_PASSWORD={PASSWORD}\n")
    config = folder / "agent.ini"
    config.write_text(
        textwrap.dedent(f"""
        [agent]
        work_dir = var
        env_file = .env

        [route:learn]
        watch = drop
        target = learn

        [target:learn]
        type = learn
        url = {server_url}
        integration = {INTEGRATION}
        username = ${{BENCH_USERNAME}}
        password = ${{BENCH_PASSWORD}}
        poll_initial_seconds = 0.1
        poll_max_seconds = 0.5

        [email]
        transport = none
    """)
    )
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description="agent upload vs curl: wall time and peak RSS")
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds (clients interleaved); the table shows each client's fastest round",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where to write the file (default: a temp dir)")
    args = parser.parse_args()
    curl = shutil.which("curl") or "/usr/bin/curl"
    if not Path(curl).exists():
        print("curl is missing: apt-get install -y curl", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="upload-bench-", dir=args.dir))
    server, server_url, upload_url = start_discard_server()
    try:
        path = work / "people.txt"
        print(f"generating {args.size_mb} MiB person file in {work} ...", flush=True)
        rows = generate(path, args.size_mb)
        size = path.stat().st_size
        expected_sha = sha256_of(path)
        print(f"{size:,} bytes, {rows:,} rows, sha256 {expected_sha[:16]}...; server {server_url}\n", flush=True)

        env = {**os.environ, "PYTHONPATH": str(REPO)}
        plain = [
            "-H",
            "Content-Type: text/plain; charset=utf-8",
            "-u",
            f"{USERNAME}:{PASSWORD}",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-s",
            "-S",
        ]
        jobs: list[tuple[str, list[str], dict[str, str] | None]] = [
            ("launcher floor (/bin/true)", ["/bin/true"], None),
            ("python + requests baseline (imports only)", [str(PYTHON), "-c", AGENT_CHILD, upload_url, "-"], env),
            ("agent LearnTarget.submit", [str(PYTHON), "-c", AGENT_CHILD, upload_url, str(path)], env),
            ("curl -T (streamed)", [curl, "-X", "POST", "-T", str(path), *plain, upload_url], None),
            ("curl --data-binary @FILE", [curl, "--data-binary", f"@{path}", *plain, upload_url], None),
        ]
        config = feed_agent_config(work, server_url)
        if config is None:
            print("note: `feed-agent post` is not available (yet); measuring LearnTarget.submit only\n")
        else:
            jobs.insert(
                3,
                (
                    "feed-agent post --keep",
                    [str(FEED_AGENT), "-c", str(config), "post", "--keep", "--object", "person", str(path)],
                    env,
                ),
            )

        runs: list[Run] = []
        rounds: list[dict[str, Run]] = []
        for round_number in range(1, max(1, args.repeat) + 1):
            print(f"round {round_number}:", flush=True)
            rounds.append({})
            for name, command, job_env in jobs:
                run = check_run(measure(name, command, job_env, work), server_url, expected_sha, size)
                runs.append(run)
                rounds[-1][name] = run
        print_table(best_of(runs), size)
        print_paired(rounds)
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.ok or "data-binary" in r.name for r in runs) else 1


def check_run(run: Run, server_url: str, expected_sha: str, size: int) -> Run:
    """Confirms the server got every byte intact; prints the run's line."""
    if run.ok and "baseline" not in run.name and "floor" not in run.name:
        received = last_upload(server_url)
        if received.get("sha256") != expected_sha or received.get("size") != size:
            run.ok, run.note = False, f"server received {received.get('size')} bytes, sha mismatch"
        else:
            run.note = "chunked" if received.get("chunked") else "Content-Length"
    outcome = "" if run.ok else "FAILED " + run.note
    print(f"  {run.name}: {run.seconds:.2f} s, {run.peak_rss_mb:.1f} MB {outcome}", flush=True)
    return run


def best_of(runs: list[Run]) -> list[Run]:
    """Per client: the fastest successful round (with the highest RSS seen in any round)."""
    chosen: dict[str, Run] = {}
    for run in runs:
        best = chosen.get(run.name)
        if best is None or (run.ok and (not best.ok or run.seconds < best.seconds)):
            chosen[run.name] = Run(run.name, run.seconds, run.peak_rss_mb, run.ok, run.note)
    for run in runs:
        chosen[run.name].peak_rss_mb = max(chosen[run.name].peak_rss_mb, run.peak_rss_mb)
    return list(chosen.values())


def print_table(runs: list[Run], size: int) -> None:
    reference = next((r for r in runs if r.name.startswith("curl -T")), None)
    print(f"\n{'client':44} {'wall s':>8} {'MB/s':>8} {'peak RSS MB':>12} {'wall/curl-T':>12} {'RSS/curl-T':>11}")
    for run in runs:
        baseline = "baseline" in run.name or "floor" in run.name
        rate = "" if baseline else f"{size / 1048576 / run.seconds:8.1f}"
        ratio_wall = ratio_rss = ""
        if reference and not baseline:
            ratio_wall = f"{run.seconds / reference.seconds:12.2f}"
            ratio_rss = f"{run.peak_rss_mb / reference.peak_rss_mb:11.1f}"
        status = "" if run.ok else "  FAILED: " + run.note
        print(
            f"{run.name:44} {run.seconds:8.2f} {rate:>8} {run.peak_rss_mb:12.1f} {ratio_wall:>12} "
            f"{ratio_rss:>11}{status}"
        )
    print("\n(MB = MiB; peak RSS is ru_maxrss of each child process alone, via os.wait4)")
    agent = next((r for r in runs if r.name.startswith("feed-agent post")), None)
    whole = next((r for r in runs if "data-binary" in r.name), None)
    if agent is not None and whole is not None and whole.ok:
        print(
            f"feed-agent post / curl --data-binary = {agent.seconds / whole.seconds:.2f} (best rounds; target <= 1.0)"
        )
    elif whole is not None:
        print(
            "curl --data-binary could not send this file: it reads the whole file into memory first and "
            "refuses at 1 GiB; compare with it at --size-mb 512"
        )


def print_paired(rounds: list[dict[str, Run]]) -> None:
    """The agent's time over each reference's in the same round: the median and range of those ratios.

    Why paired: this VM moves single runs by 15 % either way; a ratio taken within one round, where
    both clients met the same conditions, is steadier than a ratio of two best-ofs."""
    agent = "feed-agent post --keep"
    for reference, target in (("curl -T (streamed)", "<= 2.0"), ("curl --data-binary @FILE", "<= 1.0")):
        ratios = sorted(
            one[agent].seconds / one[reference].seconds
            for one in rounds
            if agent in one and reference in one and one[agent].ok and one[reference].ok
        )
        if ratios:
            print(
                f"feed-agent post / {reference}: median {statistics.median(ratios):.2f} of {len(ratios)} rounds "
                f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}; target {target})"
            )


if __name__ == "__main__":
    sys.exit(main())
