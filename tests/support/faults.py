"""Faults injected at the OS level, so the agent meets the real errno: a folder that refuses writes,
a full disk.

As an ordinary user a folder without write permission (mode 0555) refuses; root ignores modes, so
there the folder is made immutable (`chattr +i`: the kernel answers EPERM, even to root). A
filesystem that supports neither skips the test, saying why. `ReadOnlyFolder` is turned off again
at the end of the test whatever happened, so pytest can clean up.

A full disk is a tiny tmpfs mounted over a folder in the agent's own mount namespace (`unshare -m`,
so nothing outside the process sees it), then filled to the last byte through /proc/PID/root: the
agent gets the kernel's own ENOSPC. Where namespaces or mounts are not allowed, the test is skipped.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


class ReadOnlyFolder:
    """A folder that refuses new entries and renames (on) and takes them again (off)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.active = False

    def on(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            self.folder.chmod(0o555)
        else:
            if shutil.which("chattr") is None:
                pytest.skip("running as root without chattr: no honest way to make a folder refuse writes")
            done = subprocess.run(["chattr", "+i", str(self.folder)], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"this filesystem cannot make a folder immutable: {done.stderr.strip()}")
        self.active = True
        probe = self.folder / ".probe"
        try:
            probe.touch()
        except OSError:
            return
        probe.unlink()
        self.off()
        pytest.skip(f"{self.folder} still takes writes (capabilities?)")

    def off(self) -> None:
        if not self.active:
            return
        if os.geteuid() != 0:
            self.folder.chmod(0o755)
        else:
            subprocess.run(["chattr", "-i", str(self.folder)], check=True)
        self.active = False


@pytest.fixture
def refuse_writes() -> Iterator[Callable[[Path], ReadOnlyFolder]]:
    """`refuse_writes(folder)` makes `folder` refuse writes now; every such folder takes them again at the end."""
    made: list[ReadOnlyFolder] = []

    def make(folder: Path) -> ReadOnlyFolder:
        fault = ReadOnlyFolder(folder)
        made.append(fault)
        fault.on()
        return fault

    yield make
    for fault in made:
        fault.off()


def tiny_disk_prefix(mountpoint: Path, size_kb: int) -> list[str]:
    """A command prefix: run the command in its own mount namespace with a `size_kb` tmpfs on `mountpoint`.

    Skips the test where that is not allowed here (no unshare, no CAP_SYS_ADMIN, no user namespaces)."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    script = 'mount -t tmpfs -o size="$1"k tmpfs "$2" && shift 2 && exec "$@"'
    prefix = ["unshare", "-m", "sh", "-c", script, "sh", str(size_kb), str(mountpoint)]
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: a full disk cannot be simulated without touching the real one")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"a private tmpfs cannot be mounted here: {probe.stderr.strip()}")
    return prefix


def fill_up(folder_as_seen_by_process: Path) -> Path:
    """Write zeros into a filler file until the disk is full (ENOSPC); returns the filler (remove it to free)."""
    filler = folder_as_seen_by_process / ".filler"
    chunk = b"\0" * 4096
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler
