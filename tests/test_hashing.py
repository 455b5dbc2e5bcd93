"""The SHA-256 computed from the inspection's own reads: whole-file digests, whatever the check did."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from agent.hashing import ContentHash, base64_digest
from agent.inspection import inspect_csv, inspect_file
from agent.linescan import BLOCK_SIZE
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_clean_multi_block_file_is_inspected_and_hashed_in_the_same_pass(tmp_path: Path) -> None:
    path = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(150_000))
    assert path.stat().st_size > 2 * BLOCK_SIZE
    content = ContentHash()

    result = inspect_file(path, opener=content.open)

    assert result.ok and result.rows == 150_000
    assert content.hexdigest() == sha256(path)
    assert result == inspect_file(path)  # hashing changes nothing the check finds


def test_a_check_that_stops_early_still_yields_the_whole_files_digest(tmp_path: Path) -> None:
    path = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(150_000))
    with path.open("r+b") as handle:  # a NUL byte in the first block: the scan stops there
        handle.seek(200)
        handle.write(b"\x00")
    content = ContentHash()

    result = inspect_file(path, opener=content.open)

    assert any("NUL bytes" in problem for problem in result.problems)
    assert content.hexdigest() == sha256(path)


def test_a_small_file_is_hashed_on_the_reading_thread_with_the_same_digest(tmp_path: Path) -> None:
    """One block or less: no hashing thread (a burst of small files paid one per file), same digest,
    and a check that stops early still yields the whole file's digest."""
    clean = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(50))
    broken = write_flatfile(tmp_path / "broken.txt", PEOPLE_HEADER, person_rows(50))
    with broken.open("r+b") as handle:
        handle.seek(120)
        handle.write(b"\x00")
    for path in (clean, broken):
        content = ContentHash()
        threads_before = threading.active_count()
        inspect_file(path, opener=content.open)
        assert content.reader is not None and content.reader.hasher is None
        assert threading.active_count() == threads_before
        assert content.hexdigest() == sha256(path)


def test_a_csv_upload_is_hashed_by_its_check_too(tmp_path: Path) -> None:
    path = tmp_path / "students.csv"
    path.write_text("id,name\n" + "".join(f"{i},Name {i}\n" for i in range(50_000)), encoding="utf-8")
    content = ContentHash()

    result = inspect_csv(path, opener=content.open)

    assert not result.problems and result.rows == 50_000
    assert content.hexdigest() == sha256(path)


def test_a_file_never_opened_has_no_digest_and_one_hash_opens_one_file(tmp_path: Path) -> None:
    content = ContentHash()
    assert content.hexdigest() is None
    path = write_flatfile(tmp_path / "users.txt", PEOPLE_HEADER, person_rows(1))
    content.open(path).close()
    with pytest.raises(RuntimeError):
        content.open(path)
    assert content.hexdigest() == sha256(path)


def test_the_s3_checksum_form_is_base64_of_the_digest() -> None:
    digest = hashlib.sha256(b"abc")
    assert base64_digest(digest.hexdigest()) == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
