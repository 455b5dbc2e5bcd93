"""Claim, archive, fail and retention on real folders (and a real second filesystem if present)."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent import archive as archive_module
from agent.archive import (
    STAMP_RE,
    archive,
    claim,
    fail,
    original_name,
    prune_archive,
    reason_path,
    split_name,
)

WHEN = datetime(2026, 11, 22, 10, 15, 0, tzinfo=timezone.utc)
STAMP = "20261122T101500Z"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    for folder in ("drop", "processing", "archive", "failed"):
        (tmp_path / folder).mkdir()
    return tmp_path


@pytest.fixture(params=["renameat2", "check-then-rename"])
def rename_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the atomic no-replace rename and with the portable fallback."""
    if request.param == "renameat2" and archive_module._RENAMEAT2 is None:
        pytest.skip("this C library has no renameat2")
    if request.param == "check-then-rename":
        monkeypatch.setattr(archive_module, "_RENAMEAT2", None)
    return str(request.param)


def drop(work: Path, name: str, content: str = "data") -> Path:
    path = work / "drop" / name
    path.write_text(content, encoding="utf-8")
    return path


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stem", "suffixes"),
    [
        ("users.txt", "users", ".txt"),
        ("feed.csv.gz", "feed", ".csv.gz"),
        ("README", "README", ""),
        ("users.2024.spring.txt", "users.2024.spring", ".txt"),
        ("export v1.5.txt", "export v1.5", ".txt"),
        (".hidden", ".hidden", ""),
        (".env.txt", ".env", ".txt"),
        ("trailing.", "trailing.", ""),
        ("...", "...", ""),
        ("élèves.txt", "élèves", ".txt"),
    ],
)
def test_split_name(name: str, stem: str, suffixes: str) -> None:
    assert split_name(name) == (stem, suffixes)
    assert stem + suffixes == name


@pytest.mark.parametrize(
    ("name", "original"),
    [
        ("users.20261122T101500Z.txt", "users.txt"),
        ("users.20261122T101500Z-2.txt", "users.txt"),
        ("feed.20261122T101500Z-13.csv.gz", "feed.csv.gz"),
        ("README.20261122T101500Z", "README"),
        ("users.txt", "users.txt"),
        ("users.2026112T101500Z.txt", "users.2026112T101500Z.txt"),  # not a stamp: one digit short
        ("report20261122T101500Z.txt", "report20261122T101500Z.txt"),  # no dot before it: not ours
    ],
)
def test_original_name(name: str, original: str) -> None:
    assert original_name(name) == original


def test_stamp_re_matches_stamp_and_counter() -> None:
    match = STAMP_RE.search("users.20261122T101500Z-3.txt")
    assert match is not None
    assert (match.group(0), match.group("stamp"), match.group("counter")) == (f".{STAMP}-3", STAMP, "3")


# -- archive ----------------------------------------------------------------------------------------


def test_archive_stamps_the_name_in_utc(work: Path) -> None:
    source = drop(work, "users.txt", "user_id|firstname\n")
    local = WHEN.astimezone(timezone(timedelta(hours=-5)))
    result = archive(source, work / "archive", name="users.txt", when=local)
    assert result == work / "archive" / f"users.{STAMP}.txt"
    assert result.read_text(encoding="utf-8") == "user_id|firstname\n"
    assert not source.exists()


def test_archive_replaces_an_earlier_stamp(work: Path) -> None:
    """An admin moved an archived file back to reprocess it: one stamp, the new one."""
    source = drop(work, "users.20250101T000000Z-2.txt")
    result = archive(source, work / "archive", name=source.name, when=WHEN)
    assert result.name == f"users.{STAMP}.txt"


def test_archive_collisions_count_up_and_never_overwrite(work: Path, rename_mode: str) -> None:
    results = [
        archive(drop(work, "feed.csv.gz", f"copy {n}"), work / "archive", name="feed.csv.gz", when=WHEN)
        for n in range(3)
    ]
    assert [r.name for r in results] == [f"feed.{STAMP}.csv.gz", f"feed.{STAMP}-2.csv.gz", f"feed.{STAMP}-3.csv.gz"]
    assert [r.read_text(encoding="utf-8") for r in results] == ["copy 0", "copy 1", "copy 2"]
    assert all(original_name(r.name) == "feed.csv.gz" for r in results)


def test_archive_creates_the_folder(work: Path) -> None:
    result = archive(drop(work, "README"), work / "new" / "archive", name="README", when=WHEN)
    assert result == work / "new" / "archive" / f"README.{STAMP}"


