"""One `watch` or `run` per work folder, held by an advisory lock the kernel drops when the process dies.

Apart from `agent.daemon` so the daemon's module keeps to its loop.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agent.errors import AlreadyRunning


class WorkFolderLock:
    """One `watch`/`run` per work folder: two would each recover the other's in-flight files, and a
    file still being uploaded by one would be sent again by the other. (`post` does not recover
    anything, so it may run beside the service.) The kernel drops the lock when the process dies."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "agent.lock"
        self.handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise AlreadyRunning(
                f"another feed-agent (pid {holder}) is already watching or running on {work_dir}; "
                "nothing was done (stop it first, or let it process the files)"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()

    def release(self) -> None:
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
