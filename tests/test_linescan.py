"""The fast row scan (`agent.linescan`) on byte streams: exact counts and line numbers across blocks."""

from __future__ import annotations

import io

from agent import linescan
from agent.linescan import scan_rows

COLUMNS = ["external_person_key", "firstname", "lastname", "user_id"]


def scan(body: bytes, block: int | None = None):  # type: ignore[no-untyped-def]
    if block is not None:
        linescan.BLOCK_SIZE = block
    try:
        return scan_rows(io.BytesIO(body), b"", COLUMNS, "|", [0])
    finally:
        linescan.BLOCK_SIZE = 4 * 1024 * 1024


def test_counts_rows_bad_rows_and_empty_keys_with_line_numbers() -> None:
    body = b"P1|A|B|a\n|A|B|b\nP3|A|B\n\nP5|A|B|e\n"
    counter = scan(body)
    assert counter.finished and counter.rows == 4  # the blank line is not a row
    assert counter.bad_rows == 1 and counter.bad_row_lines == [4]  # line 1 is the header
    [empty] = counter.empty_keys
    assert (empty.count, empty.lines) == (1, [3])


def test_every_shape_of_empty_key_is_found_even_in_a_block_that_is_otherwise_clean() -> None:
    """The substring signs that let a clean block skip the per-line pattern must never hide a match:
    each body holds exactly one empty key, of one shape, and nothing else that looks empty."""
    first = ("external_person_key", 0)
    last = ("user_id", 3)
    cases = [
        (b"P1|A|B|a\n|A|B|b\n", first),  # empty first field
        (b"P1|A|B|a\n  |A|B|b\n", first),  # only spaces
        (b"P1|A|B|a\nP2|A|B|\n", last),  # empty last field
        (b"P1|A|B|a\nP2|A|B|\r\n", last),  # empty last field, CRLF
        (b"P1|A|B|a\nP2|A|B| \n", last),  # a space only
        (b"P1|A|B|a\nP2|A||b\n", ("lastname", 2)),  # empty middle field
    ]
    for body, (column, index) in cases:
        counter = scan_rows(io.BytesIO(body), b"", COLUMNS, "|", [index])
        [empty] = counter.empty_keys
        assert (empty.column, empty.count, empty.lines) == (column, 1, [3]), body
    clean = scan_rows(io.BytesIO(b"P1|A|B|a\nP2| A|B C|b\n"), b"", COLUMNS, "|", [0, 1, 3])
    assert [key.count for key in clean.empty_keys] == [0, 0, 0]


def test_exact_across_tiny_blocks() -> None:
    rows = b"".join(b"P%d|A|B|u\n" % i if i % 7 else b"P%d|A|B\n" % i for i in range(1, 200))
    counter = scan(rows, block=64)
    assert counter.rows == 199 and counter.bad_rows == 28
    assert counter.bad_row_lines == [8, 15, 22, 29, 36]  # the first few, numbered from the header's line 1


def test_bad_utf8_and_nul_bytes_stop_the_scan_with_the_line() -> None:
    latin1 = scan("P1|A|B|a\nP2|Zoë|B|b\n".encode("latin-1"))
    assert not latin1.finished and latin1.encoding_failed
    assert "line 3 has the byte 0xEB" in latin1.problems[0]
    binary = scan(b"P1|A|B|a\nP2|\x00|B|b\n")
    assert not binary.finished and "NUL bytes (line 3)" in binary.problems[0]
