"""Report models built from pipeline outcomes, rendered to email (plain text + HTML) from templates.

Why models and templates are split: admins may edit the templates (wording, layout, branding), so
the templates only lay out facts that are already formatted here (sizes, durations, UTC times, the
next step in plain words). The facts and the subjects (part of the user-facing contract) stay in
Python, where they are tested; a broken override falls back to the shipped template instead of
silencing the report.

`EmailReporter` is the `agent.outcomes.Reporter` the pipeline and daemon talk to: it renders, hands
the message to the `Mailer`, records mail failures (to mention them in the next summary) and pings
the heartbeat URL after each batch. It never raises: a report is never worth stopping a feed for.
"""

from __future__ import annotations

import logging
import socket
import sysconfig
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import jinja2

from agent import __version__
from agent.records import BatchOutcome, FileOutcome, Status
from agent.settings import OPERATIONS

if TYPE_CHECKING:
    from agent.mailer import Mailer
    from agent.settings import Config

log = logging.getLogger(__name__)

RECENT_REPORTS = 200

SUBJECT_PREFIX = "[feed-agent]"
LEARN_LOGS = "Learn: System Admin → Data Integration → SIS Integrations → Logs"
TEMPLATE_NAMES = (
    "base.html.j2",
    "per_file.txt.j2",
    "per_file.html.j2",
    "summary.txt.j2",
    "summary.html.j2",
    "alert.txt.j2",
    "alert.html.j2",
)
# The order statuses are counted in, in the summary subject and table (the enum's order).
STATUS_ORDER = tuple(Status)
UNKNOWN = "—"


# ----------------------------------------------------------------------------------------------
# Formatting: every number an admin reads is formatted once, here


def format_size(size: int | None) -> str:
    """Bytes as B / KB / MB / GB (binary multiples, one decimal above bytes)."""
    if size is None:
        return UNKNOWN
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """`42 s`, `2 min 05 s`, `1 h 03 min 10 s`: readable at a glance, sortable by eye."""
    if seconds is None:
        return UNKNOWN
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min {secs:02d} s"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_time(moment: datetime | None) -> str:
    """`2026-11-22 07:00:05 UTC`; a naive datetime is taken to be UTC already."""
    if moment is None:
        return UNKNOWN
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_count(value: int | None) -> str:
    return UNKNOWN if value is None else f"{value:,}"


def format_hours(hours: float) -> str:
    """`26 hours`, `1 hour`, `1.5 hours`."""
    text = f"{round(hours, 1):g}"
    return f"{text} hour" if text == "1" else f"{text} hours"


def _sentence(text: str) -> str:
    """A message as one sentence ending in a full stop (messages come with or without one)."""
    text = text.strip()
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


# ----------------------------------------------------------------------------------------------
# Statuses: colour, meaning, next step


@dataclass(frozen=True)
class Badge:
    """A status word and its colours (inline CSS; Outlook ignores stylesheets)."""

    label: str
    background: str
    foreground: str = "#ffffff"


_RED = ("#c62828", "#ffffff")
BADGE_COLOURS: dict[str, tuple[str, str]] = {
    Status.SUCCESS.value: ("#1a7f37", "#ffffff"),
    Status.WARNINGS.value: ("#f2a900", "#1f2328"),
    Status.ERRORS.value: ("#d9480f", "#ffffff"),
    Status.FAILED.value: _RED,
    Status.REJECTED.value: _RED,
    Status.TIMED_OUT.value: _RED,
    Status.HELD.value: ("#5b7083", "#ffffff"),
    "STILL PROCESSING": ("#1f6feb", "#ffffff"),
    "MISSING": _RED,
}


def badge(label: str) -> Badge:
    background, foreground = BADGE_COLOURS.get(label, ("#5b7083", "#ffffff"))
    return Badge(label, background, foreground)


def _destination(outcome: FileOutcome) -> str:
    return {"learn": "Learn", "s3": "S3", "job": "the job service"}.get(outcome.target_type, outcome.target)


