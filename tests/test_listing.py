"""Listing a folder and probing a file, on real tmp folders: the name filter, lstat only, markers."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.listing import list_folder, marker_base, probe_path, skip_pattern, unsupported_reason

DEFAULT_IGNORE = (".*", "*.tmp", "*.part", "~*")


@pytest.mark.parametrize(
    ("name", "skipped"),
    [
        (".hidden", True),
        ("export.tmp", True),
        ("users.txt.part", True),
        ("~lock.txt", True),
        ("person.txt.reason.txt", True),
        ("person.txt.done", True),  # a ready marker
        (".done", True),
        ("person.txt", False),
        ("export.tmp.txt", False),
        ("reason.txt", False),
        ("name\nwith newline.tmp", True),
        ("done", False),
    ],
)
def test_skip_pattern_covers_ignore_patterns_reason_files_and_markers(name: str, skipped: bool) -> None:
    assert (skip_pattern(DEFAULT_IGNORE, ".done").match(name) is not None) is skipped


def test_skip_pattern_without_patterns_or_suffix_still_skips_reason_files() -> None:
    skip = skip_pattern(())
    assert skip.match("a.txt.reason.txt") and not skip.match("a.txt") and not skip.match("a.txt.done")
    assert marker_base("a.txt.done", ".done") == "a.txt"
    assert marker_base(".done", ".done") is None and marker_base("a.txt", ".done") is None
    assert marker_base("a.txt.done", "") is None


class _CountingEntry:
    """A real DirEntry that notes each stat() call."""

    def __init__(self, entry: os.DirEntry[str], calls: list[str]) -> None:
        self._entry, self._calls, self.name = entry, calls, entry.name

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        self._calls.append(self.name)
        return self._entry.stat(follow_symlinks=follow_symlinks)


@pytest.fixture
def stat_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wraps the real os.scandir so the test sees which entries were stat'ed."""
    calls: list[str] = []
    real_scandir = os.scandir

    class Counting:
        def __init__(self, path: Any) -> None:
            self._inner = real_scandir(path)

        def __enter__(self) -> Iterator[_CountingEntry]:
            return (_CountingEntry(entry, calls) for entry in self._inner)

        def __exit__(self, *exc: object) -> None:
            self._inner.close()

    monkeypatch.setattr(os, "scandir", Counting)
    return calls


def test_ignored_names_are_never_stated_and_markers_come_from_names(tmp_path: Path, stat_calls: list[str]) -> None:
    for i in range(200):
        for shape in (".h{}", "x{}.tmp", "u{}.txt.part", "~l{}", "r{}.txt.reason.txt"):
            (tmp_path / shape.format(i)).write_bytes(b"x")
    (tmp_path / "person.txt").write_text("EXTERNAL_PERSON_KEY\n")
    (tmp_path / "course.txt").write_text("EXTERNAL_COURSE_KEY\n")
    (tmp_path / "course.txt.done").touch()
    (tmp_path / "link.txt").symlink_to(tmp_path / "person.txt")

    listing = list_folder(tmp_path, skip_pattern(DEFAULT_IGNORE, ".done"), ".done")

    assert sorted(stat_calls) == ["course.txt", "link.txt", "person.txt"], "only kept names cost a stat"
    assert listing.present == {tmp_path / "course.txt", tmp_path / "link.txt", tmp_path / "person.txt"}
    assert listing.markers == {"course.txt"}
    modes = {path.name: st.st_mode for path, st in listing.found}
    assert stat.S_ISLNK(modes["link.txt"]), "lstat: a link is seen as a link, never followed"
    assert stat.S_ISREG(modes["person.txt"])


def test_listing_a_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_folder(tmp_path / "not-mounted", skip_pattern(()))


def test_probe_reports_gone_present_and_the_marker(tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    assert probe_path(data).stat is None and not probe_path(data).failed
    assert probe_path(data / "below-a-file").stat is None  # ENOTDIR also means gone
    data.write_text("x")
    seen = probe_path(data, tmp_path / "a.txt.done")
    assert seen.stat is not None and seen.stat.st_size == 1 and not seen.marker_exists
    (tmp_path / "a.txt.done").symlink_to(tmp_path / "nowhere")  # a dangling marker still exists
    assert probe_path(data, tmp_path / "a.txt.done").marker_exists
    too_long = probe_path(tmp_path / ("x" * 300))
    assert too_long.failed and too_long.stat is None  # ENAMETOOLONG: not "gone", try again later


def test_unsupported_reason_names_each_kind_in_words(tmp_path: Path) -> None:
    regular = tmp_path / "a.txt"
    regular.write_text("x")
    link = tmp_path / "link.txt"
    link.symlink_to(regular)
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.txt"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        modes = {p.name: os.lstat(p).st_mode for p in (regular, link, fifo, sock_path, tmp_path)}
    modes["null"] = os.lstat("/dev/null").st_mode
    reasons = {name: unsupported_reason(name, mode, tmp_path) for name, mode in modes.items()}
    assert reasons["a.txt"] is None
    assert "symbolic link" in str(reasons["link.txt"]) and str(tmp_path) in str(reasons["link.txt"])
    assert "is a folder" in str(reasons[tmp_path.name])
    assert "named pipe" in str(reasons["pipe.txt"])
    assert "socket" in str(reasons["sock.txt"])
    assert "device" in str(reasons["null"])
    assert "special file" in str(unsupported_reason("odd", 0, tmp_path))
