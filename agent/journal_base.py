"""The journal's connection: opening, migrating, and running SQL in plain-worded errors.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` and every write commits at
once (autocommit). In WAL mode a commit appends the transaction to the ``-wal`` file with an
ordinary ``write()``; once that call returns, the data lives in the operating system's page cache
and survives the process being killed (SIGKILL, OOM killer, a crash in a library): the next
process that opens the database replays the WAL. ``synchronous=NORMAL`` only skips the fsync on
each commit, so what it risks is the last few commits after a *power loss or kernel crash*, never
corruption (WAL keeps the database consistent). That is the right trade for a ledger written on
every poll; ``FULL`` would add an fsync per status reading. The one record whose loss would send a
file twice, SENT, is written ``durably`` (an fsync before the body's last byte). WAL also lets
`feed-agent status` read while the daemon writes.

Threads: the daemon loop, watcher callbacks and the mail thread share one connection
(``check_same_thread=False``) serialised by an RLock; SQLite's own busy timeout covers a second
process (the CLI) writing at the same moment.

`agent.journal.Journal` builds its verbs on this class; nothing else uses it directly.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from agent.errors import JournalError
from agent.journal_schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("agent.journal")

BUSY_TIMEOUT_SECONDS = 30.0  # another process (the CLI) holding the write lock


def _unusable(path: Path, exc: sqlite3.Error) -> JournalError:
    """Turn SQLite's terse error into what an admin should do about it."""
    text = str(exc)
    if "locked" in text:
        advice = (
            f"it stayed locked by another process for {BUSY_TIMEOUT_SECONDS:g} seconds. Check for a "
            "stuck feed-agent process, then try again."
        )
    elif "full" in text:
        advice = "the disk holding work_dir is full; free some space, then start the agent again."
    elif isinstance(exc, sqlite3.OperationalError):
        advice = "check that work_dir exists and is writable by the agent's user."
    else:
        advice = (
            "if the file is damaged, move it aside and start the agent again: it creates a new "
            "journal (files still in processing/ are then sent again)."
        )
    return JournalError(f"The journal {path} cannot be used ({text}): {advice}")


class JournalBase:
    """One SQLite connection, migrated on open, shared by threads under one lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._configure()
            self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise _unusable(self.path, exc) from exc
        except BaseException:
            self._conn.close()
            raise

    # -- life cycle ---------------------------------------------------------------------------

    def _configure(self) -> None:
        mode = str(self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
        self._relaxed = mode == "wal"  # commits reach the page cache only (see `durably`)
        if self._relaxed:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        else:
            # Outside WAL, NORMAL could corrupt the file on power loss; FULL is the safe setting.
            log.warning(
                "journal %s: WAL mode unavailable on this filesystem (mode %s); writes are "
                "still safe but slower, and `status` may wait for the daemon",
                self.path,
                mode,
            )
            self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")

    def _migrate(self) -> None:
        """Apply the migrations this file has not seen, all in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # two processes starting at once: one migrates
            try:
                version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
                if version > SCHEMA_VERSION:
                    raise JournalError(
                        f"The journal {self.path} was written by a newer feed-agent (schema {version}; "
                        f"this version knows {SCHEMA_VERSION}). Upgrade feed-agent, or point work_dir "
                        "at another folder."
                    )
                for statements in MIGRATIONS[version:]:
                    for statement in statements:
                        self._conn.execute(statement)
                if version != SCHEMA_VERSION:
                    # PRAGMA takes no parameters; SCHEMA_VERSION is our own integer constant.
                    self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
                    log.info("journal %s: schema %d -> %d", self.path, version, SCHEMA_VERSION)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _execute(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> sqlite3.Cursor:
        with self._lock, self._plain_errors():
            return self._conn.execute(sql, params)

    def _fetchall(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> list[sqlite3.Row]:
        with self._lock, self._plain_errors():
            return self._conn.execute(sql, params).fetchall()

    def _fetchone(self, sql: str, params: tuple[object, ...] | list[object] = ()) -> sqlite3.Row | None:
        with self._lock, self._plain_errors():
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    @contextlib.contextmanager
    def atomically(self) -> Iterator[None]:
        """Several writes that land together or not at all: a crash between them must never leave,
        say, a batch that names only some of its files. Other threads wait meanwhile."""
        with self._lock:
            with self._plain_errors():
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            with self._plain_errors():
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def durably(self) -> Iterator[None]:
        """Writes that must survive a power loss or a kernel crash, not only a killed process: each
        is on disk when it returns.

        Why: with `synchronous=NORMAL` a commit reaches the page cache only. One record must not be
        lost that way: SENT, written just before a body's last byte. Lost after Learn got the file,
        recovery would find the file `submitting` and send it a second time. `FULL` for these writes
        costs one fsync of the WAL, which also makes every earlier commit durable. Each write must be
        its own transaction (SQLite cannot change the setting inside one)."""
        with self._lock:
            if not self._relaxed:  # outside WAL every commit is synced already
                yield
                return
            if self._conn.in_transaction:
                raise RuntimeError("a durable journal write must be its own transaction, not inside atomically()")
            with self._plain_errors():
                self._conn.execute("PRAGMA synchronous=FULL")
            try:
                yield
            finally:
                with self._plain_errors():
                    self._conn.execute("PRAGMA synchronous=NORMAL")

    @contextlib.contextmanager
    def _plain_errors(self) -> Iterator[None]:
        """A journal that breaks while in use (disk full, damaged) raises a JournalError in plain words."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _unusable(self.path, exc) from exc

    # -- meta ---------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
