"""Burst benchmark: N small files dropped at once, `feed-agent run` vs a bare requests loop.

Both sides talk to the same Learn simulator (instant processing) on loopback. The baseline is the
least any client must do per file: one POST of the bytes and one dataSetStatus GET. The agent adds
what makes it safe: claim by rename, inspection, SHA-256, journal writes before and after each
step, ordering, archive, a rendered per-file email and a summary. Each side runs as its own child
process so its peak RSS can be read with os.wait4.

    .venv/bin/python bench/burst_bench.py [--files 2000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
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


def timed_child(argv: list[str]) -> tuple[float, float, int, float]:
    """Wall seconds, peak RSS in MB, exit code and CPU seconds (user + system) of a child process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--email", default="file", help="[email] transport: file (default) or none")
    args = parser.parse_args()
    agent_cli = ROOT / ".venv" / "bin" / "feed-agent"
    with (
        tempfile.TemporaryDirectory(prefix="burst-bench-") as tmp,
        LearnSimulator(rows_per_second=1e9, start_delay=0) as sim,
    ):
        root = Path(tmp)
        baseline_dir = root / "baseline"
        make_files(baseline_dir, args.files)
        base_wall, base_rss, base_rc, base_cpu = timed_child(
            [sys.executable, "-c", BASELINE, sim.url, str(baseline_dir)]
        )

        ini = write_learn_config(root, sim.url, email=args.email)
        make_files(root / "drop", args.files)
        uploads_before = len(sim.uploads_snapshot())
        agent_wall, agent_rss, agent_rc, agent_cpu = timed_child([str(agent_cli), "-c", str(ini), "run"])
        sent = len(sim.uploads_snapshot()) - uploads_before
        archived = len(list((root / "var" / "archive").iterdir()))

    print(f"{args.files} files, simulator with instant processing, loopback")
    print(f"{'':28}{'wall s':>9}{'ms/file':>9}{'peak RSS MB':>13}{'exit':>6}")
    print(
        f"{'requests loop (baseline)':28}{base_wall:9.2f}{base_wall * 1000 / args.files:9.2f}{base_rss:13.1f}"
        f"{base_rc:6d}"
    )
    print(f"{'feed-agent run':28}{agent_wall:9.2f}{agent_wall * 1000 / args.files:9.2f}{agent_rss:13.1f}{agent_rc:6d}")
    overhead = (agent_wall - base_wall) * 1000 / args.files
    print(
        f"agent/baseline wall ratio: {agent_wall / base_wall:.2f}  (target <= 2.0); "
        f"agent overhead per file: {overhead:.2f} ms; agent peak RSS {agent_rss:.0f} MB (target <= 120)"
    )
    print(
        f"CPU per file: agent {agent_cpu * 1000 / args.files:.2f} ms, bare loop {base_cpu * 1000 / args.files:.2f} ms, "
        f"ratio {agent_cpu / base_cpu:.2f} (target <= 2.0; both include the interpreter's start)"
    )
    print(f"agent sent {sent} files, archived {archived}")
    return 0 if sent == args.files == archived and agent_rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
