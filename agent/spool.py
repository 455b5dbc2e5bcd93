"""The mail spool: every SMTP report is written to `outbox/unsent/` first and removed only once the
mail server accepted it.

Why: a report is how the admin learns what happened to a file; with the mail server down for an
hour, three quick retries and then silence would lose the night's news. A waiting report is sent
again at the start of every `run` and `post`, and by `watch` at least every five minutes, oldest
first (so the admin reads the night in order), for `[email] give_up_hours`; then it is moved to
`outbox/gave-up/` with one log line, and `status` keeps showing it. A message whose body the server
received in full but never confirmed may have arrived: it goes to `outbox/unconfirmed/` and is not
sent again automatically (a second copy would be a duplicate).

Two processes (the service and a manual `post`) never send the same message: whoever holds the
spool's lock delivers, the other leaves the work to it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import MailError, MailUnconfirmed
from agent.mailer import Mailer, outbox_name, write_atomically
from agent.mailer import written_at as written_at_name
from agent.mailpolicy import MESSAGE_POLICY, SMTP_POLICY
from agent.records import REPORT_KEY_HEADER
from agent.settings import Config

log = logging.getLogger(__name__)

# After a failed attempt, new reports only join the queue for this long (a mail server that drops
# packets would otherwise cost a full timeout per report); housekeeping runs every minute, so
# `watch` tries again within five minutes.
RETRY_PAUSE_SECONDS = 240.0


@dataclass(frozen=True)
class SpoolState:
    """What `status` and `run` say about the spool."""

    waiting: int
    oldest: datetime | None
    gave_up: int
    unconfirmed: int
    folder: Path


def unsent_dir(config: Config) -> Path:
    return config.agent.outbox_dir / "unsent"


def spool_state(config: Config) -> SpoolState:
    """Counts only: reading the folders never needs the lock or the mail server."""
    folder = unsent_dir(config)
    waiting = _messages(folder)
    return SpoolState(
        waiting=len(waiting),
        oldest=written_at(waiting[0]) if waiting else None,
        gave_up=len(_messages(config.agent.outbox_dir / "gave-up")),
        unconfirmed=len(_messages(config.agent.outbox_dir / "unconfirmed")),
        folder=folder,
    )


def describe(state: SpoolState) -> list[str]:
    """The spool in plain words, one line per fact; empty when nothing waits or was set aside."""
    lines = []
    if state.waiting:
        since = f", the oldest from {state.oldest:%Y-%m-%d %H:%M:%SZ}" if state.oldest else ""
        lines.append(f"{_reports(state.waiting)} waiting to be sent in {state.folder}{since}")
    outbox = state.folder.parent
    if state.gave_up:
        lines.append(
            f"{_reports(state.gave_up)} never sent (given up after give_up_hours) in {outbox / 'gave-up'}; "
            "open them in a mail client or move them back to unsent/ once the mail server works"
        )
    if state.unconfirmed:
        lines.append(
            f"{_reports(state.unconfirmed)} in {outbox / 'unconfirmed'}: the mail server took them but never "
            "confirmed; they may have arrived, so they are not sent again automatically"
        )
    return lines


def _reports(count: int) -> str:
    return f"{count} report{'s' if count != 1 else ''}"


def written_at(path: Path) -> datetime | None:
    """When the report was written, from its name (mtime would change on a copy or a restore)."""
    return written_at_name(path.name)


def _messages(folder: Path) -> list[Path]:
    """Waiting messages, oldest first (names start with their UTC time)."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix == ".eml" and not p.name.startswith("."))
    except FileNotFoundError:
        return []


