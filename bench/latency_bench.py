"""Readiness latency: a file's last write → "ready", minus settle_seconds, native vs polling observer.

Why: the watcher must say "ready" as soon as the readiness rule allows (last change we saw +
settle_seconds), not at the next turn of some fixed tick. Two modes:

* default (watcher only): a FolderWatcher in this process; the time is taken in its `on_change`
  callback, the moment the file shows up ready in `pending()`. This is what the daemon waits on.
* `--agent`: end to end. `feed-agent watch` runs as a child process against the Learn simulator
  (in this process, so both clocks are the same CLOCK_MONOTONIC); the time is taken when the
  simulator accepts the POST. It includes the daemon's loop, claim, inspection and the upload.

Each run writes one small users file in one open/write/close, at a random phase (so the polling
observer's interval is sampled fairly), waits for it, and lets it go. Prints the median, p90 and max
of (ready - last write - settle_seconds) per observer kind and the ratio to native.

    .venv/bin/python bench/latency_bench.py [--runs 30] [--settle 0.5]
    .venv/bin/python bench/latency_bench.py --agent [--runs 20]
"""

from __future__ import annotations

import argparse
import operator
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.simulator import LearnSimulator  # noqa: E402
from agent.watcher import FolderWatcher  # noqa: E402
from bench.benchconfig import write_learn_config  # noqa: E402

HEADER = "external_person_key|data_source_key|firstname|lastname|user_id"
KINDS = ("native", "polling")
WAIT_SECONDS = 30.0


def write_file(path: Path, serial: int) -> float:
    """Write the whole file in one go; the monotonic time right after the last write (and close)."""
    with path.open("w", encoding="utf-8") as out:
        out.write(f"{HEADER}\nP{serial}|SIS|First|Last|user{serial}\n")
    return time.monotonic()


def summary(latencies_ms: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies_ms)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return statistics.median(ordered), p90, ordered[-1]


# ----------------------------------------------------------------------------------------------
# Watcher only


def watcher_runs(kind: str, runs: int, settle: float, rng: random.Random) -> list[float]:
    with tempfile.TemporaryDirectory(prefix=f"latency-{kind}-") as tmp:
        drop = Path(tmp)
        ready_at: dict[Path, float] = {}
        arrived = threading.Condition()
        watcher: FolderWatcher | None = None

        def on_change() -> None:
            now = time.monotonic()
            assert watcher is not None
            with arrived:
                for candidate in watcher.pending():
                    if candidate.ready and candidate.path not in ready_at:
                        ready_at[candidate.path] = now
                arrived.notify_all()

        watcher = FolderWatcher(
            {"bench": drop}, settle_seconds=settle, rescan_seconds=60.0, observer=kind, on_change=on_change
        )
        watcher.start()
        try:
            latencies: list[float] = []
            for serial in range(runs):
                time.sleep(rng.uniform(0.05, 0.6))  # a random phase against any fixed interval
                path = drop / f"users{serial:03d}.txt"
                last_write = write_file(path, serial)
                with arrived:
                    if not arrived.wait_for(partial(operator.contains, ready_at, path), timeout=WAIT_SECONDS):
                        raise SystemExit(f"{kind}: {path.name} was not ready within {WAIT_SECONDS:.0f} s")
                latencies.append((ready_at[path] - last_write - settle) * 1000)
                watcher.take([path])
                path.unlink()
            return latencies
        finally:
            watcher.stop()


# ----------------------------------------------------------------------------------------------
# End to end: feed-agent watch + Learn simulator


def agent_runs(kind: str, runs: int, settle: float, rng: random.Random, window: float = 0.0) -> list[float]:
    feed_agent = ROOT / ".venv" / "bin" / "feed-agent"
    posted: list[float] = []
    arrived = threading.Condition()

    def on_event(message: str) -> None:
        if message.startswith("upload "):
            with arrived:
                posted.append(time.monotonic())
                arrived.notify_all()

    def wait_posts(count: int, what: str) -> None:
        with arrived:
            if not arrived.wait_for(lambda: len(posted) >= count, timeout=WAIT_SECONDS):
                raise SystemExit(f"{kind}: {what} was not posted within {WAIT_SECONDS:.0f} s")

    with (
        tempfile.TemporaryDirectory(prefix=f"latency-agent-{kind}-") as tmp,
        LearnSimulator(rows_per_second=1e9) as sim,
    ):
        sim.on_event = on_event
        root = Path(tmp)
        ini = write_learn_config(root, sim.url, settle=settle, window=window, observer=kind)
        with (root / "agent.log").open("wb") as log:
            agent = subprocess.Popen([str(feed_agent), "-c", str(ini), "watch"], stdout=log, stderr=log)
            try:
                write_file(root / "drop" / "warmup.txt", 0)  # the first batch also proves the agent is up
                wait_posts(1, "the warm-up file")
                latencies: list[float] = []
                for serial in range(1, runs + 1):
                    time.sleep(rng.uniform(0.3, 0.8))  # the previous batch finishes; random phase
                    last_write = write_file(root / "drop" / f"users{serial:03d}.txt", serial)
                    wait_posts(serial + 1, f"users{serial:03d}.txt")
                    latencies.append((posted[serial] - last_write - max(settle, window)) * 1000)
                return latencies
            finally:
                agent.terminate()
                agent.wait(timeout=30)


# ----------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--settle", type=float, default=0.5, help="settle_seconds (default 0.5)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="observer kinds to measure (native,polling)")
    parser.add_argument("--agent", action="store_true", help="end to end: feed-agent watch + Learn simulator")
    parser.add_argument("--window", type=float, default=0.0, help="batch_window_seconds with --agent (default 0)")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    measure: Callable[[str, int, float, random.Random], list[float]] = (
        partial(agent_runs, window=args.window) if args.agent else watcher_runs
    )
    results = {}
    for kind in args.kinds.split(","):
        results[kind] = summary(measure(kind, args.runs, args.settle, random.Random(args.seed)))
    what = "last write -> POST accepted by the simulator" if args.agent else "last write -> on_change says ready"
    waited = (
        f"max(settle_seconds={args.settle:g}, batch_window_seconds={args.window:g})"
        if args.agent
        else (f"settle_seconds={args.settle:g}")
    )
    print(f"{what}, minus {waited}; {args.runs} runs each, {os.cpu_count()} CPUs")
    print(f"{'observer':10}{'median ms':>11}{'p90 ms':>9}{'max ms':>9}{'median/native':>15}")
    native = results.get("native", (0.0, 0.0, 0.0))[0]
    for kind, (median, p90, worst) in results.items():
        ratio = f"{median / native:.1f}x" if native > 0 else "-"
        print(f"{kind:10}{median:11.1f}{p90:9.1f}{worst:9.1f}{ratio:>15}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
