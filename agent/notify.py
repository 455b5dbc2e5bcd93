"""The Reporter the pipeline and daemon talk to: render → send → remember failures → heartbeat.

It never raises: a report is never worth stopping a feed for. With SMTP every report goes through
the mail spool (`agent.spool`): written first, sent, removed once the server accepted it, so a mail
server that is down delays reports but loses none. A report that cannot even be written (or
rendered) is logged, journaled and listed in the next summary.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from agent import failpoints
from agent.errors import MailError, describe, foreseen
from agent.heartbeat import ping
from agent.mailer import Mailer, build_message
from agent.records import (
    REPORT_KEY_HEADER,
    BatchOutcome,
    FileOutcome,
    JobNotice,
    Status,
    TroubleNotice,
    parse_report_key,
)
from agent.render import RenderedEmail, Renderer
from agent.settings import Config
from agent.spool import MailSpool

log = logging.getLogger(__name__)

RECENT_REPORTS = 20  # rendered reports kept for narration and debugging: bounded memory
RECENT_BYTES = 32 * 1024 * 1024  # and no more than this much of them (a summary may carry a big CSV)


class MailJournal(Protocol):
    """The three journal methods the reporter needs (agent.journal.Journal provides them)."""

    def record_mail_failure(self, subject: str, error: str) -> None: ...

    def unreported_mail_failures(self) -> list[str]: ...

    def mark_mail_failures_reported(self) -> None: ...

    def file_reported(self, file_id: int) -> None: ...

    def batch_reported(self, batch_id: int) -> None: ...


@dataclass(frozen=True)
class _Taken:
    """What happens the moment the mailer took a report: the journal marks it (`reported`), so a
    restart never writes it again; the failpoints on each side of that moment, for crash tests."""

    key: str | None = None
    reported: Callable[[], None] | None = None
    rendered_point: str | None = None
    mailed_point: str | None = None

    def done(self) -> None:
        if self.mailed_point:
            failpoints.hit(self.mailed_point)
        if self.reported is not None:
            self.reported()


class EmailReporter:
    """Sends per-file reports, batch summaries and alerts; implements agent.outcomes.Reporter.

    Thread-safe (the pipeline and the daemon's MISSING check may report at the same time) and never
    raises: a failure is logged, journaled and listed in the next summary.
    """

    def __init__(
        self,
        config: Config,
        journal: MailJournal | None = None,
        *,
        mailer: Mailer | None = None,
        spool: MailSpool | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.renderer = Renderer(config.email.templates_dir, config.email.max_message_mb)
        self.mailer = mailer if mailer is not None else Mailer(config.email, config.agent.outbox_dir)
        self.spool = spool if spool is not None else MailSpool(config, self.mailer)
        # The latest reports only (a daemon runs for months): for narration, tests and debugging.
        self.sent: deque[RenderedEmail] = deque(maxlen=RECENT_REPORTS)
        self._sent_bytes = 0
        self.last_paths: deque[Path] = deque(maxlen=RECENT_REPORTS)
        self._unreported: list[str] = []  # mail failures when there is no journal
        self._lock = threading.Lock()

    # -- Reporter protocol --------------------------------------------------------------------

    def file_done(self, outcome: FileOutcome) -> None:
        per_file = self.config.email.per_file
        problem = outcome.status is not Status.SUCCESS or bool(outcome.not_moved)
        # A link, pipe or folder found in a drop folder is in no batch summary: its email always goes.
        if per_file == "yes" or (per_file == "problems" and problem) or outcome.entry_kind:
            taken = _Taken(outcome.report_key, outcome.reported, "report-rendered", "report-mailed")
            self._report(f"report for {outcome.name}", lambda: self.renderer.file_report(outcome), taken)

    def batch_done(self, batch: BatchOutcome) -> None:
        try:
            problems = self._unreported_failures()
            batch.mail_problems = list(dict.fromkeys([*batch.mail_problems, *problems]))
            taken = _Taken(batch.report_key, batch.reported, "summary-rendered", "summary-mailed")
            if self.config.email.summary and self._report(
                f"summary for route {batch.route}", lambda: self.renderer.summary(batch), taken
            ):
                self._mark_reported()
        except Exception:  # never stop the pipeline for a report
            log.exception("the batch summary could not be prepared")
        self._heartbeat(failed=not batch.ok)

    def still_processing(self, outcome: FileOutcome, minutes: float) -> None:
        self._report(
            f"still-processing notice for {outcome.name}",
            lambda: self.renderer.still_processing(outcome, minutes),
        )

    def missing(self, route: str, folder: Path, hours: float, last_arrival: datetime | None) -> None:
        self._report(
            f"missing-file alert for route {route}",
            lambda: self.renderer.missing(route, folder, hours, last_arrival),
        )

    def job_finished(self, notice: JobNotice) -> None:
        """Sent whatever per_file says: it is the only word on the job's real end."""
        self._report(f"job report for {notice.name}", lambda: self.renderer.job(notice))

    def job_not_notified(self, notice: JobNotice) -> None:
        self._report(f"not-notified alert for {notice.name}", lambda: self.renderer.job(notice))

    def trouble(self, notice: TroubleNotice) -> None:
        """A failure episode's one email when it starts, and the one when it clears. When the mail
        spool cannot take it (a full disk under work_dir may be the very trouble), it goes straight
        to the server rather than wait for the disk."""
        if self._report(f"problem alert ({notice.key})", lambda: self.renderer.trouble(notice)):
            return
        if self.config.email.transport != "smtp":
            return
        try:
            rendered = self.renderer.trouble(notice)
            with self._lock:
                self.mailer.send(rendered)
        except Exception as exc:
            log.error("problem alert not sent straight either: %s", describe(exc), exc_info=not foreseen(exc))
            return
        log.info("report sent straight to the mail server (the spool could not take it): %s", rendered.subject)

    def deliver_waiting(self, *, force: bool = False) -> None:
        """Send the reports that wait in the mail spool (SMTP only); `force` ignores the pause after a failure."""
        if self.config.email.transport != "smtp":
            return
        with self._lock:
            if force:
                self._journal_spooled()
            self.spool.deliver(force=force)

    def _journal_spooled(self) -> None:
        """Reports the spool holds are taken, even when a crash came before the journal said so:
        marking them here (before they are sent) keeps a restart from writing them a second time."""
        if self.journal is None:
            return
        for key in self.spool.report_keys():
            parsed = parse_report_key(key)
            if parsed is None:
                continue
            kind, number = parsed
            if kind == "file":
                self.journal.file_reported(number)
            else:
                self.journal.batch_reported(number)

    # -- internals -----------------------------------------------------------------------------

    def _report(self, what: str, render: Callable[[], RenderedEmail], taken: _Taken | None = None) -> bool:
        """Render and send; True when the mailer took the message. Logs one line either way.

        With email off nothing is rendered: a report nobody receives must not cost a template run
        per file (a burst of thousands of files would pay it thousands of times). It still counts as
        taken, as before, so a restart does not try it again."""
        taken = taken or _Taken()
        if self.config.email.transport == "none":
            log.info("report not sent (email is off, transport = none): %s", what)
            taken.done()
            return True
        try:
            rendered: RenderedEmail = render()
        except Exception as exc:
            log.exception("report not sent: the %s could not be rendered", what)
            self._record_failure(what, f"could not be rendered: {type(exc).__name__}")
            return False
        if taken.rendered_point:
            failpoints.hit(taken.rendered_point)
        with self._lock:
            self._remember(rendered)
            try:
                path = self._send(rendered, taken)
            except MailError as exc:
                log.error("report not sent: %s: %s", rendered.subject, exc)
                self._record_failure(rendered.subject, str(exc))
                return False
            except Exception as exc:  # a full disk under the spool is foreseen: one line, no traceback
                log.error("report not sent: %s: %s", rendered.subject, describe(exc), exc_info=not foreseen(exc))
                self._record_failure(
                    rendered.subject, describe(exc) if foreseen(exc) else f"unexpected error: {type(exc).__name__}"
                )
                return False
            if path is not None:
                self.last_paths.append(path)
            if self.config.email.transport == "file":
                log.info("report sent: %s", rendered.subject)
            return True

    def _remember(self, rendered: RenderedEmail) -> None:
        """Keep the latest reports for narration and debugging, by count and by size."""
        if len(self.sent) == self.sent.maxlen:
            self._sent_bytes -= self.sent[0].size
        self.sent.append(rendered)
        self._sent_bytes += rendered.size
        while self._sent_bytes > RECENT_BYTES and len(self.sent) > 1:
            self._sent_bytes -= self.sent.popleft().size

    def _send(self, rendered: RenderedEmail, taken: _Taken) -> Path | None:
        """SMTP: into the spool, journaled as taken, then delivered (the spool logs each message the
        server accepted); the file outbox and `none` need no spool."""
        if self.config.email.transport != "smtp":
            path = self.mailer.send(rendered)
            taken.done()
            return path
        message = build_message(rendered, self.config.email)
        if taken.key:
            message[REPORT_KEY_HEADER] = taken.key
        self.spool.put(message)
        taken.done()
        self.spool.deliver()
        return None

    def _record_failure(self, subject: str, error: str) -> None:
        if self.journal is None:
            self._unreported.append(f"{subject}: {error}")
            return
        try:
            self.journal.record_mail_failure(subject, error)
        except Exception as exc:
            log.error(
                "the mail failure could not be written to the journal: %s", describe(exc), exc_info=not foreseen(exc)
            )
            self._unreported.append(f"{subject}: {error}")

    def _unreported_failures(self) -> list[str]:
        found = list(self._unreported)
        if self.journal is not None:
            try:
                found = [*self.journal.unreported_mail_failures(), *found]
            except Exception:
                log.exception("earlier mail failures could not be read from the journal")
        return found

    def _mark_reported(self) -> None:
        self._unreported.clear()
        if self.journal is not None:
            try:
                self.journal.mark_mail_failures_reported()
            except Exception:
                log.exception("mail failures could not be marked as reported in the journal")

    def _heartbeat(self, failed: bool) -> None:
        url = self.config.heartbeat.url
        if not url:
            return
        ping(url, failed=failed)
