"""The split row scan gives exactly what one sequential pass gives: counts, problems, line numbers."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.hashing import ContentHash
from agent.inspection import inspect_file
from agent.linescan import LineCounter, scan_rows
from agent.parallelscan import boundaries, scan_parallel

HEADER = "external_person_key|data_source_key|firstname|lastname|user_id"
COLUMNS = HEADER.split("|")
KEYS = [0, 4]
ROOT = Path(__file__).resolve().parent.parent
HANG = 120  # seconds: a split scan that waits for a process that never ends fails instead of hanging


def messy_file(path: Path, rows: int = 30_000) -> Path:
    """Good rows with, here and there, a bad column count, an empty key, a quoted value, a blank line,
    accents; and no line end after the last row."""
    lines = [HEADER]
    for i in range(rows):
        if i % 7001 == 5:
            lines.append(f"P{i}|SIS|First|Last")  # a column short
        elif i % 5003 == 7:
            lines.append(f"|SIS|First|Last|user{i}")  # empty key
        elif i % 9001 == 3:
            lines.append(f'P{i}|SIS|"Quoted"|Last|user{i}')
        elif i % 4001 == 11:
            lines.append("")
        else:
            lines.append(f"P{i}|SIS|Zoë{i}|Núñez|user{i}")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def sequential(path: Path, start: int) -> LineCounter:
    with path.open("rb") as handle:
        handle.seek(start)
        return scan_rows(handle, b"", COLUMNS, "|", KEYS)


def facts(counter: LineCounter) -> tuple[object, ...]:
    return (
        counter.rows,
        counter.bad_rows,
        counter.bad_rows_trailing,
        counter.bad_row_lines,
        counter.non_ascii,
        counter.finished,
        counter.line_no,
        [(key.count, key.lines) for key in counter.empty_keys],
        (counter.quoted.count, counter.quoted.lines),
    )


def split_facts(path: str, workers: int, min_bytes: int | None = 0) -> object:
    """The split scan's facts, as JSON, or None when it did not split."""
    split = scan_parallel(Path(path), len(HEADER) + 1, COLUMNS, "|", KEYS, workers=workers, min_bytes=min_bytes)
    return None if split is None else json.loads(json.dumps(facts(split)))


def split_with_a_failing_process(path: str, which: str) -> object:
    """The split scan when one process's part fails (`which`: "child" dies mid-scan without an
    answer, "parent" raises while a child still scans), and what it left behind: the answer or the
    error, whether any child process is left, and how many file descriptors it gained."""
    import agent.parallelscan as parallelscan

    parent, real = os.getpid(), parallelscan.scan_range

    def failing(*arguments: object) -> LineCounter:
        if which == "child" and os.getpid() != parent:
            os.kill(os.getpid(), 9)  # as the OOM killer would
        if which == "parent" and os.getpid() == parent:
            raise OSError("the disk went away")
        if which == "parent":
            threading.Event().wait()  # a child still busy when the parent gives up: never ends by itself
        return real(*arguments)  # type: ignore[arg-type]

    parallelscan.scan_range = failing  # type: ignore[assignment]
    descriptors = _open_descriptors()
    try:
        answer: object = split_facts(path, 3)
    except OSError as exc:
        answer = str(exc)
    return [answer, *_left_behind(descriptors)]


def split_when_a_fork_fails(path: str) -> object:
    """The split scan when the system refuses the second process (the first one was started), whether
    any child process is left, and how many file descriptors it gained."""
    real, forks = os.fork, []

    def refusing() -> int:
        forks.append(1)
        if len(forks) > 1:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real()

    os.fork = refusing  # type: ignore[assignment]
    descriptors = _open_descriptors()
    try:
        answer = split_facts(path, 3)
    finally:
        os.fork = real  # type: ignore[assignment]
    return [answer, *_left_behind(descriptors)]


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _left_behind(descriptors_before: int) -> list[object]:
    """What a split scan left in this process: whether a child process is still there (running or
    unreaped), and how many more file descriptors are open than before it."""
    try:
        os.waitpid(-1, os.WNOHANG)
        children_left = True
    except ChildProcessError:
        children_left = False
    return [children_left, _open_descriptors() - descriptors_before]