def status_meaning(outcome: FileOutcome) -> str:
    """One sentence that says what the status word means for this file."""
    where = _destination(outcome)
    learn = outcome.target_type == "learn"
    delivered = f"{where} processed every record." if learn else f"The file was delivered to {where}."
    meanings = {
        Status.SUCCESS: delivered,
        Status.WARNINGS: f"{where} processed the file; some records have warnings.",
        Status.ERRORS: f"{where} processed the file, but some records were not processed.",
        Status.FAILED: f"{where} did not accept or could not process the file.",
        Status.REJECTED: "The file was not sent: it failed the checks the agent makes before sending.",
        Status.HELD: "The file was not sent: it is held until the problem below is fixed.",
        Status.TIMED_OUT: f"{where} accepted the file but had not finished processing it in time.",
    }
    return meanings[outcome.status]


def _target_label(outcome: FileOutcome) -> str:
    """`learn`, or `moodle-s3 (s3)` when the section name does not already say the type."""
    if outcome.target == outcome.target_type:
        return outcome.target
    return f"{outcome.target} ({outcome.target_type})"


def _receipt_label(kind: str | None) -> str:
    return {"learn": "Reference code", "s3": "S3 key", "job": "Job id"}.get(kind or "", "Receipt")


def _look_up(outcome: FileOutcome) -> str:
    """Where an admin looks a receipt up, e.g. 'reference X in Learn: System Admin → …'."""
    ref = outcome.receipt.reference if outcome.receipt else "(none)"
    if outcome.target_type == "learn":
        return f"reference {ref} in {LEARN_LOGS}"
    if outcome.target_type == "job":
        return f"job id {ref} in the job service's log"
    return f"{_receipt_label(outcome.target_type).lower()} {ref} in the {_destination(outcome)} console"


def next_step(outcome: FileOutcome) -> str:
    """What the admin should do now, in plain words (the most important line of every report)."""
    drop = str(outcome.drop_folder) if outcome.drop_folder else "the drop folder"
    progress = outcome.progress
    ref = outcome.receipt.reference if outcome.receipt else None
    what = _sentence(outcome.message)
    status = outcome.status
    if status is Status.SUCCESS:
        return "Nothing to do."
    if status is Status.WARNINGS:
        count = f"{progress.warnings:,} record(s) have" if progress else "Some records have"
        return (
            f"Nothing is blocked, but {count} warnings: look up {_look_up(outcome)} to see which "
            "records and why, and correct them in the SIS if needed."
        )
    if status is Status.ERRORS:
        count = f"{progress.errors:,} record(s) were" if progress else "Some records were"
        return (
            f"{count} not processed: look up {_look_up(outcome)} to see which records and why. "
            "Fix them in the SIS; they go out with the next export (or move a corrected file "
            f"into {drop})."
        )
    if status is Status.TIMED_OUT:
        return (
            f"The upload was accepted with reference {ref or '(none)'}, but the agent stopped waiting "
            f"before it finished. Check {_look_up(outcome)} before re-sending: if it finished "
            f"there, there is nothing to do; if it did not, move the file back into {drop}."
        )
    if status is Status.HELD:
        return _held_step(outcome, drop, what)
    step = f"What is wrong: {what} " if what else ""
    if status is Status.FAILED and ref:
        step += f"Details: look up {_look_up(outcome)}. "
    return step + f"Fix it, then move the file back into {drop}."


def _held_step(outcome: FileOutcome, drop: str, what: str) -> str:
    if outcome.held_by:
        reason = f" {what}" if what else ""
        return (
            f"It was not sent because it depends on {outcome.held_by}, which did not reach "
            f"{_destination(outcome)}.{reason} Fix {outcome.held_by} first, then move both files back "
            f"into {drop}."
        )
    step = f"What is wrong: {what} " if what else ""
    step += f"Fix it, then move the file back into {drop}."
    if outcome.final_path:
        step += f' If the file is right as it is, send it anyway with: feed-agent post "{outcome.final_path}" --force'
    return step