@pytest.mark.parametrize(
    ("name", "archived"),
    [
        ("users.2024.spring.txt", f"users.2024.spring.{STAMP}.txt"),
        ("no_suffix", f"no_suffix.{STAMP}"),
        (".hidden", f".hidden.{STAMP}"),
        ("trailing.", f"trailing..{STAMP}"),
        ("élèves été.txt", f"élèves été.{STAMP}.txt"),
        ("课程.csv", f"课程.{STAMP}.csv"),
    ],
)
def test_archive_odd_names_round_trip(work: Path, name: str, archived: str) -> None:
    result = archive(drop(work, name), work / "archive", name=name, when=WHEN)
    assert result.name == archived
    assert original_name(result.name) == name
    claimed = claim(drop(work, name), work / "processing")
    assert claimed.name == name


def test_archive_refuses_a_naive_time_and_leaves_the_file(work: Path) -> None:
    source = drop(work, "users.txt")
    with pytest.raises(ValueError, match="timezone-aware"):
        archive(source, work / "archive", name="users.txt", when=datetime(2026, 11, 22, 10, 15))
    assert source.exists()
    assert names(work / "archive") == []


# -- claim ------------------------------------------------------------------------------------------


def test_claim_moves_into_processing(work: Path) -> None:
    source = drop(work, "users.txt", "content")
    result = claim(source, work / "processing")
    assert result == work / "processing" / "users.txt"
    assert result.read_text(encoding="utf-8") == "content"
    assert names(work / "drop") == []


def test_claim_collision_gets_a_counter(work: Path, rename_mode: str) -> None:
    (work / "processing" / "users.txt").write_text("already here", encoding="utf-8")
    (work / "processing" / "users-2.txt").write_text("also here", encoding="utf-8")
    result = claim(drop(work, "users.txt", "new"), work / "processing")
    assert result.name == "users-3.txt"
    assert result.read_text(encoding="utf-8") == "new"
    assert (work / "processing" / "users.txt").read_text(encoding="utf-8") == "already here"
    assert (work / "processing" / "users-2.txt").read_text(encoding="utf-8") == "also here"


def test_claim_of_a_vanished_file(work: Path, rename_mode: str) -> None:
    with pytest.raises(FileNotFoundError):
        claim(work / "drop" / "gone.txt", work / "processing")
    assert names(work / "processing") == []


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem (tmpfs /dev/shm), for the EXDEV path; skipped if there is none."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK) or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no writable second filesystem at /dev/shm")
    with tempfile.TemporaryDirectory(dir=shm, prefix="feed-agent-test-") as folder:
        yield Path(folder)


def test_claim_across_filesystems_copies_then_removes(work: Path, other_filesystem: Path) -> None:
    source = other_filesystem / "users.txt"
    source.write_bytes(b"x" * 300_000)
    os.utime(source, (1_000_000_000, 1_000_000_000))
    (work / "processing" / "users.txt").write_text("taken", encoding="utf-8")
    result = claim(source, work / "processing")
    assert result.name == "users-2.txt"
    assert result.read_bytes() == b"x" * 300_000
    assert result.stat().st_mtime == 1_000_000_000
    assert not source.exists()
    assert names(work / "processing") == ["users-2.txt", "users.txt"]  # no temp file left


