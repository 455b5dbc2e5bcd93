"""Idle CPU of the folder watcher with 10,000 ignored files in the drop folder, native vs polling.

Why: network shares (NFS/SMB) are watched by polling, and drop folders collect junk the agent is
told to ignore (`.*`, `*.tmp`, `*.part`, `~*`, reason files). Ignored files must cost (almost)
nothing per polling interval. Each measurement runs in its own child process, so only the
watcher's threads are counted: CPU time (user + system, from /proc/<pid>/stat) over `--seconds`
after a warm-up, as a percentage of one core.

* default: a bare FolderWatcher (the agent's defaults: settle 10 s, rescan 60 s, default ignore list)
* `--agent`: `feed-agent watch` itself, against the Learn simulator (nothing to send; it just idles)

    .venv/bin/python bench/idle_bench.py [--files 10000] [--seconds 20]
    .venv/bin/python bench/idle_bench.py --agent
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

KINDS = ("native", "polling")
IGNORE = (".*", "*.tmp", "*.part", "~*")
TICKS = os.sysconf("SC_CLK_TCK")

# The watcher alone, as the daemon builds it; it prints "started" once its initial scan is done.
WATCHER_CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from agent.watcher import FolderWatcher
    watcher = FolderWatcher({"bench": Path(sys.argv[2])}, settle_seconds=float(sys.argv[4]),
                            rescan_seconds=60.0, observer=sys.argv[3], ignore=sys.argv[5].split(","))
    watcher.start()
    print("started", flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        watcher.stop()
    """
)


def make_ignored(folder: Path, count: int) -> None:
    """A mix of every default ignore pattern plus reason files, as a neglected drop folder has."""
    shapes = (".hidden{:05d}", "export{:05d}.tmp", "users{:05d}.txt.part", "~lock{:05d}", "x{:05d}.txt.reason.txt")
    for i in range(count):
        (folder / shapes[i % len(shapes)].format(i)).write_bytes(b"x")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all threads included (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(process: subprocess.Popen[bytes], warmup: float, seconds: float) -> float:
    """Percent of one core the process used over `seconds`, after `warmup`."""
    time.sleep(warmup)
    start_cpu, start_wall = cpu_seconds(process.pid), time.monotonic()
    time.sleep(seconds)
    used, wall = cpu_seconds(process.pid) - start_cpu, time.monotonic() - start_wall
    return 100.0 * used / wall


def watcher_idle(kind: str, folder: Path, settle: float, warmup: float, seconds: float) -> float:
    argv = [sys.executable, "-c", WATCHER_CHILD, str(ROOT), str(folder), kind, str(settle), ",".join(IGNORE)]
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"started":
            raise SystemExit(f"{kind}: the watcher did not start")
        return measure(process, warmup, seconds)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def agent_idle(kind: str, folder: Path, settle: float, warmup: float, seconds: float) -> float:
    root = folder.parent
    (root / ".env").write_text("LEARN_PASSWORD=sis-password\n", encoding="utf-8")
    ini = root / f"agent-{kind}.ini"
    with LearnSimulator(rows_per_second=1e9) as sim:
        ini.write_text(
            textwrap.dedent(
                f"""
                [agent]
                work_dir = var-{kind}
                env_file = .env
                settle_seconds = {settle}
                observer = {kind}
                [route:sis]
                watch = {folder}
                target = learn
                [target:learn]
                type = learn
                url = {sim.url}
                integration = BBLEARN
                username = sis-integration
                password = ${{LEARN_PASSWORD}}
                [email]
                transport = file
                to = admins@example.edu
                """
            ),
            encoding="utf-8",
        )
        feed_agent = ROOT / ".venv" / "bin" / "feed-agent"
        with (root / f"agent-{kind}.log").open("wb") as log:
            process = subprocess.Popen([str(feed_agent), "-c", str(ini), "watch"], stdout=log, stderr=log)
            try:
                return measure(process, warmup + 2.0, seconds)  # + start-up (imports, recovery)
            finally:
                process.terminate()
                process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="ignored files in the folder")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per observer")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=10.0, help="settle_seconds (the agent's default)")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--agent", action="store_true", help="measure `feed-agent watch` instead of a bare watcher")
    args = parser.parse_args()
    run = agent_idle if args.agent else watcher_idle
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="idle-bench-") as tmp:
        folder = Path(tmp) / "drop"
        folder.mkdir()
        make_ignored(folder, args.files)
        for kind in args.kinds.split(","):
            results[kind] = run(kind, folder, args.settle, args.warmup, args.seconds)
    what = "feed-agent watch" if args.agent else "FolderWatcher"
    print(
        f"idle CPU of {what}, {args.files:,} ignored files, settle_seconds={args.settle:g}, "
        f"{args.seconds:g} s window, {os.cpu_count()} CPUs"
    )
    print(f"{'observer':10}{'% of a core':>13}{'ratio to native':>17}")
    native = results.get("native", 0.0)
    for kind, percent in results.items():
        ratio = f"{percent / native:.1f}x" if native > 0 else "-"
        print(f"{kind:10}{percent:13.2f}{ratio:>17}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
