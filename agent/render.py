"""Reports rendered to email text and HTML from Jinja templates (the shipped ones, or the admin's).

A broken override falls back to the shipped template with a warning naming the broken file, so an
editing mistake never costs a report.
"""

from __future__ import annotations

import gzip
import logging
import socket
import sysconfig
import textwrap
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.advice import command_start
from agent.logreport import GZIP_OVER, log_file
from agent.printable import printable, printable_lines
from agent.records import BatchOutcome, FileOutcome, JobNotice, TroubleNotice
from agent.reports import (
    file_report,
    job_report,
    missing_report,
    still_processing_report,
    summary_report,
    trouble_report,
)
from agent.summarylist import list_file
from agent.wording import (
    SUBJECT_PREFIX,
    file_subject,
    format_hours,
    format_time,
    job_subject,
    object_operation,
    summary_subject,
)
from agent.wording_troubles import trouble_subject

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

HEADROOM = 8 * 1024  # headers, MIME boundaries and the note the attachment adds to the bodies
NOTE_ROOM = 2 * 1024  # the summary's note about its attachment, in both bodies

TEMPLATE_NAMES = (
    "base.html.j2",
    "per_file.txt.j2",
    "per_file.html.j2",
    "summary.txt.j2",
    "summary.html.j2",
    "alert.txt.j2",
    "alert.html.j2",
)


@dataclass(frozen=True)
class Attachment:
    """A file sent with a report (a CSV of every record, every key…): the body stays short, nothing is lost."""

    filename: str
    data: bytes
    mimetype: str = "text/csv"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()

    @property
    def size(self) -> int:
        """Bytes of content (before MIME encoding adds about a third to attachments)."""
        return len(self.text.encode()) + len(self.html.encode()) + sum(len(a.data) for a in self.attachments)


def shipped_templates_dir() -> Path:
    """The templates that come with the agent: beside the package in a checkout or editable install,
    else where a wheel puts its data files (setup.cfg [options.data_files])."""
    beside = Path(__file__).resolve().parent.parent / "templates"
    if (beside / "per_file.txt.j2").is_file():
        return beside
    return Path(sysconfig.get_path("data")) / "share" / "feed-agent" / "templates"


def prose(text: str, width: int = 74, indent: str = "  ") -> str:
    """Wrap text for the plain-text emails, but never a suggested command: it runs from the
    executable to the end of its line and stays on one line, so it can be copied and run as printed.
    Continuation lines start with `indent` (the first line's indent is the template's)."""
    start = command_start()
    lines: list[str] = []
    for paragraph in text.split("\n"):
        at = paragraph.find(start)
        words, command = (paragraph, "") if at < 0 else (paragraph[:at], paragraph[at:].strip())
        lines += textwrap.wrap(words, width, break_long_words=False, break_on_hyphens=False)
        if command:
            lines.append(command)
    return f"\n{indent}".join(lines)


def shown(outcome: FileOutcome) -> FileOutcome:
    """A copy whose names, paths and message are as people should read them (`agent.printable`):
    a newline in a file name must not start a new line of the report."""

    def path(value: Path | None) -> Path | None:
        return None if value is None else Path(printable(str(value)))

    return replace(
        outcome,
        name=printable(outcome.name),
        held_by=None if outcome.held_by is None else printable(outcome.held_by),
        message=printable_lines(outcome.message),
        final_path=path(outcome.final_path),
        drop_folder=path(outcome.drop_folder),
    )