def test_exdev_copy_never_overwrites(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection for machines without a second filesystem: the rename reports EXDEV."""
    real_rename = archive_module._rename_noreplace

    def cross_device_for_drop(source: Path, destination: Path) -> None:
        if source.parent == work / "drop":
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(source))
        real_rename(source, destination)

    monkeypatch.setattr(archive_module, "_rename_noreplace", cross_device_for_drop)
    (work / "processing" / "users.txt").write_text("taken", encoding="utf-8")
    result = claim(drop(work, "users.txt", "new"), work / "processing")
    assert result.name == "users-2.txt" and result.read_text(encoding="utf-8") == "new"
    assert (work / "processing" / "users.txt").read_text(encoding="utf-8") == "taken"
    assert names(work / "drop") == [] and names(work / "processing") == ["users-2.txt", "users.txt"]


# -- fail -------------------------------------------------------------------------------------------


def test_fail_moves_and_explains(work: Path) -> None:
    reason = "The header has no column the agent recognises (first line: 'foo|bar')."
    result = fail(drop(work, "users.txt"), work / "failed", name="users.txt", reason=reason, when=WHEN)
    assert result == work / "failed" / "users.txt"
    text = reason_path(result).read_text(encoding="utf-8")
    assert reason_path(result).name == "users.txt.reason.txt"
    assert reason in text
    assert "2026-11-22 10:15:00 UTC" in text
    assert "Fix the problem, then move users.txt back into the drop folder to process it again." in text
    assert names(work / "failed") == ["users.txt", "users.txt.reason.txt"]


def test_fail_collision_names_the_final_file(work: Path, rename_mode: str) -> None:
    first = fail(drop(work, "users.txt", "one"), work / "failed", name="users.txt", reason="first", when=WHEN)
    second = fail(drop(work, "users.txt", "two"), work / "failed", name="users.txt", reason="second", when=WHEN)
    assert second.name == "users-2.txt"
    assert first.read_text(encoding="utf-8") == "one" and second.read_text(encoding="utf-8") == "two"
    second_reason = reason_path(second).read_text(encoding="utf-8")
    assert "second" in second_reason and "move users-2.txt back" in second_reason
    assert "first" in reason_path(first).read_text(encoding="utf-8")


def test_fail_replaces_a_stale_reason_file(work: Path) -> None:
    (work / "failed" / "users.txt.reason.txt").write_text("old reason", encoding="utf-8")
    result = fail(drop(work, "users.txt"), work / "failed", name="users.txt", reason="new reason", when=WHEN)
    assert "new reason" in reason_path(result).read_text(encoding="utf-8")
    assert names(work / "failed") == ["users.txt", "users.txt.reason.txt"]


# -- retention --------------------------------------------------------------------------------------


def test_prune_deletes_only_old_stamped_archive_files(work: Path) -> None:
    now = WHEN + timedelta(days=30)
    old = [archive(drop(work, n), work / "archive", name=n, when=WHEN) for n in ("a.txt", "b.csv.gz", "c")]
    recent = archive(drop(work, "d.txt"), work / "archive", name="d.txt", when=now - timedelta(days=6))
    foreign = work / "archive" / "notes-from-admin.txt"  # no agent stamp: not ours
    foreign.write_text("keep", encoding="utf-8")
    subfolder = work / "archive" / f"old.{STAMP}"  # a folder, even if stamped
    subfolder.mkdir()
    (subfolder / f"inner.{STAMP}.txt").write_text("keep", encoding="utf-8")
    # Stamped and old, but in the other folders: retention never looks there.
    for folder in ("failed", "processing", "drop"):
        (work / folder / f"x.{STAMP}.txt").write_text("keep", encoding="utf-8")
    # mtime does not matter: a just-archived file keeps the SIS export's old mtime.
    os.utime(recent, (0, 0))

    removed = prune_archive(work / "archive", 7, now)

    assert sorted(removed) == sorted(old)
    assert not any(path.exists() for path in old)
    assert recent.exists() and foreign.exists() and (subfolder / f"inner.{STAMP}.txt").exists()
    for folder in ("failed", "processing", "drop"):
        assert (work / folder / f"x.{STAMP}.txt").exists()


def test_prune_with_zero_retention_keeps_everything(work: Path) -> None:
    kept = archive(drop(work, "a.txt"), work / "archive", name="a.txt", when=WHEN)
    assert prune_archive(work / "archive", 0, WHEN + timedelta(days=3650)) == []
    assert kept.exists()


def test_prune_respects_fractional_days_and_missing_folder(work: Path) -> None:
    kept = archive(drop(work, "a.txt"), work / "archive", name="a.txt", when=WHEN)
    assert prune_archive(work / "archive", 0.5, WHEN + timedelta(hours=11)) == []
    assert prune_archive(work / "archive", 0.5, WHEN + timedelta(hours=13)) == [kept]
    assert prune_archive(work / "missing", 1, WHEN) == []


def test_find_moved_finds_the_latest_move_with_the_same_bytes(tmp_path: Path) -> None:
    from agent.archive import claim_names, find_moved

    failed = tmp_path / "failed"
    failed.mkdir()
    (failed / "users.txt").write_text("an older export\n", encoding="utf-8")
    (failed / "users-2.txt").write_text("p1|u1\n", encoding="utf-8")
    size = (failed / "users-2.txt").stat().st_size
    sha = hashlib.sha256(b"p1|u1\n").hexdigest()
    assert find_moved(failed, claim_names("users.txt"), size=size, sha256=sha) == failed / "users-2.txt"
    assert find_moved(failed, claim_names("users.txt"), size=size, sha256="0" * 64) is None
    assert find_moved(failed, claim_names("courses.txt"), size=None, sha256=None) is None


def test_ensure_reason_writes_a_missing_reason_file_only(tmp_path: Path) -> None:
    from agent.archive import ensure_reason, reason_path

    moved = tmp_path / "users.txt"
    moved.write_text("p1|u1\n", encoding="utf-8")
    when = datetime(2026, 11, 22, 10, 15, tzinfo=timezone.utc)
    ensure_reason(moved, "no answer", when, "Do not move it back yet: look in Learn first.")
    text = reason_path(moved).read_text(encoding="utf-8")
    assert "Reason: no answer" in text and text.endswith("Do not move it back yet: look in Learn first.\n")
    ensure_reason(moved, "something else", when)
    assert reason_path(moved).read_text(encoding="utf-8") == text  # an existing one is kept
