"""Choosing the observer from /proc/mounts: pure functions, no real mounts needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.mounts import choose_observer, mount_of, parse_mounts, read_mounts

MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
sis:/export/feeds /mnt/feeds nfs4 rw,vers=4.2 0 0
/dev/sdb1 /mnt/feeds/local ext4 rw 0 0
//fileserver/sis /srv/sis\\040share cifs rw,vers=3.0 0 0
user@host:/data /home/agent/remote fuse.sshfs rw,nosuid 0 0
//old/share /srv/smb smb3 rw 0 0
"""


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("/mnt/feeds/drop", "polling"),  # nfs4
        ("/mnt/feeds", "polling"),  # the mount point itself
        ("/mnt/feeds/local/drop", "native"),  # a local disk mounted inside the share: longest wins
        ("/mnt/feedsx/drop", "native"),  # a name prefix is not a path prefix
        ("/srv/sis share/drop", "polling"),  # \040 in /proc/mounts is a space
        ("/home/agent/remote/in", "polling"),  # sshfs shows as fuse.sshfs
        ("/srv/smb/in", "polling"),
        ("/var/feed-agent/drop", "native"),
    ],
)
def test_choose_observer_uses_the_longest_mount_prefix(folder: str, expected: str) -> None:
    assert choose_observer(Path(folder), MOUNTS) == expected


def test_choose_observer_follows_the_folders_real_path(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    link = tmp_path / "drop-link"
    link.symlink_to(share)
    mounts = f"/dev/sda1 / ext4 rw 0 0\nsis:/x {os.path.realpath(share)} nfs rw 0 0\n"
    assert choose_observer(link, mounts) == "polling"
    assert choose_observer(tmp_path, mounts) == "native"
    assert choose_observer(Path("/anything"), "") == "native"
    assert mount_of(link / "in", mounts) == (os.path.realpath(share), "nfs")
    assert parse_mounts("garbage\n\n") == []


def test_read_mounts_reads_this_machines_table() -> None:
    text = read_mounts()
    assert text == Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    assert any(point == "/" for point, _ in parse_mounts(text))


def test_escaped_tab_in_a_mount_point_and_a_later_mount_hiding_an_earlier_one() -> None:
    mounts = "a /srv/x\\011y ext4 rw 0 0\nb /data ext4 rw 0 0\nsrv:/e /data nfs rw 0 0\n"
    assert parse_mounts(mounts)[0] == ("/srv/x\ty", "ext4")
    assert choose_observer(Path("/data/in"), mounts) == "polling", "the later mount on /data hides the earlier"