def split_inspection(path: str) -> object:
    """What `inspect_file` says when it may split however small the file is."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr("agent.parallelscan.PARALLEL_MIN_BYTES", 0)
    return inspect_file(Path(path)).to_json()


def in_fresh_process(function: str, *arguments: object) -> object:
    """Call one of this module's functions in a new interpreter and return its JSON answer.

    Why: a split scan forks only in a process with no other thread (agent.parallelscan), as `post`,
    `run` and `inspect` are; the test process has the threads of its shared servers."""
    code = (
        "import json, sys; import tests.test_parallelscan as m; "
        f"print(json.dumps(m.{function}(*json.loads(sys.argv[1]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(arguments)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=HANG,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_a_split_scan_equals_one_pass(tmp_path: Path, workers: int) -> None:
    path = messy_file(tmp_path / "users.txt")
    start = len(HEADER) + 1

    split = in_fresh_process("split_facts", str(path), workers)

    assert split is not None
    assert split == json.loads(json.dumps(facts(sequential(path, start))))
    _, bad_rows, _, _, _, _, _, empty_keys, quoted = split  # type: ignore[misc]
    assert bad_rows > 1 and empty_keys[0][0] > 1 and quoted[0] > 1


def test_ranges_start_just_after_a_line_end(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt", rows=2_000)
    data = path.read_bytes()
    cuts = boundaries(path, len(HEADER) + 1, len(data), 5)
    assert cuts[0] == len(HEADER) + 1 and cuts[-1] == len(data) and cuts == sorted(cuts)
    assert all(data[cut - 1 : cut] == b"\n" for cut in cuts[1:-1])


def test_a_fatal_problem_in_any_range_leaves_the_scan_to_one_pass(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt")
    assert in_fresh_process("split_facts", str(path), 3) is not None  # it would split...
    data = bytearray(path.read_bytes())
    data[-40] = 0  # ...but a NUL byte in the last range
    path.write_bytes(bytes(data))
    assert in_fresh_process("split_facts", str(path), 3) is None


def test_a_scanning_process_that_dies_leaves_the_scan_to_one_pass_and_nothing_behind(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt")
    assert in_fresh_process("split_with_a_failing_process", str(path), "child") == [None, False, 0]


def test_when_the_parent_s_part_fails_the_other_processes_are_ended_and_its_error_raised(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt")
    # The children never end by themselves: waiting for them instead of ending them would hang.
    assert in_fresh_process("split_with_a_failing_process", str(path), "parent") == ["the disk went away", False, 0]


def test_a_system_that_refuses_a_process_gets_one_pass_and_no_child_is_left(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt")
    assert in_fresh_process("split_when_a_fork_fails", str(path)) == [None, False, 0]


def test_small_files_are_scanned_in_one_pass(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt", rows=100)
    assert in_fresh_process("split_facts", str(path), 3, None) is None


def test_a_process_with_other_threads_never_forks_to_split(tmp_path: Path) -> None:
    """A fork copies only the calling thread; a lock another thread held at that moment would stay
    locked in the child. `watch` has its observer threads: it scans in one process."""
    path = messy_file(tmp_path / "users.txt")
    assert in_fresh_process("split_facts", str(path), 3) is not None  # alone, this process would split
    release = threading.Event()
    other = threading.Thread(target=release.wait, name="other")
    other.start()
    try:
        assert scan_parallel(path, len(HEADER) + 1, COLUMNS, "|", KEYS, workers=3, min_bytes=0) is None
    finally:
        release.set()
        other.join()


def test_inspect_words_the_same_problems_either_way(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt")
    split = in_fresh_process("split_inspection", str(path))  # `inspect`'s way: split across processes
    one_pass = inspect_file(path, opener=ContentHash().open)  # an S3 check's way: one hashed pass
    assert split == json.loads(json.dumps(one_pass.to_json()))
    assert len(one_pass.problems) >= 3 and one_pass.bad_row_lines
