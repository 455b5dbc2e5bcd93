"""Is the `feed-agent` process that owns a journal row still running?

Why: a manual `post` owns its file (the service never adopts it), so `status` must tell a post that
is still running from one that died (a closed terminal, SIGKILL, a reboot), and only a dead one may be
resumed by another `post`. A pid alone proves little: pids are reused, so the process must also be a
feed-agent and must have started no later than the row it owns was written. Linux answers from /proc;
elsewhere only "some process has that pid" can be asked, which errs on the side of "still running"
(a post that is wrongly taken for alive is refused, never sent twice).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

PROC = Path("/proc")
# A process start time read from /proc is exact to a clock tick; allow a little for rounding.
START_SLACK_SECONDS = 2.0


def is_feed_agent(pid: int | None, *, started_by: datetime | None = None) -> bool:
    """True when `pid` is a running feed-agent that started no later than `started_by` (if given)."""
    if pid is None or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    if not PROC.is_dir():
        return _exists(pid)
    words = _command_words(pid)
    if not words or not _looks_like_feed_agent(words):
        return False  # gone, a zombie (no command line), or another program now has the pid
    started = _start_time(pid)
    return started is None or started_by is None or started <= started_by.timestamp() + START_SLACK_SECONDS


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not knowably ours; refuse to take over
    return True


def _command_words(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [os.fsdecode(word) for word in raw.split(b"\0") if word]


def _looks_like_feed_agent(words: list[str]) -> bool:
    """`…/bin/feed-agent …`, `python -m agent …` or `python …/agent/__main__.py …`."""
    for index, word in enumerate(words[:4]):  # the interpreter and its options come first
        if Path(word).name == "feed-agent" or word.endswith("agent/__main__.py"):
            return True
        if word == "-m" and index + 1 < len(words) and words[index + 1] == "agent":
            return True
    return False


def _start_time(pid: int) -> float | None:
    """When the process started, in seconds since the epoch (field 22 of /proc/PID/stat + boot time)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
        boot = next(
            float(line.split()[1])
            for line in (PROC / "stat").read_text(encoding="ascii").splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name in parentheses may hold spaces
    try:
        ticks = int(fields[19])  # starttime is field 22; fields[0] is field 3 (state)
    except (IndexError, ValueError):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")
