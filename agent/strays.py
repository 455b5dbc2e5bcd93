"""What is done with an entry of a drop folder that is not a regular file: a link, a folder, a pipe.

Why each gets a REJECTED email: the SIS (or an admin) put it there expecting it to be sent, and a
silent move aside looked to them like a lost file. The email says what was found and what to do.

* **Symbolic links, named pipes, sockets, devices** are moved to `failed/` with a reason file, as
  before (the agent never follows a link or reads a pipe: it only sends files that were really put
  in the folder), then reported. Moving a link moves the link only; what it points to is untouched.
* **Folders** are left where they are: moving one took everything inside it along, out of the
  admin's sight. A folder is reported once; its identity (inode) is kept in the journal's meta
  table, so neither a rescan nor a restart nor the next `run` reports it again. A new folder of
  the same name (another inode) is reported again.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agent import archive
from agent.printable import printable
from agent.profiles import profile_for
from agent.records import FileOutcome, Reporter, Status
from agent.settings import Config, RouteSettings

log = logging.getLogger(__name__)

META_PREFIX = "stray-folder:"


class MetaStore(Protocol):
    """The journal's key/value memory (agent.journal.Journal provides it)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def kind_of(mode: int) -> str:
    """What an entry is, in the words of the report."""
    kinds = (
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "device"),
        (stat.S_ISBLK, "device"),
    )
    return next((word for test, word in kinds if test(mode)), "special file")


class Strays:
    """Moves aside (or, for a folder, leaves) and reports what cannot be sent. Called from the
    watcher's threads; the journal and the reporter are thread-safe."""

    def __init__(self, config: Config, journal: MetaStore, reporter: Reporter, now: Callable[[], datetime]) -> None:
        self.config = config
        self.journal = journal
        self.reporter = reporter
        self.now = now

    def found(self, route: RouteSettings, path: Path, reason: str) -> str | None:
        """Deal with one entry; returns the line `run` prints about it, or None when there was
        nothing to do (gone meanwhile, or a folder reported before)."""
        try:
            entry = os.lstat(path)
        except OSError:
            return None  # gone (or unreadable) meanwhile: the next scan sees what is there
        mode, inode = entry.st_mode, entry.st_ino
        kind = kind_of(mode)
        if stat.S_ISDIR(mode):
            key = f"{META_PREFIX}{path}"
            if self.journal.get_meta(key) == str(inode):
                log.debug("%s: a folder reported before; left alone", path)
                return None
            where = self._report(route, path, kind, reason, path)
            self.journal.set_meta(key, str(inode))
            return where
        try:
            moved = archive.fail(
                path,
                self.config.agent.failed_dir,
                name=path.name,
                reason=f"{reason} Only regular files are processed.",
                when=self.now(),
                advice=(
                    f"Moving it back would only get it rejected again: put a regular file with the data "
                    f"into {route.watch} instead."
                ),
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot move %s aside (%s): %s", path, reason, exc)
            return f"route {route.name}: {path} is a {kind} and could not be moved aside: {exc}"
        return self._report(route, path, kind, reason, moved)

    def _report(self, route: RouteSettings, path: Path, kind: str, reason: str, now_at: Path) -> str:
        when = self.now()
        profile = profile_for(self.config.targets[route.target].type)
        outcome = FileOutcome(
            name=path.name,
            route=route.name,
            target=route.target,
            target_type=profile.kind,
            status=Status.REJECTED,
            operation=profile.operation(route),
            started_at=when,
            finished_at=when,
            final_path=now_at,
            drop_folder=route.watch,
            message=reason,
            config_path=self.config.path,
            entry_kind=kind,
        )
        left = "left in place" if now_at == path else f"moved to {now_at}"
        log.warning("rejected: %s in route %s is a %s (%s)", path.name, route.name, kind, left)
        self.reporter.file_done(outcome)
        return f"{printable(path.name)} REJECTED: a {kind}, not a file ({left})"