def object_operation(outcome: FileOutcome) -> str:
    """The `object/operation` part of a per-file subject.

    Learn: `course/store`; `unknown/store` when the type could not be detected (REJECTED files), so
    the part always has the same `a/b` shape for mail filters. Other targets: `s3/upload`,
    `job/upload`; a non-Learn operation word, if a target ever sets one, replaces `upload`.
    """
    if outcome.target_type == "learn":
        return f"{outcome.object or 'unknown'}/{outcome.operation or 'unknown'}"
    operation = outcome.operation if outcome.operation and outcome.operation not in OPERATIONS else "upload"
    return f"{outcome.target_type}/{operation}"


def file_subject(outcome: FileOutcome) -> str:
    return f"{SUBJECT_PREFIX} {outcome.status.value} {outcome.name} — {object_operation(outcome)}"


def status_counts(files: list[FileOutcome]) -> list[tuple[Status, int]]:
    """Non-zero counts per status, in the fixed order SUCCESS, WARNINGS, …, TIMED OUT."""
    counts = {status: 0 for status in STATUS_ORDER}
    for outcome in files:
        counts[outcome.status] += 1
    return [(status, n) for status, n in counts.items() if n]


def summary_subject(batch: BatchOutcome) -> str:
    counts = ", ".join(f"{n} {status.value}" for status, n in status_counts(batch.files))
    head = f"{SUBJECT_PREFIX} Summary: {len(batch.files)} files"
    return f"{head} — {counts}" if counts else head


# ----------------------------------------------------------------------------------------------
# Report models: what the templates see (all text already formatted)


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class FileReport:
    name: str
    status: Badge
    meaning: str
    next_step: str
    message: str
    held_by: str
    route: str
    size: str
    rows: str
    object: str
    operation: str
    target: str
    receipt_label: str
    receipt: str
    started: str
    finished: str
    duration: str
    completed: str
    warnings: str
    errors: str
    queued: str
    location: str
    drop_folder: str

    @property
    def facts(self) -> tuple[Fact, ...]:
        """The facts in reading order, for templates that want one table."""
        return (
            Fact("File", self.name),
            Fact("Size", self.size),
            Fact("Rows", self.rows),
            Fact("Object", self.object),
            Fact("Operation", self.operation),
            Fact("Target", self.target),
            Fact(self.receipt_label, self.receipt),
            Fact("Started", self.started),
            Fact("Finished", self.finished),
            Fact("Duration", self.duration),
            Fact("File is now in", self.location),
        )


def file_report(outcome: FileOutcome) -> FileReport:
    progress = outcome.progress
    receipt = outcome.receipt
    return FileReport(
        name=outcome.name,
        status=badge(outcome.status.value),
        meaning=status_meaning(outcome),
        next_step=next_step(outcome),
        message=outcome.message,
        held_by=outcome.held_by or "",
        route=outcome.route,
        size=format_size(outcome.size),
        rows=format_count(outcome.rows),
        object=outcome.object or ("not detected" if outcome.target_type == "learn" else UNKNOWN),
        operation=object_operation(outcome).split("/", 1)[1],
        target=_target_label(outcome),
        receipt_label=_receipt_label(receipt.kind if receipt else outcome.target_type),
        receipt=receipt.reference if receipt else "none (not accepted)",
        started=format_time(outcome.started_at),
        finished=format_time(outcome.finished_at),
        duration=format_duration(outcome.duration_seconds),
        completed=format_count(progress.completed if progress else None),
        warnings=format_count(progress.warnings if progress else None),
        errors=format_count(progress.errors if progress else None),
        queued=format_count(progress.queued if progress else None),
        location=str(outcome.final_path) if outcome.final_path else "not known",
        drop_folder=str(outcome.drop_folder) if outcome.drop_folder else "the drop folder",
    )


@dataclass(frozen=True)
class SummaryRow:
    status: Badge
    name: str
    object: str
    rows: str
    completed: str
    warnings: str
    errors: str
    code: str  # receipt reference; empty when the file was never accepted


@dataclass(frozen=True)
class SummaryReport:
    route: str
    status: Badge
    meaning: str
    file_count: int
    counts: str
    started: str
    finished: str
    duration: str
    rows: tuple[SummaryRow, ...]
    total_rows: str
    total_completed: str
    total_warnings: str
    total_errors: str
    held: tuple[Fact, ...]  # file name → why it was held
    attention: tuple[Fact, ...]  # other files that need someone: file name → next step
    mail_problems: tuple[str, ...]  # earlier emails that could not be sent


def _summary_row(outcome: FileOutcome) -> SummaryRow:
    progress = outcome.progress
    label = outcome.object or ("not detected" if outcome.target_type == "learn" else outcome.target_type)
    return SummaryRow(
        status=badge(outcome.status.value),
        name=outcome.name,
        object=label,
        rows=format_count(outcome.rows),
        completed=format_count(progress.completed if progress else None),
        warnings=format_count(progress.warnings if progress else None),
        errors=format_count(progress.errors if progress else None),
        code=outcome.receipt.reference if outcome.receipt else "",
    )


def _held_reason(outcome: FileOutcome) -> str:
    if outcome.held_by:
        reason = f"waits for {outcome.held_by}, which did not reach {_destination(outcome)}"
        return f"{reason}; {outcome.message}" if outcome.message else reason
    return outcome.message or "held (no reason recorded)"


def _overall_meaning(batch: BatchOutcome) -> str:
    if not batch.files:
        return "No files were processed."
    if batch.ok:
        return "Every file was processed without problems."
    needing = sum(1 for f in batch.files if not f.status.ok)
    return f"{needing} of {len(batch.files)} file(s) need attention; see below."


def summary_report(batch: BatchOutcome) -> SummaryReport:
    files = batch.files

    def total(attr: str) -> str:
        values = [getattr(f.progress, attr) for f in files if f.progress is not None]
        return format_count(sum(values)) if values else UNKNOWN

    rows = [f.rows for f in files if f.rows is not None]
    duration = (batch.finished_at - batch.started_at).total_seconds() if batch.finished_at else None
    return SummaryReport(
        route=batch.route,
        status=badge(batch.overall.value),
        meaning=_overall_meaning(batch),
        file_count=len(files),
        counts=", ".join(f"{n} {status.value}" for status, n in status_counts(files)) or "no files",
        started=format_time(batch.started_at),
        finished=format_time(batch.finished_at),
        duration=format_duration(duration),
        rows=tuple(_summary_row(f) for f in files),
        total_rows=format_count(sum(rows)) if rows else UNKNOWN,
        total_completed=total("completed"),
        total_warnings=total("warnings"),
        total_errors=total("errors"),
        held=tuple(Fact(f.name, _held_reason(f)) for f in files if f.status is Status.HELD),
        attention=tuple(Fact(f.name, next_step(f)) for f in files if not f.status.ok and f.status is not Status.HELD),
        mail_problems=tuple(batch.mail_problems),
    )


@dataclass(frozen=True)
class AlertReport:
    """A notice that is not a final result: a long-running file, or a feed that stopped arriving."""

    status: Badge
    title: str
    meaning: str
    next_step: str
    facts: tuple[Fact, ...]


