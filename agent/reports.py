"""Report models: what the email templates see, built from pipeline outcomes, every text already formatted.

The templates only lay out these facts (sizes, durations, UTC times, the next step in plain words);
the words themselves come from `agent.wording`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.history import Chart, chart
from agent.logreport import RecordLogView, record_log_view
from agent.profiles import profile_for
from agent.records import BatchOutcome, FileOutcome, JobNotice, Status, TroubleNotice
from agent.summarylist import listed
from agent.wording import (
    BADGE_COLOURS,
    UNKNOWN,
    Badge,
    badge,
    format_count,
    format_duration,
    format_hours,
    format_size,
    format_time,
    format_time_left,
    job_label,
    job_meaning,
    job_next_step,
    job_title,
    largest_group,
    look_up,
    next_step,
    no_receipt,
    object_label,
    object_operation,
    receipt_label,
    record_details_hint,
    status_counts,
    status_meaning,
    target_label,
)
from agent.wording_troubles import trouble_meaning, trouble_next_step, trouble_title

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
    record_log: RecordLogView | None = None  # Learn's record-level log, when it was fetched
    record_hint: str = ""  # without REST keys: how to get the records and reasons in this email
    notice: str = ""  # sent, but unusual (a store far below its feed's usual size)

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


def file_report(outcome: FileOutcome, attachment_note: str = "") -> FileReport:
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
        object=object_label(outcome),
        operation=object_operation(outcome).split("/", 1)[1],
        target=target_label(outcome),
        receipt_label=receipt_label(outcome),
        receipt=receipt.reference if receipt else no_receipt(outcome),
        started=format_time(outcome.started_at),
        finished=format_time(outcome.finished_at),
        duration=format_duration(outcome.duration_seconds),
        completed=format_count(progress.completed if progress else None),
        warnings=format_count(progress.warnings if progress else None),
        errors=format_count(progress.errors if progress else None),
        queued=format_count(progress.queued if progress else None),
        location=str(outcome.final_path) if outcome.final_path else "not known",
        drop_folder=str(outcome.drop_folder) if outcome.drop_folder else "the drop folder",
        record_log=record_log_view(outcome, attachment_note),
        record_hint=record_details_hint(outcome),
        notice=outcome.notice,
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
    largest_group: str = ""  # the record log's largest group of messages, with its count


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
    notices: tuple[Fact, ...] = ()  # sent, but unusual: file name → the notice
    more: str = ""  # "… and 19,800 more files (…)": the files the body leaves out, when there are any
    attachment: str = ""  # what the attached list holds
    charts: tuple[Chart, ...] = ()  # each feed's last deliveries as bars (today's marked)


MAIL_PROBLEMS_LISTED = 20


def _capped(problems: list[str]) -> tuple[str, ...]:
    """Earlier mail failures, the first ones only: a mail server down for a week is one story."""
    if len(problems) <= MAIL_PROBLEMS_LISTED:
        return tuple(problems)
    left = len(problems) - MAIL_PROBLEMS_LISTED
    return (*problems[:MAIL_PROBLEMS_LISTED], f"… and {format_count(left)} more (see the log)")


def _more(unlisted: int, problems: int, attachment_note: str) -> str:
    if not unlisted:
        return ""
    among = f", {format_count(problems)} of them with problems" if problems else ", none with problems"
    where = attachment_note or "the list was too big to attach; `feed-agent status` shows recent files"
    return f"… and {format_count(unlisted)} more files{among}: {where}"


def _summary_row(outcome: FileOutcome) -> SummaryRow:
    progress = outcome.progress
    label = object_label(outcome)
    return SummaryRow(
        status=badge(outcome.status.value),
        name=outcome.name,
        object=label,
        rows=format_count(outcome.rows),
        completed=format_count(progress.completed if progress else None),
        warnings=format_count(progress.warnings if progress else None),
        errors=format_count(progress.errors if progress else None),
        code=outcome.receipt.reference if outcome.receipt else "",
        largest_group=largest_group(outcome),
    )


def _held_reason(outcome: FileOutcome) -> str:
    if outcome.held_by:
        reason = f"waits for {outcome.held_by}, which did not reach {profile_for(outcome.target_type).destination}"
        return f"{reason}; {outcome.message}" if outcome.message else reason
    return outcome.message or "held (no reason recorded)"


def _overall_meaning(batch: BatchOutcome) -> str:
    if not batch.files:
        return "No files were processed."
    if batch.ok:
        return "Every file was processed without problems."
    needing = sum(1 for f in batch.files if not f.status.ok)
    return f"{needing} of {len(batch.files)} file(s) need attention; see below."


def summary_report(batch: BatchOutcome, attachment_note: str = "") -> SummaryReport:
    """The summary's model. The totals count every file; the rows, held and attention lists only
    the files the body names (`agent.summarylist`: at most 200, problems first)."""
    files = batch.files
    shown, unlisted = listed(files)
    problems_left_out = sum(1 for f in files if not f.status.ok) - sum(1 for f in shown if not f.status.ok)

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
        rows=tuple(_summary_row(f) for f in shown),
        total_rows=format_count(sum(rows)) if rows else UNKNOWN,
        total_completed=total("completed"),
        total_warnings=total("warnings"),
        total_errors=total("errors"),
        held=tuple(Fact(f.name, _held_reason(f)) for f in shown if f.status is Status.HELD),
        attention=tuple(Fact(f.name, next_step(f)) for f in shown if not f.status.ok and f.status is not Status.HELD),
        mail_problems=_capped(batch.mail_problems),
        more=_more(unlisted, problems_left_out, attachment_note),
        attachment=attachment_note,
        notices=tuple(Fact(f.name, f.notice) for f in files if f.notice),
        charts=tuple(chart(h, {k: v[0] for k, v in BADGE_COLOURS.items()}) for h in batch.history if h.points),
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
    where = profile_for(outcome.target_type).destination
    facts = [
        Fact("File", outcome.name),
        Fact("Object / operation", object_operation(outcome)),
        Fact("Target", target_label(outcome)),
        Fact(receipt_label(outcome), ref),
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
    left = format_time_left(progress.eta_seconds if progress is not None else None)
    if left:
        facts.append(Fact("Time left (estimate)", left.removesuffix(" left")))
    pace = f" ({left} at the pace so far)" if left else ""
    return AlertReport(
        status=badge("STILL PROCESSING"),
        title=f"{outcome.name} is still being processed",
        meaning=(
            f"{where} accepted {outcome.name} {format_duration(minutes * 60)} ago and is still working on "
            f"it{pace}. Large files or a busy server can take this long; the agent keeps checking and sends "
            "the final report when it is done."
        ),
        next_step=(
            f"Nothing yet, and do not send the file again meanwhile. If it stays like this, look up "
            f"{look_up(outcome)} to see whether it is queued behind other work."
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


def job_report(notice: JobNotice) -> AlertReport:
    """A queued job's end (SUCCESS / FAILED with AlumnIQ's message) or its silence (NOT NOTIFIED)."""
    facts = [
        Fact("File", notice.name),
        Fact("Route", notice.route),
        Fact("Target", notice.target),
        Fact("Job id", notice.job_id),
        Fact("Queued at", format_time(notice.queued_at)),
    ]
    if notice.status is None:
        facts.append(Fact("Expected by", format_time(notice.notify_by)))
    else:
        facts += [
            Fact("Finished at", format_time(notice.finished_at)),
            Fact("AlumnIQ said", notice.message or UNKNOWN),
        ]
        if notice.queued_at and notice.finished_at:
            facts.append(Fact("Queued for", format_duration((notice.finished_at - notice.queued_at).total_seconds())))
    facts.append(Fact("File is now in", notice.location or "not known"))
    return AlertReport(
        status=badge(job_label(notice)),
        title=job_title(notice),
        meaning=job_meaning(notice),
        next_step=job_next_step(notice),
        facts=tuple(facts),
    )


def trouble_report(notice: TroubleNotice) -> AlertReport:
    """A failure episode: once when a step starts failing (PROBLEM), once when it works again (RESOLVED)."""
    facts = [
        Fact("What", trouble_title(notice.key)),
        Fact("Failing since", format_time(notice.since)),
        Fact("Failed attempts", f"{notice.attempts:,}"),
        Fact("Latest error", notice.problem),
    ]
    if notice.cleared_at is not None:
        facts.append(Fact("Works again since", format_time(notice.cleared_at)))
    elif notice.retry_seconds:
        facts.append(Fact("Next try in", format_duration(notice.retry_seconds)))
    return AlertReport(
        status=badge("RESOLVED" if notice.cleared_at is not None else "PROBLEM"),
        title=trouble_title(notice.key),
        meaning=trouble_meaning(notice),
        next_step=trouble_next_step(notice),
        facts=tuple(facts),
    )
