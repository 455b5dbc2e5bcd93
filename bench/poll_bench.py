"""Poll bench: lag and poll count of the agent's finish-aware poller vs a fixed 5 s poller.

Why: an admin feels the lag between Learn finishing a data set and the agent noticing, and Learn
feels every poll. The agent's `Follower` (agent/targets/learn_status.py, paced by
agent/targets/pacing.py) should notice within a fraction of a second with a handful of polls; the
reference is what most SIS scripts do, a status GET every 5 s.

Both pollers follow the very same data set, at the same time, in this process, against the Learn
simulator over HTTP on loopback (a real socket, the real status XML). The simulator processes rows
at a realistic rate (default 100 rows/s, a busy Learn) after a start delay (the queue picking the
set up), so its `finishes_at` says exactly when the last row was done; the lag of a poller is the
moment it saw the set done minus that. Each size is uploaded `--repeats` times at random offsets,
with the fixed poller's phase spread evenly over its interval; all data sets run at once to keep the wall time near
that of the largest.

    .venv/bin/python bench/poll_bench.py [--sizes 500,5000,50000] [--rate 100] [--start-delay 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.records import Progress, Receipt, Submission  # noqa: E402
from agent.settings import LearnTargetSettings, Secret  # noqa: E402
from agent.simulator import LearnSimulator  # noqa: E402
from agent.targets.learn import LearnTarget  # noqa: E402

HEADER = "external_person_key|data_source_key|firstname|lastname|user_id"
FIXED_INTERVAL = 5.0


@dataclasses.dataclass
class Follow:
    """What one poller saw of one data set."""

    polls: int = 0
    noticed: float = 0.0  # time.monotonic() when it saw the set done


@dataclasses.dataclass
class Run:
    rows: int
    finishes_at: float
    agent: Follow
    fixed: Follow


def counted(read: Callable[[Receipt], Progress], follow: Follow) -> Callable[[Receipt], Progress]:
    def read_and_count(receipt: Receipt) -> Progress:
        follow.polls += 1
        return read(receipt)

    return read_and_count


def fixed_poller(target: LearnTarget, receipt: Receipt, rows: int, follow: Follow, phase: float) -> None:
    """The reference: one status GET every 5 s until nothing is queued and every row is accounted for.

    Its first GET comes `phase` seconds after the upload (a fixed schedule has no reason to line up
    with the upload), so its lag is sampled over the whole interval rather than at one point."""
    read = counted(target.status, follow)
    time.sleep(phase)
    started = time.monotonic()
    while True:
        progress = read(receipt)
        if progress.queued == 0 and progress.processed >= rows:
            follow.noticed = time.monotonic()
            return
        polls = follow.polls
        time.sleep(max(0.0, started + polls * FIXED_INTERVAL - time.monotonic()))


def agent_poller(target: LearnTarget, receipt: Receipt, rows: int, follow: Follow) -> None:
    """The agent's own wait(), with the shipped defaults (poll_initial 5 s, poll_max 60 s)."""
    target.status = counted(target.status, follow)  # type: ignore[method-assign]
    target.wait(receipt, rows)
    follow.noticed = time.monotonic()


def one_run(
    sim: LearnSimulator, folder: Path, rows: int, delay: float, phase: float, runs: list[Run], lock: threading.Lock
) -> None:
    time.sleep(delay)
    path = folder / f"users-{rows}-{delay:.3f}.txt"
    lines = [HEADER, *(f"P{i}|SIS|First{i}|Last{i}|user{i}" for i in range(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = LearnTargetSettings(
        name="learn",
        url=sim.url,
        integration=sim.integration,
        username=Secret(sim.username),
        password=Secret(sim.password),
        timeout_minutes=60.0,
    )
    uploader = LearnTarget(settings)
    receipt = uploader.submit(Submission(path=path, name=path.name, object="person", operation="store", rows=rows))
    uploader.close()
    dataset = sim.find(receipt.reference)
    assert dataset is not None and dataset.finishes_at is not None
    run = Run(rows, dataset.finishes_at, Follow(), Follow())
    agent, fixed = LearnTarget(settings), LearnTarget(settings)
    threads = [
        threading.Thread(target=agent_poller, args=(agent, receipt, rows, run.agent)),
        threading.Thread(target=fixed_poller, args=(fixed, receipt, rows, run.fixed, phase)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    agent.close()
    fixed.close()
    with lock:
        runs.append(run)


def report(runs: list[Run], sizes: list[int]) -> None:
    columns = ("agent lag s", "fixed lag s", "agent polls", "fixed polls", "polls ratio")
    print(f"{'rows':>7}" + "".join(f" {column:>12}" for column in columns))
    for size in sizes:
        mine = [run for run in runs if run.rows == size]
        agent_lag = statistics.mean(run.agent.noticed - run.finishes_at for run in mine)
        fixed_lag = statistics.mean(run.fixed.noticed - run.finishes_at for run in mine)
        agent_polls = statistics.mean(run.agent.polls for run in mine)
        fixed_polls = statistics.mean(run.fixed.polls for run in mine)
        print(
            f"{size:7d} {agent_lag:12.2f} {fixed_lag:12.2f} {agent_polls:12.1f} {fixed_polls:12.1f}"
            f" {agent_polls / fixed_polls:11.2f}x"
        )
    worst = max(run.agent.noticed - run.finishes_at for run in runs)
    print(f"worst agent lag over all runs: {worst:.2f} s; lags are means over the repeats of each size")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000,50000", help="rows per data set (comma separated)")
    parser.add_argument("--rate", type=float, default=100.0, help="rows the simulator processes per second")
    parser.add_argument("--start-delay", type=float, default=3.0, help="seconds before Learn starts a set")
    parser.add_argument("--repeats", type=int, default=3, help="data sets per size, at random offsets")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    rng = random.Random(args.seed)
    runs: list[Run] = []
    lock = threading.Lock()
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="poll-bench-") as tmp,
        LearnSimulator(rows_per_second=args.rate, start_delay=args.start_delay) as sim,
    ):
        threads = [
            threading.Thread(
                target=one_run,
                args=(
                    sim,
                    Path(tmp),
                    size,
                    rng.uniform(0, 1),
                    (repeat + rng.random()) * FIXED_INTERVAL / args.repeats,
                    runs,
                    lock,
                ),
            )
            for size in sizes
            for repeat in range(args.repeats)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    print(
        f"Learn simulator over HTTP: {args.rate:g} rows/s, start delay {args.start_delay:g} s, "
        f"{args.repeats} data sets per size, both pollers on each; {time.monotonic() - started:.0f} s wall"
    )
    report(runs, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