def still_processing_report(outcome: FileOutcome, minutes: float) -> AlertReport:
    progress = outcome.progress
    ref = outcome.receipt.reference if outcome.receipt else "(none)"
    where = _destination(outcome)
    facts = [
        Fact("File", outcome.name),
        Fact("Object / operation", object_operation(outcome)),
        Fact("Target", _target_label(outcome)),
        Fact(_receipt_label(outcome.receipt.kind if outcome.receipt else outcome.target_type), ref),
        Fact("Rows", format_count(outcome.rows)),
        Fact("Started", format_time(outcome.started_at)),
        Fact("Processing for", format_duration(minutes * 60)),
    ]
    if progress is not None:
        facts.append(
            Fact(
                "Progress so far",
                f"{progress.completed:,} completed, {progress.warnings:,} "
                f"warnings, {progress.errors:,} errors, {progress.queued:,} queued",
            )
        )
    return AlertReport(
        status=badge("STILL PROCESSING"),
        title=f"{outcome.name} is still being processed",
        meaning=(
            f"{where} accepted {outcome.name} {format_duration(minutes * 60)} ago and is still working on "
            "it. Large files or a busy server can take this long; the agent keeps checking and sends "
            "the final report when it is done."
        ),
        next_step=(
            f"Nothing yet, and do not send the file again meanwhile. If it stays like this, look up "
            f"{_look_up(outcome)} to see whether it is queued behind other work."
        ),
        facts=tuple(facts),
    )


def missing_report(route: str, folder: Path, hours: float, last_arrival: datetime | None) -> AlertReport:
    last = format_time(last_arrival) if last_arrival else "none since the agent started watching"
    return AlertReport(
        status=badge("MISSING"),
        title=f"No file on route {route} for {format_hours(hours)}",
        meaning=(
            f"The route {route} expects a file at least every {format_hours(hours)}, and none has "
            f"arrived in {folder}. The SIS export may not have run, or may write somewhere else."
        ),
        next_step=(
            f"Check that the SIS export job ran and writes into {folder}. Also check that the agent "
            "can still read that folder (mount, permissions). The next file that arrives ends this "
            "alert."
        ),
        facts=(
            Fact("Route", route),
            Fact("Watched folder", str(folder)),
            Fact("Expected every", format_hours(hours)),
            Fact("Last file arrived", last),
        ),
    )


# ----------------------------------------------------------------------------------------------
# Rendering


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def shipped_templates_dir() -> Path:
    """The templates that come with the agent: beside the package in a checkout or editable install,
    else where a wheel puts its data files (setup.cfg [options.data_files])."""
    beside = Path(__file__).resolve().parent.parent / "templates"
    if (beside / "per_file.txt.j2").is_file():
        return beside
    return Path(sysconfig.get_path("data")) / "share" / "feed-agent" / "templates"


