"""Which observer can see a folder's changes: inotify ("native") or our own polling.

inotify only hears about changes made through this machine's kernel. A file that an SIS host writes
onto an NFS or SMB share from another machine never produces an event here, so folders on network
filesystems are polled instead. The decision reads /proc/mounts; everything but `read_mounts` is a
pure function of its text, so it is unit-tested without real mounts.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

NATIVE = "native"
POLLING = "polling"
# Filesystems whose writes from other hosts never reach the local inotify.
NETWORK_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs"})
PROC_MOUNTS = Path("/proc/mounts")


def _unescape_mount_field(text: str) -> str:
    r"""/proc/mounts writes space, tab, newline and backslash in paths as octal (`\040` …)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mounts(mounts_text: str) -> list[tuple[str, str]]:
    """(mount point, filesystem type) for each well-formed line of a /proc/mounts text."""
    mounts: list[tuple[str, str]] = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((_unescape_mount_field(fields[1]), fields[2]))
    return mounts


def _is_under(path: str, mount_point: str) -> bool:
    """Component-wise prefix: `/mnt/nfs` contains `/mnt/nfs/drop`, not `/mnt/nfsdata`."""
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def mount_of(folder: Path, mounts_text: str) -> tuple[str, str] | None:
    """The mount (point, fstype) holding the folder's real path: the longest matching mount point.

    When the same point is mounted twice, the later line wins (it hides the earlier mount).
    """
    real = os.path.realpath(folder)
    best: tuple[str, str] | None = None
    for mount_point, fstype in parse_mounts(mounts_text):
        if _is_under(real, mount_point) and (best is None or len(mount_point) >= len(best[0])):
            best = (mount_point, fstype)
    return best


def choose_observer(folder: Path, mounts_text: str) -> str:
    """ "polling" when the folder lies on a network filesystem, else "native"."""
    mount = mount_of(folder, mounts_text)
    return POLLING if mount is not None and mount[1] in NETWORK_FILESYSTEMS else NATIVE


def read_mounts() -> str:
    """The text of /proc/mounts, or "" (every folder then counts as local) when it cannot be read."""
    try:
        return PROC_MOUNTS.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        logger.debug("Cannot read %s (%s); assuming local folders", PROC_MOUNTS, exc)
        return ""