class MailSpool:
    """Queue and deliver reports for the SMTP transport; one per process, shared by its reporters."""

    def __init__(self, config: Config, mailer: Mailer, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.folder = unsent_dir(config)
        self.gave_up_dir = config.agent.outbox_dir / "gave-up"
        self.unconfirmed_dir = config.agent.outbox_dir / "unconfirmed"
        self.give_up = timedelta(hours=config.email.give_up_hours)
        self.mailer = mailer
        self.clock = clock
        self.last_error: str | None = None
        self._pause_until = 0.0

    def put(self, message: EmailMessage) -> Path:
        """Write the message to the spool (whole or not at all). Raises MailError if it cannot."""
        path = self.folder / outbox_name(str(message["Subject"]), self.clock.now())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(path, message.as_bytes(policy=SMTP_POLICY))
        except OSError as exc:
            raise MailError(
                f"cannot write the report to the mail spool {self.folder}: {exc.strerror or exc}; "
                "check that the agent's user may write there and that the disk has room"
            ) from None
        return path

    def report_keys(self) -> list[str]:
        """The report keys (`agent.records.REPORT_KEY_HEADER`) of the messages waiting to be sent:
        these reports were taken, whatever the journal says. (A report is journaled before anything
        sends or sets it aside, so after a crash it can only be waiting here.)"""
        keys = (_header(path, REPORT_KEY_HEADER) for path in _messages(self.folder))
        return [key for key in keys if key]

    def waiting(self) -> int:
        return len(_messages(self.folder))

    def deliver(self, *, force: bool = False) -> int:
        """Send what waits, oldest first; returns how many the server accepted. Never raises.

        Without `force`, an attempt shortly after a failed one is skipped (the message stays queued).
        """
        if not force and self.clock.monotonic() < self._pause_until:
            return 0
        with self._exclusive() as mine:
            if not mine:
                return 0  # another feed-agent process is delivering this spool right now
            pending = self._set_aside_expired(_messages(self.folder))
            if not pending:
                return 0
            try:
                sent = self._send_all(pending)
            except MailError as exc:
                self._failed(str(exc))
                return 0
        if self.waiting():
            self._failed(self.last_error or "some reports were refused")
        else:
            self.last_error, self._pause_until = None, 0.0
        return sent

    def _send_all(self, pending: list[Path]) -> int:
        sent = 0
        self.mailer.require_recipients()
        with self.mailer.session() as smtp:
            for path in pending:
                subject = _subject(path)
                try:
                    self.mailer.transmit(smtp, path.read_bytes())
                except MailUnconfirmed as exc:
                    self._move(path, self.unconfirmed_dir)
                    log.warning(
                        "report may or may not have arrived (kept in %s): %s: %s", self.unconfirmed_dir, subject, exc
                    )
                    return sent  # the session is in an unknown state: the rest waits for the next attempt
                except MailError as exc:
                    self.last_error = str(exc)
                    log.warning("report not sent yet (it waits in %s): %s: %s", self.folder, subject, exc)
                    if not _reset(smtp):
                        return sent
                    continue
                path.unlink()
                sent += 1
                log.info("report sent: %s", subject)
        return sent

    def _failed(self, error: str) -> None:
        self.last_error = error
        self._pause_until = self.clock.monotonic() + RETRY_PAUSE_SECONDS
        waiting = self.waiting()
        log.warning(
            "%s %s in %s (%s); sent again later",
            _reports(waiting),
            "waits" if waiting == 1 else "wait",
            self.folder,
            error,
        )

    def _set_aside_expired(self, pending: list[Path]) -> list[Path]:
        """Messages older than give_up_hours leave the queue, each with one log line."""
        keep = []
        now = self.clock.now()
        for path in pending:
            written = written_at(path)
            if written is not None and now - written > self.give_up:
                self._move(path, self.gave_up_dir)
                log.error(
                    "report given up after %g hours unsent (kept in %s): %s",
                    self.give_up.total_seconds() / 3600,
                    self.gave_up_dir,
                    _subject(self.gave_up_dir / path.name),
                )
            else:
                keep.append(path)
        return keep

    @staticmethod
    def _move(path: Path, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(path, folder / path.name)

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / ".lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _reset(smtp: smtplib.SMTP) -> bool:
    """After a refused message: RSET so the next one starts clean; False if the session is gone."""
    try:
        code, _ = smtp.rset()
    except (smtplib.SMTPException, OSError):
        return False
    return code == 250


def _subject(path: Path) -> str:
    return _header(path, "Subject") or path.name


def _header(path: Path, name: str) -> str | None:
    try:
        with path.open("rb") as handle:
            value = BytesHeaderParser(policy=MESSAGE_POLICY).parse(handle)[name]
    except OSError:
        return None
    return str(value) if value else None
