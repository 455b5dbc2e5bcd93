"""How long does the refresh guard's key comparison take on two 2,000,000-row person files, next to
`feed-agent inspect` of the same file, and how much memory does it need?

Why this shape: a refresh is compared key by key with the last delivered file before it is sent, so
the comparison sits on the path of every refresh, right after inspection. It must stay within 2x the
time of inspecting the file and under 200 MB however many keys there are (issue 17). The comparison
is timed as the agent runs it (in CPU seconds, which a busy shared machine does not inflate as
it does wall time): `Guards.check` on a refresh whose baseline (the previous file, in a
journal as the last delivery of the feed) has 15 % of its people swapped for others, so the held
reason and the CSV of 300,000 disabled keys are written too. Each measurement runs in a child
process (peak RSS from `os.wait4`), twice, keeping the best wall time, from the page cache.

Usage: .venv/bin/python bench/keyset_bench.py [--rows 2000000] [--swapped-percent 15] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inspect_bench import HEADER, ROOT, person_lines, run_child, warm_cache

TARGET_RATIO = 2.0
TARGET_RSS_MB = 200.0

# The child: a journal whose last delivered refresh of person is `old`, then the guard on `new`.
CHECK = """
import json, sys, time
from pathlib import Path
from agent.guard import Guards
from agent.inspection import inspect_file
from agent.journal import Journal
from agent.records import FileOutcome, Receipt, Result, Status
from agent.settings import LearnTargetSettings, Secret

old, new, work, rows, mode = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
settings = LearnTargetSettings("learn", "https://learn.example.edu", "BBLEARN", Secret("u"), Secret("p"))


def outcome(file_id, name):
    return FileOutcome(name=name, route="weekly", target="learn", target_type="learn", status=Status.SUCCESS,
                       rows=rows, object="person", operation="refresh", file_id=file_id)


def arrived(journal, path):
    file_id = journal.add_file(route="weekly", target="learn", name=path.name, source_path=path)
    journal.inspected(file_id, rows=rows, size=path.stat().st_size, object="person", operation="refresh", sha256=None)
    return file_id


with Journal(work / "journal.sqlite3") as journal:
    guards = Guards(journal, work / "keysets", work / "failed")
    last = arrived(journal, old)
    if mode == "kept":  # the last refresh went through the guard too: its key set was kept
        guards.check(settings, outcome(last, old.name), old)
    journal.submitted(last, Receipt("learn", "learn", "ref"))
    journal.finished(last, Result(Status.SUCCESS))
    journal.archived(last, old)
    guards.delivered(outcome(last, old.name))
    file_id = arrived(journal, new)
    started, cpu = time.perf_counter(), time.process_time()
    inspection = inspect_file(new)
    inspected, inspected_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    verdict = guards.check(settings, outcome(file_id, new.name), new)
    compared, compared_cpu = time.perf_counter() - started, time.process_time() - cpu
    record = journal.file(file_id)
print(json.dumps({"held": verdict.held is not None, "disabled": record.disabled_keys, "added": record.added_keys,
                  "rows": inspection.rows, "inspect": inspected, "check": compared,
                  "inspect_cpu": inspected_cpu, "check_cpu": compared_cpu}))
"""


TIMES = ("inspect", "check", "inspect_cpu", "check_cpu")


def cpu_run(command: list[str]) -> tuple[float, float, float]:
    """CPU seconds (user + system: what the work costs, however busy the machine), wall seconds and
    peak RSS (MB) of one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=ROOT)
    _, _, usage = os.wait4(process.pid, 0)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - start, usage.ru_maxrss / 1024


def write_people(path: Path, first: int, rows: int, seed: int) -> None:
    """`rows` person rows with keys P{first}… (the inspect benchmark's realistic rows)."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        out.write(HEADER.encode() + b"\n")
        for start in range(first, first + rows, 20_000):
            out.write(person_lines(start, min(20_000, first + rows - start), rng).encode("utf-8"))


def generate_in_child(path: Path, first: int, rows: int) -> None:
    """In a child, so this launcher's peak RSS (inherited by every child it starts) stays small."""
    command = [sys.executable, __file__, "--generate-to", str(path), "--first", str(first), "--rows", str(rows)]
    subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows in each file")
    parser.add_argument("--swapped-percent", type=float, default=15.0, help="share of people replaced")
    parser.add_argument("--dir", type=Path, help="where to generate (default: a new temporary folder)")
    parser.add_argument("--runs", type=int, default=2, help="runs per tool; the best is reported")
    parser.add_argument("--generate-to", type=Path, help=argparse.SUPPRESS)  # internal: the child's job
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_to:
        write_people(args.generate_to, args.first, args.rows, seed=args.first)
        return 0

    folder = Path(tempfile.mkdtemp(prefix="keyset-bench-", dir=args.dir))
    old, new = folder / "old.txt", folder / "new.txt"
    swapped = int(args.rows * args.swapped_percent / 100)
    try:
        started = time.perf_counter()
        generate_in_child(old, 0, args.rows)
        generate_in_child(new, swapped, args.rows)  # the first `swapped` people gone, as many new ones
        size_mb = new.stat().st_size / (1024 * 1024)
        print(f"generated 2 x {args.rows:,} rows ({size_mb:,.0f} MiB each) in {time.perf_counter() - started:.1f} s")
        for path in (old, new):
            warm_cache(path)
        cli = min(cpu_run([sys.executable, "-m", "agent", "inspect", "--json", str(new)]) for _ in range(args.runs))
        print(f"`feed-agent inspect` (a process): {cli[0]:.2f} s CPU, {cli[1]:.2f} s wall, {cli[2]:.1f} MB peak RSS")
        ok = True
        for mode in ("kept", "archive"):
            best: dict[str, float] = {}
            rss = 0.0
            for _ in range(args.runs):  # a fresh journal and state folder each time
                shutil.rmtree(folder / "work", ignore_errors=True)
                (folder / "work").mkdir()
                command = [sys.executable, "-c", CHECK, str(old), str(new), str(folder / "work"), str(args.rows), mode]
                done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
                answer = json.loads(done.stdout)
                best = {k: min(v, best.get(k, v)) for k, v in answer.items() if k in TIMES}
                rss = max(rss, run_child(command).rss_mb)  # the same run again, for its peak memory
            if answer["disabled"] != swapped or not answer["held"] or answer["rows"] != args.rows:
                print(f"WARNING: expected {swapped:,} disabled keys and a hold: {answer}", file=sys.stderr)
            ratio = best["check_cpu"] / cli[0]
            ratio_ok, rss_ok = ratio <= TARGET_RATIO, rss < TARGET_RSS_MB
            ok = ok and ratio_ok and rss_ok
            print(
                f"baseline from {'the kept key set' if mode == 'kept' else 'the archived file'}: "
                f"Guards.check {best['check_cpu']:.2f} s CPU ({best['check']:.2f} s wall) = {ratio:.2f} x "
                f"`feed-agent inspect` (target <= {TARGET_RATIO:g}: {'ok' if ratio_ok else 'OVER'}); "
                f"{best['check_cpu'] / best['inspect_cpu']:.2f} x inspect_file() in the same process "
                f"({best['inspect_cpu']:.2f} s CPU); peak RSS {rss:.1f} MB "
                f"(target < {TARGET_RSS_MB:g}: {'ok' if rss_ok else 'OVER'}); "
                f"held={answer['held']} disabled={answer['disabled']:,} added={answer['added']:,}"
            )
        return 0 if ok else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
