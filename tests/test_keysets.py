"""Record keys read from real files, and compared in bounded memory (hash buckets on disk)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("block_size", [8, 64, 4 * 1024 * 1024])
def test_blocks_smaller_than_a_line_or_the_header_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    monkeypatch.setattr(keysets, "BLOCK_SIZE", block_size)
    path = write_flatfile(tmp_path / "p.txt", PEOPLE_HEADER, person_rows(300), newline="\r\n")
    assert all_keys(path, "person") == [f"P{i:05d}".encode() for i in range(1, 301)]
    path.write_bytes(path.read_bytes().rstrip(b"\r\n"))
    assert len(all_keys(path, "person")) == 300
    write_flatfile(path, PEOPLE_HEADER, [])
    assert all_keys(path, "person") == []


def test_a_composite_key_follows_the_columns_wherever_they_stand(tmp_path: Path) -> None:
    header = ("role", "data_source_key", "external_person_key", "external_course_key")
    rows = [("Student", "SIS", "P1", "C1"), ("Student", "SIS", "P2", "")]
    path = write_flatfile(tmp_path / "m.txt", header, rows, newline="\r\n")  # the last key column ends in \r
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
    old, new = tmp_path / "old", tmp_path / "new"
    written = keysets.write_key_set(iter([[f"K{i:04d}".encode() for i in range(0, 1000)], [b"K0001"]]), old)
    assert written == 1001 and keysets.is_key_set(old)  # a duplicate is written, and counted once below
    keysets.write_key_set(iter([[f"K{i:04d}".encode() for i in range(100, 1100)]]), new)
    out = tmp_path / "held" / "gone.csv"
    out.parent.mkdir()
    difference = keysets.compare(old, new, out, ("external_person_key",))
    assert (difference.baseline, difference.current, difference.disabled, difference.added) == (1000, 1000, 100, 100)
    assert difference.percent_disabled() == 10.0
    assert difference.sample == [f"K{i:04d}".encode() for i in range(50)]
    rows = list(csv.reader(out.read_text(encoding="utf-8").splitlines()))
    assert rows == [["external_person_key"], *([f"K{i:04d}"] for i in range(100))]
    assert [p.name for p in out.parent.iterdir()] == ["gone.csv"]  # the sorted runs are cleaned up


@pytest.mark.parametrize("in_memory", [True, False])
def test_disabled_keys_needing_csv_quotes_are_quoted_sorted_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    monkeypatch.setattr(keysets, "SORT_IN_MEMORY", 10**6 if in_memory else 0)  # else: merged from files
    old_keys = [f"C{i % 7}\x1fP{i:03d}".encode() for i in range(300)] + [b'C,1\x1fP"9']
    keysets.write_key_set(iter([old_keys]), tmp_path / "old")
    keysets.write_key_set(iter([old_keys[100:300]]), tmp_path / "new")
    difference = keysets.compare(tmp_path / "old", tmp_path / "new", tmp_path / "gone.csv", ("course", "person"))
    rows = list(csv.reader(io.StringIO((tmp_path / "gone.csv").read_text(encoding="utf-8"))))
    expected = sorted([*old_keys[:100], old_keys[-1]])
    assert rows == [["course", "person"], *(keysets.key_fields(key) for key in expected)]
    assert difference.sample == expected[:50] and difference.disabled == 101


def test_a_key_set_spreads_keys_the_same_way_in_every_process(tmp_path: Path) -> None:
    """The kept key set of the last delivery is compared with a new one written by another process."""
    path = write_flatfile(tmp_path / "p.txt", PEOPLE_HEADER, person_rows(2500))
    layout = keysets.layout_of(path, "person")
    assert layout is not None
    keysets.write_key_set(keysets.iter_key_blocks(path, layout), tmp_path / "here")
    code = (
        "import sys; from pathlib import Path; from agent import keysets; p = Path(sys.argv[1]); "
        "keysets.write_key_set(keysets.iter_key_blocks(p, keysets.layout_of(p, 'person')), Path(sys.argv[2]))"
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "there")], check=True, timeout=60)
    for bucket in sorted((tmp_path / "here").iterdir()):
        assert bucket.read_bytes() == (tmp_path / "there" / bucket.name).read_bytes()
    keys = b"".join(b.read_bytes() for b in (tmp_path / "here").iterdir()).split()
    assert sorted(keys) == all_keys(path, "person")


@pytest.mark.parametrize("block_size", [7, 4 * 1024 * 1024])  # 7: pieces end inside a UTF-16 character
@pytest.mark.parametrize(
    ("encoding", "declared"), [("utf-16", "utf-8"), ("utf-16-be", "utf-8"), ("latin-1", "latin-1")]
)
def test_utf16_and_latin1_files_give_their_keys_as_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int, encoding: str, declared: str
) -> None:
    monkeypatch.setattr(keysets, "BLOCK_SIZE", block_size)
    rows = [("JOSÉ-01", "SIS", "José", "Núñez", "jose", "j@example.edu"), *person_rows(20)]
    text = "\r\n".join("|".join(row) for row in [PEOPLE_HEADER, *rows]) + "\r\n"
    path = tmp_path / "p.txt"
    path.write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.encode(encoding))
    with keysets.utf8_text(path, declared, tmp_path / "scratch") as utf8:
        assert all_keys(utf8, "person") == ["JOSÉ-01".encode(), *(f"P{i:05d}".encode() for i in range(1, 21))]
    assert list((tmp_path / "scratch").iterdir()) == []  # the copy is gone
    plain = write_flatfile(tmp_path / "u.txt", PEOPLE_HEADER, rows)
    with keysets.utf8_text(plain, "utf-8", tmp_path / "scratch") as same:
        assert same == plain  # a UTF-8 route's file is read in place: no copy
