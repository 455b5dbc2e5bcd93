"""Memory bench: the RSS of `feed-agent watch` as thousands of files go through it (plateau, not growth).

Why: `watch` runs for months; whatever it keeps per file or per batch (outcomes, rendered emails,
journal caches) must stop growing. `feed-agent watch` runs as a child process against the Learn
simulator (instant processing) in this process; files are dropped in batches, and after each batch
is archived the child's resident memory (VmRSS from /proc) is read. The reference is the RSS after
the first batch: the bench prints each reading's ratio to it (a plateau stays near 1.0).

    .venv/bin/python bench/memory_bench.py [--files 5000] [--batch 250] [--email file|none]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.simulator import LearnSimulator  # noqa: E402
from bench.benchconfig import write_learn_config  # noqa: E402

HEADER = "external_person_key|data_source_key|firstname|lastname|user_id"
WAIT_SECONDS = 600.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def drop_batch(drop: Path, first: int, count: int) -> None:
    """Each file is written aside and renamed in, as an SIS export job should."""
    for serial in range(first, first + count):
        staged = drop.parent / f"users{serial:05d}.txt"
        staged.write_text(f"{HEADER}\nP{serial}|SIS|First|Last|user{serial}\n", encoding="utf-8")
        staged.rename(drop / staged.name)


def archived(root: Path) -> int:
    folder = root / "var" / "archive"
    return sum(1 for _ in folder.iterdir()) if folder.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=250, help="files dropped at once")
    parser.add_argument("--email", default="file", help="[email] transport: file (default) or none")
    args = parser.parse_args()
    feed_agent = ROOT / ".venv" / "bin" / "feed-agent"
    readings: list[tuple[int, float]] = []
    with (
        tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp,
        LearnSimulator(rows_per_second=1e9, start_delay=0) as sim,
    ):
        root = Path(tmp)
        ini = write_learn_config(root, sim.url, window=0.5, email=args.email)
        with (root / "agent.log").open("wb") as log:
            agent = subprocess.Popen([str(feed_agent), "-c", str(ini), "watch"], stdout=log, stderr=log)
            try:
                for first in range(0, args.files, args.batch):
                    count = min(args.batch, args.files - first)
                    drop_batch(root / "drop", first, count)
                    deadline = time.monotonic() + WAIT_SECONDS
                    while archived(root) < first + count:
                        if time.monotonic() > deadline or agent.poll() is not None:
                            raise SystemExit(f"stuck at {archived(root)} files; see {root / 'agent.log'}")
                        time.sleep(0.2)
                    readings.append((first + count, rss_mb(agent.pid)))
            finally:
                agent.terminate()
                agent.wait(timeout=60)
    reference = readings[0][1]
    print(f"`feed-agent watch` RSS, {args.files} files in batches of {args.batch}, email {args.email}")
    print(f"{'files':>7}{'RSS MB':>9}{'vs first batch':>16}")
    step = max(1, len(readings) // 10)
    for files, mb in readings[step - 1 :: step]:
        print(f"{files:7d}{mb:9.1f}{mb / reference:15.2f}x")
    print(f"first batch {reference:.1f} MB, peak {max(mb for _, mb in readings):.1f} MB (target: plateau <= 60 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
