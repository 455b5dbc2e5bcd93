"""Record keys read from real files, and compared in bounded memory (hash buckets on disk)."""

from __future__ import annotations

import csv
from pathlib import Path

from agent import keysets
from tests.support.learn import MEMBERSHIP_HEADER, PEOPLE_HEADER, person_rows, write_flatfile


def all_keys(path: Path, slug: str) -> list[bytes]:
    layout = keysets.layout_of(path, slug)
    assert layout is not None
    return [key for block in keysets.iter_key_blocks(path, layout) for key in block]


def test_keys_are_read_whatever_the_delimiter_line_ending_and_last_newline(tmp_path: Path) -> None:
    for delimiter, newline in (("|", "\n"), (",", "\r\n"), ("\t", "\n")):
        path = write_flatfile(tmp_path / "p.txt", PEOPLE_HEADER, person_rows(3), delimiter=delimiter, newline=newline)
        assert all_keys(path, "person") == [b"P00001", b"P00002", b"P00003"]
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # no newline after the last row
    assert all_keys(path, "person") == [b"P00001", b"P00002", b"P00003"]


def test_a_composite_key_follows_the_columns_wherever_they_stand(tmp_path: Path) -> None:
    header = ("role", "data_source_key", "external_person_key", "external_course_key")
    path = write_flatfile(tmp_path / "m.txt", header, [("Student", "SIS", "P1", "C1"), ("Student", "SIS", "P2", "")])
    layout = keysets.layout_of(path, "membership")
    assert layout is not None and layout.columns == ("external_person_key", "external_course_key")
    assert all_keys(path, "membership") == [b"P1\x1fC1"]  # a row with an empty key part has no key
    assert keysets.key_text(b"P1\x1fC1") == "P1 / C1"


def test_a_header_without_the_key_column_has_no_layout(tmp_path: Path) -> None:
    path = write_flatfile(tmp_path / "m.txt", MEMBERSHIP_HEADER[1:], [("P1", "SIS", "Student")])
    assert keysets.layout_of(path, "membership") is None
    assert keysets.layout_of(path, "no-such-object") is None


def test_data_source_keys_are_the_distinct_values_sorted(tmp_path: Path) -> None:
    rows = [
        ("P1", "SIS_B", "a", "b", "c", "d"),
        ("P2", "SIS_A", "a", "b", "c", "d"),
        ("P3", "SIS_B", "a", "b", "c", "d"),
    ]
    path = write_flatfile(tmp_path / "p.txt", PEOPLE_HEADER, rows)
    layout = keysets.layout_of(path, "person")
    assert layout is not None and keysets.data_source_keys(path, layout) == ("SIS_A", "SIS_B")


def test_compare_counts_distinct_keys_and_writes_every_disabled_key_sorted(tmp_path: Path) -> None:
    old = [[f"K{i:04d}".encode() for i in range(0, 1000)], [b"K0001"]]  # a duplicate counts once
    new = [[f"K{i:04d}".encode() for i in range(100, 1100)]]
    out = tmp_path / "gone.csv"
    difference = keysets.compare(iter(old), iter(new), out, ("external_person_key",))
    assert (difference.baseline, difference.current, difference.disabled, difference.added) == (1000, 1000, 100, 100)
    assert difference.percent_disabled() == 10.0
    assert difference.sample == [f"K{i:04d}".encode() for i in range(50)]
    rows = list(csv.reader(out.read_text(encoding="utf-8").splitlines()))
    assert rows == [["external_person_key"], *([f"K{i:04d}"] for i in range(100))]
    assert [p.name for p in tmp_path.iterdir()] == ["gone.csv"]  # the buckets are cleaned up


def test_a_kept_key_list_reads_back_as_the_files_keys(tmp_path: Path) -> None:
    path = write_flatfile(tmp_path / "p.txt", PEOPLE_HEADER, person_rows(2500))
    layout = keysets.layout_of(path, "person")
    assert layout is not None
    kept = tmp_path / "state" / "person.keys"
    assert keysets.write_key_list(path, layout, kept) == 2500
    assert [key for block in keysets.iter_key_list(kept) for key in block] == all_keys(path, "person")