def _environment(search_path: list[Path]) -> jinja2.Environment:
    """A Jinja environment over `search_path`. jinja2 is imported here, on the first report rendered,
    not when the module loads: importing it costs every command ~20 ms of start-up, and with email off
    (`transport = none`) nothing is ever rendered."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search_path]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        undefined=jinja2.StrictUndefined,  # a typo in an edited template fails loudly, then falls back
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["prose"] = prose
    return environment


class Renderer:
    """Renders reports from `templates_dir` (searched first, one file may be overridden) and the
    shipped templates. If an override fails to render, the shipped template is used and a warning
    names the broken file, so an editing mistake never costs a report."""

    def __init__(self, templates_dir: Path | None = None, max_message_mb: float = 10.0) -> None:
        self.max_message_bytes = int(max_message_mb * 1024 * 1024)
        self.shipped_dir = shipped_templates_dir()
        self.templates_dir = templates_dir
        self._environments: tuple[jinja2.Environment, jinja2.Environment] | None = None
        self._host = socket.gethostname()

    def _shipped_and_chosen(self) -> tuple[jinja2.Environment, jinja2.Environment]:
        """(shipped, admin's-then-shipped) environments, built when the first report is rendered."""
        if self._environments is None:
            shipped = _environment([self.shipped_dir])
            chosen = _environment([self.templates_dir, self.shipped_dir]) if self.templates_dir else shipped
            self._environments = (shipped, chosen)
        return self._environments

    def _render(self, name: str, **context: object) -> str:
        context["meta"] = {
            "host": self._host,
            "version": __version__,
            "generated": format_time(datetime.now(timezone.utc)),
        }
        shipped, chosen = self._shipped_and_chosen()
        try:
            return chosen.get_template(name).render(**context)
        except Exception as exc:  # an edited template may fail in any way (syntax, None.method, ...)
            if chosen is shipped:
                raise
            where = getattr(exc, "filename", None) or name
            log.warning(
                "email template %s cannot be rendered (%s: %s); using the shipped %s instead",
                where,
                type(exc).__name__,
                exc,
                name,
            )
            return shipped.get_template(name).render(**context)

    def _both(self, stem: str, subject: str, **context: object) -> RenderedEmail:
        """Both bodies; the subject and the bodies never carry a raw control character (a name with
        a newline made the Subject header invalid, and the report was never sent)."""
        subject = printable(subject)
        context["subject"] = subject
        return RenderedEmail(
            subject=subject,
            text=printable_lines(self._render(f"{stem}.txt.j2", **context)),
            html=printable_lines(self._render(f"{stem}.html.j2", **context)),
        )

    def file_report(self, outcome: FileOutcome) -> RenderedEmail:
        """The per-file report; with a record log, the log attached within max_message_mb; held by a
        guard, the CSV of every key it would disable or delete."""
        return _with_keys(self._file_report(shown(outcome)), outcome.keys_csv)

    def _file_report(self, outcome: FileOutcome) -> RenderedEmail:
        subject = file_subject(outcome)
        plain = self._both("per_file", subject, report=file_report(outcome))
        if outcome.record_log is None:
            return plain
        budget = self.max_message_bytes - plain.size * 4 // 3 - HEADROOM  # bodies may be base64-encoded too
        attached = log_file(outcome, budget)
        if attached is None:
            return plain
        rendered = self._both("per_file", subject, report=file_report(outcome, attached.note))
        return replace(rendered, attachments=(Attachment(attached.filename, attached.data, attached.mimetype),))

    def summary(self, batch: BatchOutcome) -> RenderedEmail:
        """The batch summary; past 200 files, the complete list attached as CSV within max_message_mb."""
        batch = replace(batch, files=[shown(f) for f in batch.files])
        subject = summary_subject(batch)
        plain = self._both("summary", subject, report=summary_report(batch))
        budget = self.max_message_bytes - plain.size * 4 // 3 - HEADROOM - NOTE_ROOM
        attached = list_file(batch, budget)
        if attached is None:
            return plain
        rendered = self._both("summary", subject, report=summary_report(batch, attached.note))
        return replace(rendered, attachments=(Attachment(attached.filename, attached.data, attached.mimetype),))

    def still_processing(self, outcome: FileOutcome, minutes: float) -> RenderedEmail:
        outcome = shown(outcome)
        subject = f"{SUBJECT_PREFIX} STILL PROCESSING {outcome.name} — {object_operation(outcome)}"
        return self._both("alert", subject, report=still_processing_report(outcome, minutes))

    def missing(self, route: str, folder: Path, hours: float, last_arrival: datetime | None) -> RenderedEmail:
        subject = f"{SUBJECT_PREFIX} MISSING: no file on route {route} for {format_hours(hours)}"
        return self._both("alert", subject, report=missing_report(route, folder, hours, last_arrival))

    def job(self, notice: JobNotice) -> RenderedEmail:
        """A queued job's end (SUCCESS / FAILED) or the NOT NOTIFIED alert."""
        return self._both("alert", job_subject(notice), report=job_report(notice))

    def trouble(self, notice: TroubleNotice) -> RenderedEmail:
        """A failure episode starts (PROBLEM) or ends (RESOLVED)."""
        return self._both("alert", trouble_subject(notice), report=trouble_report(notice))


def _with_keys(rendered: RenderedEmail, keys_csv: Path | None) -> RenderedEmail:
    """Attach a guard's key list (gzipped when large); the reason names where it is saved too."""
    if keys_csv is None or not keys_csv.is_file():
        return rendered
    data, name, mimetype = keys_csv.read_bytes(), keys_csv.name.partition("-")[2] or keys_csv.name, "text/csv"
    if len(data) > GZIP_OVER:
        data, name, mimetype = gzip.compress(data), f"{name}.gz", "application/gzip"
    return replace(rendered, attachments=(*rendered.attachments, Attachment(name, data, mimetype)))
