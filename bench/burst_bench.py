"""Burst benchmark: N small files dropped at once, `feed-agent run` vs a bare requests loop.

Both sides talk to the same Learn simulator (instant processing) on loopback. The baseline is the
least any client must do per file: one POST of the bytes and one dataSetStatus GET. The agent adds
what makes it safe: claim by rename, inspection, SHA-256, journal writes before and after each
step, ordering, archive, a rendered per-file email and a summary. Each side runs as its own child
process so its peak RSS can be read with os.wait4.

    .venv/bin/python bench/burst_bench.py [--files 2000] [--email file|none] [--runs 5]

Single runs move by +-15 % on a small VM, so each round runs the bare loop and then the agent, and the
ratio quoted is the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.simulator import LearnSimulator  # noqa: E402
from bench.benchconfig import write_learn_config  # noqa: E402

HEADER = "external_person_key|data_source_key|firstname|lastname|user_id"

BASELINE = textwrap.dedent(
    """
    import re, sys
    from pathlib import Path
    import requests
    url, folder = sys.argv[1], Path(sys.argv[2])
    session = requests.Session()
    session.auth = ("sis-integration", "sis-password")
    endpoint = url + "/webapps/bb-data-integration-flatfile-BBLEARN/endpoint"
    for path in sorted(folder.iterdir()):
        with path.open("rb") as body:
            reply = session.post(endpoint + "/person/store", data=body, headers={"Content-Type": "text/plain"})
        uid = re.search(r"[0-9a-f]{32}", reply.text).group(0)
        session.get(endpoint + "/dataSetStatus/" + uid).raise_for_status()
    """
)


def make_files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"users{i:05d}.txt").write_text(f"{HEADER}\nP{i}|SIS|First|Last|user{i}\n", encoding="utf-8")


@dataclass(frozen=True)
class Run:
    """One child process: wall seconds, peak RSS in MB, exit code, CPU seconds (user + system)."""

    wall: float
    rss_mb: float
    returncode: int
    cpu: float


def timed_child(argv: list[str]) -> Run:
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    return Run(elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime)


def one_round(sim: LearnSimulator, root: Path, files: int, email: str) -> tuple[Run, Run, bool]:
    """The bare loop, then the agent, each on `files` fresh files; True when the agent sent and
    archived every file."""
    root.mkdir()
    make_files(root / "baseline", files)
    baseline = timed_child([sys.executable, "-c", BASELINE, sim.url, str(root / "baseline")])
    ini = write_learn_config(root, sim.url, email=email)
    make_files(root / "drop", files)
    uploads_before = len(sim.uploads_snapshot())
    agent = timed_child([str(ROOT / ".venv" / "bin" / "feed-agent"), "-c", str(ini), "run"])
    sent = len(sim.uploads_snapshot()) - uploads_before
    archived = len(list((root / "var" / "archive").iterdir()))
    return baseline, agent, sent == files == archived and agent.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--email", default="file", help="[email] transport: file (default) or none")
    parser.add_argument("--runs", type=int, default=5, help="rounds of bare loop then agent (paired medians)")
    args = parser.parse_args()
    rounds: list[tuple[Run, Run]] = []
    complete = True
    print(f"{args.files} files per run, email transport {args.email}, simulator with instant processing, loopback")
    print(
        f"{'round':>5}{'bare wall s':>13}{'agent wall s':>14}{'bare CPU ms/file':>18}"
        f"{'agent CPU ms/file':>19}{'CPU ratio':>11}"
    )
    with (
        tempfile.TemporaryDirectory(prefix="burst-bench-") as tmp,
        LearnSimulator(rows_per_second=1e9, start_delay=0) as sim,
    ):
        for number in range(1, args.runs + 1):
            baseline, agent, ok = one_round(sim, Path(tmp) / str(number), args.files, args.email)
            complete = complete and ok
            rounds.append((baseline, agent))
            per_file = 1000 / args.files
            print(
                f"{number:5d}{baseline.wall:13.2f}{agent.wall:14.2f}{baseline.cpu * per_file:18.2f}"
                f"{agent.cpu * per_file:19.2f}{agent.cpu / baseline.cpu:11.2f}"
            )
    cpu_ratios = [agent.cpu / baseline.cpu for baseline, agent in rounds]
    wall_ratios = [agent.wall / baseline.wall for baseline, agent in rounds]
    agent_cpu = statistics.median(agent.cpu for _, agent in rounds) * 1000 / args.files
    bare_cpu = statistics.median(baseline.cpu for baseline, _ in rounds) * 1000 / args.files
    # A child's ru_maxrss starts at its parent's peak at the fork, and this parent grows as the
    # simulator keeps every upload: the smallest round's figure is the agent's own.
    peak = min(agent.rss_mb for _, agent in rounds)
    print(
        f"CPU per file, medians: agent {agent_cpu:.2f} ms, bare loop {bare_cpu:.2f} ms; paired ratio median "
        f"{statistics.median(cpu_ratios):.2f} (range {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f}; target <= 2.0; "
        "both include the interpreter's start)"
    )
    print(
        f"wall, paired ratio median {statistics.median(wall_ratios):.2f}; agent peak RSS {peak:.0f} MB "
        f"(target <= 120); every file sent and archived: {'yes' if complete else 'NO'}"
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
