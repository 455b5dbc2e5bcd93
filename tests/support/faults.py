"""Faults injected at the OS level, so the agent meets the real errno: a folder that refuses writes.

As an ordinary user a folder without write permission (mode 0555) refuses; root ignores modes, so
there the folder is made immutable (`chattr +i`: the kernel answers EPERM, even to root). A
filesystem that supports neither skips the test, saying why. `ReadOnlyFolder` is turned off again
at the end of the test whatever happened, so pytest can clean up.
"""

from __future__ import annotations

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