def _environment(search_path: list[Path]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=jinja2.StrictUndefined,  # a typo in an edited template fails loudly, then falls back
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


class Renderer:
    """Renders reports from `templates_dir` (searched first, one file may be overridden) and the
    shipped templates. If an override fails to render, the shipped template is used and a warning
    names the broken file, so an editing mistake never costs a report."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.shipped_dir = shipped_templates_dir()
        self.templates_dir = templates_dir
        self._shipped = _environment([self.shipped_dir])
        self._env = _environment([templates_dir, self.shipped_dir]) if templates_dir else self._shipped
        self._host = socket.gethostname()

    def _render(self, name: str, **context: object) -> str:
        context["meta"] = {
            "host": self._host,
            "version": __version__,
            "generated": format_time(datetime.now(timezone.utc)),
        }
        try:
            return self._env.get_template(name).render(**context)
        except Exception as exc:  # an edited template may fail in any way (syntax, None.method, ...)
            if self._env is self._shipped:
                raise
            where = getattr(exc, "filename", None) or name
            log.warning(
                "email template %s cannot be rendered (%s: %s); using the shipped %s instead",
                where,
                type(exc).__name__,
                exc,
                name,
            )
            return self._shipped.get_template(name).render(**context)

    def _both(self, stem: str, subject: str, **context: object) -> RenderedEmail:
        context["subject"] = subject
        return RenderedEmail(
            subject=subject,
            text=self._render(f"{stem}.txt.j2", **context),
            html=self._render(f"{stem}.html.j2", **context),
        )

    def file_report(self, outcome: FileOutcome) -> RenderedEmail:
        return self._both("per_file", file_subject(outcome), report=file_report(outcome))

    def summary(self, batch: BatchOutcome) -> RenderedEmail:
        return self._both("summary", summary_subject(batch), report=summary_report(batch))

    def still_processing(self, outcome: FileOutcome, minutes: float) -> RenderedEmail:
        subject = f"{SUBJECT_PREFIX} STILL PROCESSING {outcome.name} — {object_operation(outcome)}"
        return self._both("alert", subject, report=still_processing_report(outcome, minutes))

    def missing(self, route: str, folder: Path, hours: float, last_arrival: datetime | None) -> RenderedEmail:
        subject = f"{SUBJECT_PREFIX} MISSING: no file on route {route} for {format_hours(hours)}"
        return self._both("alert", subject, report=missing_report(route, folder, hours, last_arrival))


# ----------------------------------------------------------------------------------------------
# The reporter the pipeline and daemon call


class MailJournal(Protocol):
    """The three journal methods the reporter needs (agent.journal.Journal provides them)."""

    def record_mail_failure(self, subject: str, error: str) -> None: ...

    def unreported_mail_failures(self) -> list[str]: ...

    def mark_mail_failures_reported(self) -> None: ...


class EmailReporter:
    """Sends per-file reports, batch summaries and alerts; implements agent.outcomes.Reporter.

    Thread-safe (the pipeline and the daemon's MISSING check may report at the same time) and never
    raises: a failure is logged, journaled and listed in the next summary.
    """

    def __init__(self, config: Config, journal: MailJournal | None = None, *, mailer: Mailer | None = None) -> None:
        from agent.mailer import Mailer

        self.config = config
        self.journal = journal
        self.renderer = Renderer(config.email.templates_dir)
        self.mailer = mailer if mailer is not None else Mailer(config.email, config.agent.outbox_dir)
        # The latest reports only (a daemon runs for months): for narration, tests and debugging.
        self.sent: deque[RenderedEmail] = deque(maxlen=RECENT_REPORTS)
        self.last_paths: deque[Path] = deque(maxlen=RECENT_REPORTS)
        self._unreported: list[str] = []  # mail failures when there is no journal
        self._lock = threading.Lock()

    # -- Reporter protocol --------------------------------------------------------------------

    def file_done(self, outcome: FileOutcome) -> None:
        if self.config.email.per_file:
            self._report(f"report for {outcome.name}", lambda: self.renderer.file_report(outcome))

    def batch_done(self, batch: BatchOutcome) -> None:
        try:
            problems = self._unreported_failures()
            batch.mail_problems = list(dict.fromkeys([*batch.mail_problems, *problems]))
            if self.config.email.summary and self._report(
                f"summary for route {batch.route}", lambda: self.renderer.summary(batch)
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

    # -- internals -----------------------------------------------------------------------------

    def _report(self, what: str, render: Callable[[], RenderedEmail]) -> bool:
        """Render and send; True when the mailer took the message. Logs one line either way."""
        from agent.errors import MailError

        try:
            rendered: RenderedEmail = render()
        except Exception as exc:
            log.exception("report not sent: the %s could not be rendered", what)
            self._record_failure(what, f"could not be rendered: {type(exc).__name__}")
            return False
        with self._lock:
            self.sent.append(rendered)
            try:
                path = self.mailer.send(rendered)
            except MailError as exc:
                log.error("report not sent: %s: %s", rendered.subject, exc)
                self._record_failure(rendered.subject, str(exc))
                return False
            except Exception as exc:
                log.exception("report not sent: %s: unexpected error", rendered.subject)
                self._record_failure(rendered.subject, f"unexpected error: {type(exc).__name__}")
                return False
            if path is not None:
                self.last_paths.append(path)
            if self.config.email.transport == "none":
                log.info("report not sent (email is off, transport = none): %s", rendered.subject)
            else:
                log.info("report sent: %s", rendered.subject)
            return True

    def _record_failure(self, subject: str, error: str) -> None:
        if self.journal is None:
            self._unreported.append(f"{subject}: {error}")
            return
        try:
            self.journal.record_mail_failure(subject, error)
        except Exception:
            log.exception("the mail failure could not be written to the journal")
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
        from agent.heartbeat import ping

        ping(url, failed=failed)
