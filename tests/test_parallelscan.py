"""The split row scan gives exactly what one sequential pass gives: counts, problems, line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.hashing import ContentHash
from agent.inspection import inspect_file
from agent.linescan import LineCounter, scan_rows
from agent.parallelscan import boundaries, scan_parallel

HEADER = "external_person_key|data_source_key|firstname|lastname|user_id"
COLUMNS = HEADER.split("|")
KEYS = [0, 4]


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


@pytest.mark.parametrize("workers", [2, 3, 7])
def test_a_split_scan_equals_one_pass(tmp_path: Path, workers: int) -> None:
    path = messy_file(tmp_path / "users.txt")
    start = len(HEADER) + 1

    split = scan_parallel(path, start, COLUMNS, "|", KEYS, workers=workers, min_bytes=0)

    assert split is not None
    assert facts(split) == facts(sequential(path, start))
    assert split.bad_rows > 1 and split.empty_keys[0].count > 1 and split.quoted.count > 1


def test_ranges_start_just_after_a_line_end(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt", rows=2_000)
    data = path.read_bytes()
    cuts = boundaries(path, len(HEADER) + 1, len(data), 5)
    assert cuts[0] == len(HEADER) + 1 and cuts[-1] == len(data) and cuts == sorted(cuts)
    assert all(data[cut - 1 : cut] == b"\n" for cut in cuts[1:-1])


def test_a_fatal_problem_in_any_range_leaves_the_scan_to_one_pass(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt")
    data = bytearray(path.read_bytes())
    data[-40] = 0  # a NUL byte in the last range
    path.write_bytes(bytes(data))
    assert scan_parallel(path, len(HEADER) + 1, COLUMNS, "|", KEYS, workers=3, min_bytes=0) is None


def test_small_files_are_scanned_in_one_pass(tmp_path: Path) -> None:
    path = messy_file(tmp_path / "users.txt", rows=100)
    assert scan_parallel(path, len(HEADER) + 1, COLUMNS, "|", KEYS, workers=3) is None


def test_inspect_words_the_same_problems_either_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = messy_file(tmp_path / "users.txt")
    monkeypatch.setattr("agent.parallelscan.PARALLEL_MIN_BYTES", 0)
    split = inspect_file(path)  # the `inspect` command's way: split across processes
    one_pass = inspect_file(path, opener=ContentHash().open)  # the pipeline's way: one hashed pass
    assert split == one_pass
    assert len(split.problems) >= 3 and split.bad_row_lines
