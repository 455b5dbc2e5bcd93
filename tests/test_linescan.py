"""The fast row scan (`agent.linescan`) on byte streams: exact counts and line numbers across blocks."""

from __future__ import annotations

import io

from agent import linescan
from agent.linescan import scan_rows

COLUMNS = ["external_person_key", "firstname", "lastname", "user_id"]


def scan(body: bytes, block: int | None = None):  # type: ignore[no-untyped-def]
    default = linescan.BLOCK_SIZE
    if block is not None:
        linescan.BLOCK_SIZE = block
    try:
        return scan_rows(io.BytesIO(body), b"", COLUMNS, "|", [0])
    finally:
        linescan.BLOCK_SIZE = default


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


def test_a_line_longer_than_the_limit_stops_the_scan_with_its_number_and_one_under_it_is_a_row(
    monkeypatch,
) -> None:  # type: ignore[no-untyped-def]
    """A line longer than a block is gathered across blocks (a file with CR-only line ends is one
    such line); past the limit the scan stops and names it."""
    monkeypatch.setattr(linescan, "MAX_LINE_BYTES", 1024 * 1024)
    long_value = b"x" * (900 * 1024)
    under = scan(b"P1|A|B|a\nP2|" + long_value + b"|B|b\nP3|A|B|c\n", block=4096)
    assert under.finished and under.rows == 3 and under.bad_rows == 0
    over = scan(b"P1|A|B|a\nP2|A|B|b\nP3|" + long_value * 2 + b"|B|c\n", block=4096)
    assert not over.finished
    assert over.problems == ["line 4 is longer than 1 MiB: this is not a flat file (or its line ends are missing)"]


def test_quoted_values_are_found_whether_or_not_their_rows_have_the_right_columns() -> None:
    """Quotes are looked for in the block's structure (its delimiters, line ends, quotes and NULs)
    and taken out of it before the column counts are compared: a quoted value alone is no bad row."""
    clean = scan(b'P1|A|B|a\nP2|"A"|B|b\nP3|A|B|c\n')
    assert clean.finished and clean.rows == 3 and clean.bad_rows == 0
    assert (clean.quoted.count, clean.quoted.lines) == (1, [3])
    short = scan(b'P1|A|B|a\nP2|"A"|B\nP3|A|B|c\n')
    assert short.rows == 3 and short.bad_row_lines == [3] and short.quoted.lines == [3]
    assert scan(b'P1|A|B|a\nP2|A"s|B|b\n').quoted.count == 0  # a quote inside a value is not a quoted value


def test_a_nul_byte_is_named_before_bad_utf8_in_the_same_block() -> None:
    both = scan("P1|A|B|a\nP2|Zoë|B|b\nP3|\x00|B|c\n".encode("latin-1"))
    assert not both.finished and not both.encoding_failed
    assert both.problems == ["the file contains NUL bytes (line 4): it is binary or corrupt, not a text export"]
