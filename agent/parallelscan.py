"""The row scan of a big file split across processes, with exactly the sequential scan's results.

Why: the row scan is CPU-bound (a C-speed pass per 4 MiB block, but one core), so on a big export
`inspect` costs several times `wc -l`. The rows after the header are cut into one byte range per
core, each range starting just after a line end; each process scans its range with the same
`LineCounter` (line numbers counted from its own start), and the parent adds them up in file order,
shifting each range's line numbers by the lines before it. Counts add, and the first few line
numbers of each kind are taken in file order, so problems and line numbers are the same as one pass
would give. Memory stays one block per process. A range that hit a fatal problem (NUL bytes, bad
UTF-8, an endless line) is not merged: the caller scans sequentially, so the wording of that problem
and its line number come from the one place that writes them.

Used where nothing else must see the check's bytes: the `inspect` command, and the pipeline's check
of a Learn file (its digest comes from the upload's own reads). An S3 file's check hashes what it
reads (agent.hashing), which a split scan cannot do. Only a process with one thread forks: a fork
copies no other thread, and a lock another thread held at that moment (logging's, the import
lock) would stay locked for ever in the child; `watch` has its observer threads, so it scans in
one process, while `post`, `run` and `inspect` split.

Each other range runs in a plain `os.fork()` child that sends its pickled counter back through a
pipe, not in a `concurrent.futures` process pool: the pool's modules alone took ~20 ms to import and
its start ~4 ms, 2 % of a 1 GiB `inspect`, for features (a task queue, reuse) a single fan-out
does not need. A child that fails in any way sends nothing and the caller scans sequentially.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
from collections.abc import Callable, Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path

from agent.heap import keep_freed_blocks
from agent.linescan import MAX_REPORTED_LINES, LineCounter, scan_rows

PARALLEL_MIN_BYTES = 64 * 1024 * 1024  # below this, starting processes costs more than it saves
BOUNDARY_PROBE = 64 * 1024


class _Range:
    """The bytes [start, end) of a file, read like a file (what scan_rows needs)."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self.handle = path.open("rb")
        self.handle.seek(start)
        self.left = end - start

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.handle.read(size) if size > 0 else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


def scan_range(
    path: Path, start: int, end: int, columns: Sequence[str], delimiter: str, keys: Sequence[int]
) -> LineCounter:
    """One process's share: its range scanned as if it were a file of its own (lines from 2)."""
    reader = _Range(path, start, end)
    try:
        return scan_rows(reader, b"", columns, delimiter, keys)  # type: ignore[arg-type]
    finally:
        reader.close()


def boundaries(path: Path, start: int, size: int, parts: int) -> list[int]:
    """`parts` + 1 offsets from `start` to `size`, each inner one just after a line end (or at the end)."""
    cuts = [start]
    with path.open("rb") as handle:
        for part in range(1, parts):
            position = max(cuts[-1], start + (size - start) * part // parts)
            while position < size:
                handle.seek(position)
                probe = handle.read(BOUNDARY_PROBE)
                found = probe.find(b"\n")
                if found >= 0:
                    position += found + 1
                    break
                position += len(probe)
            cuts.append(min(position, size))
    cuts.append(size)
    return cuts


def scan_parallel(
    path: Path,
    start: int,
    columns: Sequence[str],
    delimiter: str,
    keys: Sequence[int],
    *,
    workers: int | None = None,
    min_bytes: int | None = None,
) -> LineCounter | None:
    """The scan of the rows from byte `start` to the end, split across processes; None when it is not
    worth it (a small file, one core), not safe (other threads), not possible (the system refused a
    process, or one died) or a range met a fatal problem: then scan sequentially."""
    size = path.stat().st_size
    count = workers or len(os.sched_getaffinity(0))
    if count < 2 or size - start < (PARALLEL_MIN_BYTES if min_bytes is None else min_bytes):
        return None
    if threading.active_count() > 1:  # see the module docstring: never fork beside other threads
        return None
    keep_freed_blocks()  # before the fork: every process of the scan reuses its blocks (agent.heap)
    cuts = boundaries(path, start, size, count)
    ranges = [(path, low, high, columns, delimiter, keys) for low, high in pairwise(cuts)]
    children: list[tuple[int, int]] = []
    theirs: list[LineCounter | None] = []
    try:
        try:
            children.extend(_forked(partial(scan_range, *arguments)) for arguments in ranges[1:])
        except OSError:  # no process to spare (EAGAIN, ENOMEM): one pass, once the others are ended
            return None
        mine = scan_range(*ranges[0])
        while children:
            theirs.append(_collected(children.pop(0)))
    finally:
        for child in children:  # the parent's own part failed or was interrupted: end the others
            _killed(child)
    parts = [mine, *(part for part in theirs if part is not None)]
    if len(parts) != len(ranges) or not all(part.finished for part in parts):
        return None
    return merged(parts, columns, delimiter, keys)


def _forked(work: Callable[[], LineCounter]) -> tuple[int, int]:
    """Run `work` in a forked child; its pid and the pipe its pickled answer comes through.

    The child leaves with `os._exit`: no atexit handler, buffered output or journal connection of
    the parent's runs twice. Anything that goes wrong in it (an exception, a signal) ends it without
    an answer."""
    reading, writing = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(reading)
        os.close(writing)
        raise
    if pid == 0:  # the child
        code = 1
        try:
            os.close(reading)
            with os.fdopen(writing, "wb") as pipe:
                pipe.write(pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(writing)
    return pid, reading


def _collected(child: tuple[int, int]) -> LineCounter | None:
    """A forked child's answer once it has ended; None when it ended without one."""
    pid, reading = child
    try:
        with os.fdopen(reading, "rb") as pipe:
            answer = pipe.read()
    except BaseException:  # interrupted while waiting: the answer is no longer wanted
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not answer:
        return None
    counter = pickle.loads(answer)  # our own child's bytes, through our own pipe
    return counter if isinstance(counter, LineCounter) else None


def _killed(child: tuple[int, int]) -> None:
    """End a child not yet collected whose answer is no longer wanted: no zombie, no open pipe."""
    pid, reading = child
    with contextlib.suppress(OSError):
        os.close(reading)
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)


def merged(parts: Sequence[LineCounter], columns: Sequence[str], delimiter: str, keys: Sequence[int]) -> LineCounter:
    """The counters of consecutive ranges as one counter of the whole, in file order."""
    total = LineCounter(columns, delimiter, keys)
    for part in parts:
        shift = total.line_no - 2  # lines before this range
        total.rows += part.rows
        total.bad_rows += part.bad_rows
        total.bad_rows_trailing += part.bad_rows_trailing
        total.non_ascii = total.non_ascii or part.non_ascii
        _first_lines(total.bad_row_lines, part.bad_row_lines, shift)
        for mine, theirs in zip([*total.empty_keys, total.quoted], [*part.empty_keys, part.quoted], strict=True):
            mine.count += theirs.count
            _first_lines(mine.lines, theirs.lines, shift)
        total.line_no += part.line_no - 2
    total.finished = True
    return total


def _first_lines(kept: list[int], more: list[int], shift: int) -> None:
    for line in more:
        if len(kept) < MAX_REPORTED_LINES:
            kept.append(line + shift)
