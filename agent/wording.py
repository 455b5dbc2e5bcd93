"""The words of every report: formatted numbers and times, status badges, meanings, next steps, subjects.

Why here and not in the templates: admins may edit the templates (layout, branding), but the facts,
the advice and the subjects (part of the user-facing contract) stay in Python, where they are
tested. Every number an admin reads is formatted once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from agent.advice import command_start, errors_command, post_command
from agent.profiles import TargetProfile, profile_for
from agent.records import BatchOutcome, FileOutcome, JobNotice, Progress, RecordLog, Status
from agent.wording_files import changed_in_flight_step, stray_step

SUBJECT_PREFIX = "[feed-agent]"
# The order statuses are counted in, in the summary subject and table (the enum's order).
STATUS_ORDER = tuple(Status)
UNKNOWN = "—"
NOT_NOTIFIED = "NOT NOTIFIED"
WEBHOOK_HOW_TO = (
    "To have feed-agent report each job's real end (SUCCESS or FAILED, and NOT NOTIFIED when AlumnIQ stays "
    "silent), add a [webhook] section with listen (and public_url, the address AlumnIQ can reach) and run "
    "feed-agent watch."
)


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


def format_time_left(seconds: float | None) -> str:
    """`about 12 min left`: an estimate, so rounded to what an admin plans with; "" when unknown."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "under a minute left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"about {hours} h {minutes:02d} min left"


def upload_line(sent: int, total: int, seconds: float, *, done: bool = False) -> str:
    """`post`'s progress on a terminal: `uploading: 12.0 MB of 300.0 MB (4%), 2.0 MB/s, about 2 min 24 s left`."""
    rate = sent / seconds if seconds > 0 else 0.0
    speed = f"{format_size(round(rate))}/s" if rate else "measuring speed"
    if done:
        return f"  uploaded: {format_size(sent)} in {format_duration(seconds)}" + (f" ({speed})" if rate else "")
    share = f" ({sent * 100 // total}%)" if total else ""
    left = f", about {format_duration((total - sent) / rate)} left" if rate else ""
    return f"  uploading: {format_size(sent)} of {format_size(total)}{share}, {speed}{left}"


def format_time(moment: datetime | None) -> str:
    """`2026-11-22 07:00:05 UTC`; a naive datetime is taken to be UTC already."""
    if moment is None:
        return UNKNOWN
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_count(value: int | None) -> str:
    return UNKNOWN if value is None else f"{value:,}"


def count_text(progress: Progress | None) -> str:
    """ " (completed 3, warnings 0, errors 1)" after a status in a narrated line; "" without counts."""
    if progress is None:
        return ""
    return f" (completed {progress.completed}, warnings {progress.warnings}, errors {progress.errors})"


def format_hours(hours: float) -> str:
    """`26 hours`, `1 hour`, `1.5 hours`."""
    text = f"{round(hours, 1):g}"
    return f"{text} hour" if text == "1" else f"{text} hours"


def _sentence(text: str) -> str:
    """A message as one sentence ending in a full stop (messages come with or without one); not
    after a command that ends it (a copied `--force.` would not run)."""
    text = text.strip()
    if not text or command_start() in text:
        return text
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
    Status.UNCONFIRMED.value: ("#8250df", "#ffffff"),  # violet: not a failure we know of, an unknown
    Status.HELD.value: ("#5b7083", "#ffffff"),
    Status.QUEUED.value: ("#1f6feb", "#ffffff"),
    "STILL PROCESSING": ("#1f6feb", "#ffffff"),
    "MISSING": _RED,
    NOT_NOTIFIED: _RED,
    "PROBLEM": _RED,
    "RESOLVED": ("#1a7f37", "#ffffff"),
}


def badge(label: str) -> Badge:
    background, foreground = BADGE_COLOURS.get(label, ("#5b7083", "#ffffff"))
    return Badge(label, background, foreground)


def _profile(outcome: FileOutcome) -> TargetProfile:
    return profile_for(outcome.target_type)


def status_meaning(outcome: FileOutcome) -> str:
    """One sentence that says what the status word means for this file."""
    if outcome.entry_kind:
        return f"It was not sent: it is a {outcome.entry_kind}, and only regular files are processed."
    if outcome.changed_in_flight:
        return f"The file changed while it was being sent: {_profile(outcome).destination} has an incomplete copy."
    profile = _profile(outcome)
    where = profile.destination
    delivered = f"{where} processed every record." if profile.learn_feeds else f"The file was delivered to {where}."
    meanings = {
        Status.SUCCESS: delivered,
        Status.WARNINGS: f"{where} processed the file; some records have warnings.",
        Status.ERRORS: f"{where} processed the file, but some records were not processed.",
        Status.FAILED: f"{where} did not accept or could not process the file.",
        Status.REJECTED: "The file was not sent: it failed the checks the agent makes before sending.",
        Status.HELD: "The file was not sent: it is held until the problem below is fixed.",
        Status.TIMED_OUT: f"{where} accepted the file but had not finished processing it in time.",
        Status.UNCONFIRMED: (
            f"The whole file was sent, but {where}'s answer never came: {where} may have accepted it. "
            "The agent does not send it again by itself."
        ),
        Status.QUEUED: (
            f"The file was delivered and {where} queued job {_reference(outcome)} to consume it; the job runs "
            "later (big files: 30-60 minutes), so whether it succeeds is not known yet."
        ),
    }
    return meanings[outcome.status]


def target_label(outcome: FileOutcome) -> str:
    """`learn`, or `moodle-s3 (s3)` when the section name does not already say the type."""
    if outcome.target == outcome.target_type:
        return outcome.target
    return f"{outcome.target} ({outcome.target_type})"


def receipt_label(outcome: FileOutcome) -> str:
    return _profile(outcome).receipt_label


def object_label(outcome: FileOutcome) -> str:
    return _profile(outcome).object_label(outcome.object)


def look_up(outcome: FileOutcome) -> str:
    """Where an admin looks a receipt up, e.g. 'reference X in Learn: System Admin → …'."""
    return _profile(outcome).look_up(outcome.receipt.reference if outcome.receipt else None)


def _which_records(outcome: FileOutcome) -> str:
    record = outcome.record_log
    if record is not None and record.total:
        return "the records and the reasons Learn gave are listed below (every entry is in the attached log)"
    return f"look up {look_up(outcome)} to see which records and why"


def next_step(outcome: FileOutcome) -> str:
    """What the admin should do now, in plain words (the most important line of every report)."""
    step = _status_step(outcome)
    if not outcome.not_moved:
        return step
    return (
        f"The file is still in processing/: {_sentence(outcome.not_moved)} Fix that; the agent then moves it by "
        f"itself and never sends it again for this. {step}"
    )


def _status_step(outcome: FileOutcome) -> str:
    drop = str(outcome.drop_folder) if outcome.drop_folder else "the drop folder"
    progress = outcome.progress
    ref = outcome.receipt.reference if outcome.receipt else None
    what = _sentence(outcome.message)
    status = outcome.status
    if outcome.entry_kind:
        return stray_step(outcome, drop)
    if outcome.changed_in_flight:
        return changed_in_flight_step(outcome, drop)
    if status is Status.SUCCESS:
        return "Nothing to do."
    if status is Status.QUEUED:
        return _queued_step(outcome)
    if status is Status.WARNINGS:
        count = f"{progress.warnings:,} record(s) have" if progress else "Some records have"
        return (
            f"Nothing is blocked, but {count} warnings: {_which_records(outcome)}, "
            "and correct them in the SIS if needed."
        )
    if status is Status.ERRORS:
        count = f"{progress.errors:,} record(s) were" if progress else "Some records were"
        return (
            f"{count} not processed: {_which_records(outcome)}. "
            "Fix them in the SIS; they go out with the next export (or move a corrected file "
            f"into {drop})."
        )
    if status is Status.TIMED_OUT:
        return (
            f"The upload was accepted with reference {ref or '(none)'}, but the agent stopped waiting "
            f"before it finished. Check {look_up(outcome)} before re-sending: if it finished "
            f"there, there is nothing to do; if it did not, move the file back into {drop}."
        )
    if status is Status.HELD:
        return _held_step(outcome, drop, what)
    if status is Status.UNCONFIRMED:
        return _unconfirmed_step(outcome, drop)
    step = f"What is wrong: {what} " if what else ""
    if status is Status.FAILED and ref:
        # Accepted: moving it back would send it twice unless Learn shows it never ran.
        return step + (
            f"The upload was accepted, so check {look_up(outcome)} before anything else: if it was "
            f"processed there, do not send it again; if not, fix the problem, then move the file back into {drop}."
        )
    return step + f"Fix it, then move the file back into {drop}."


def _unconfirmed_step(outcome: FileOutcome, drop: str) -> str:
    profile = _profile(outcome)
    when = format_time(outcome.sent_at or outcome.finished_at)
    return (
        f"Do not move it back yet: {profile.destination} may already have it. Look in "
        f"{profile.recent_uploads} for a data set received at about {when}. If you find one, the file was "
        f"accepted: leave it in failed/ (and follow that data set there). If there is none, move the file "
        f"back into {drop} to send it again."
    )


def no_receipt(outcome: FileOutcome) -> str:
    """The receipt line of a report without one: 'not accepted', unless the answer never came."""
    return "none (the answer never came)" if outcome.status is Status.UNCONFIRMED else "none (not accepted)"


def unanswered_at_restart(name: str, destination: str) -> str:
    """Why a file is UNCONFIRMED when the agent itself stopped (a crash, a power cut) between its
    last byte and the destination's answer."""
    return (
        f"the whole of {name} was sent to {destination}, but feed-agent stopped before {destination}'s answer "
        f"was read. {destination} may have accepted it, so it was not sent again"
    )


def _reference(outcome: FileOutcome) -> str:
    return outcome.receipt.reference if outcome.receipt else "(none)"


def _queued_step(outcome: FileOutcome) -> str:
    """Who will hear about the job's end, from the receipt (`completion`: webhook, email or none)."""
    details = outcome.receipt.details if outcome.receipt else {}
    completion = details.get("completion", "none")
    if completion == "webhook":
        hours = format_hours(float(details.get("notify_within_hours") or 0))
        return (
            "Nothing yet. When AlumnIQ calls back, feed-agent sends a SUCCESS or FAILED report for this job; "
            f"if it has not called back within {hours}, a NOT NOTIFIED alert."
        )
    if completion == "email":
        address = details.get("notify_email", "the notify_email address")
        return f"AlumnIQ emails {address} when the job ends. {WEBHOOK_HOW_TO}"
    return f"Nobody will be told when the job ends (no notify_email, no webhook). {WEBHOOK_HOW_TO}"


def _held_step(outcome: FileOutcome, drop: str, what: str) -> str:
    if outcome.held_by:
        reason = f" {what}" if what else ""
        return (
            f"It was not sent because it depends on {outcome.held_by}, which did not reach "
            f"{_profile(outcome).destination}.{reason} Fix {outcome.held_by} first, then move both files back "
            f"into {drop}."
        )
    # A command in the reason (the refresh guard's) ends its line: the text email keeps it whole.
    step = f"What is wrong: {what}" + ("\n" if command_start() in what else " ") if what else ""
    step += f"Fix it, then move the file back into {drop}."
    if outcome.final_path and "--force" not in what:
        command = post_command(
            outcome.config_path, outcome.final_path, route=outcome.route, operation=outcome.operation, force=True
        )
        step += f" If the file is right as it is, send it anyway with: {command}"
    return step


def object_operation(outcome: FileOutcome) -> str:
    """The `object/operation` part of a per-file subject (`course/store`, `s3/upload`)."""
    return _profile(outcome).subject_part(outcome.object, outcome.operation)


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
# Learn's record-level log (why each record failed)

RECORD_DETAILS_SECTION = "Record details in reports"


def record_details_hint(outcome: FileOutcome) -> str:
    """Without REST keys: the one sentence that says how to get the records and reasons in the email."""
    if outcome.record_log is not None or outcome.status not in (Status.ERRORS, Status.WARNINGS):
        return ""
    if not _profile(outcome).record_logs:
        return ""
    return (
        "To get the records and the reasons in this email, give the Learn target a REST application "
        f'(rest_key and rest_secret): see "{RECORD_DETAILS_SECTION}" in the admin guide.'
    )


def record_log_heading(record: RecordLog) -> str:
    """ "Learn's record log: 12 errors, 3 warnings" (the levels fetched, worst first)."""
    parts = [
        f"{record.counts.get(level, 0):,} {word}" for level, word in (("Error", "errors"), ("Warning", "warnings"))
    ]
    other = record.total - record.counts.get("Error", 0) - record.counts.get("Warning", 0)
    if other:
        parts.append(f"{other:,} other entries")
    return "Learn's record log: " + ", ".join(parts)


def record_log_problem(outcome: FileOutcome) -> str:
    """Why the record details are missing or incomplete, and how to fetch them later."""
    record = outcome.record_log
    if record is None or not record.problem:
        return ""
    fetch = errors_command(outcome.config_path, record.reference)
    if record.total:
        return (
            f"Only the first {record.total:,} log entries could be read: {_sentence(record.problem)} "
            f"Fetch the complete log later with: {fetch}"
        )
    return f"The record details could not be read: {_sentence(record.problem)} Fetch them later with: {fetch}"


def largest_group(outcome: FileOutcome) -> str:
    """The summary's line for a file: its largest group of log messages and its size."""
    record = outcome.record_log
    if record is None or not record.groups:
        return ""
    group = record.groups[0]
    return f"{group.count:,} × {group.shape}"


# ----------------------------------------------------------------------------------------------
# Jobs that end later: the completion report and the NOT NOTIFIED alert


def job_label(notice: JobNotice) -> str:
    return notice.status.value if notice.status is not None else NOT_NOTIFIED


def job_subject(notice: JobNotice) -> str:
    """Same shape as a per-file subject: `[feed-agent] FAILED warehouse.csv — job/upload`."""
    return f"{SUBJECT_PREFIX} {job_label(notice)} {notice.name} — {profile_for('job').subject_part(None, None)}"


def job_title(notice: JobNotice) -> str:
    if notice.status is None:
        return f"No word from AlumnIQ about job {notice.job_id} ({notice.name})"
    ended = "succeeded" if notice.status is Status.SUCCESS else "failed"
    return f"Job {notice.job_id} for {notice.name} {ended}"


def job_meaning(notice: JobNotice) -> str:
    queued = format_time(notice.queued_at)
    if notice.status is None:
        return (
            f"Job {notice.job_id} was queued at {queued} to consume {notice.name}, and AlumnIQ has not said "
            f"whether it ran by {format_time(notice.notify_by)}. It may still be waiting in AlumnIQ's queue or "
            "failing and being retried, or the notification could not reach feed-agent."
        )
    late = " (after the NOT NOTIFIED alert: this is its follow-up)" if notice.late else ""
    said = f' AlumnIQ said: "{notice.message}".' if notice.message else ""
    return (
        f"AlumnIQ reported that job {notice.job_id} for {notice.name} "
        f"{'succeeded' if notice.status is Status.SUCCESS else 'failed'}: queued at {queued}, "
        f"finished at {format_time(notice.finished_at)}{late}.{said}"
    )


def job_next_step(notice: JobNotice) -> str:
    if notice.status is Status.SUCCESS:
        return "Nothing to do."
    if notice.status is None:
        return (
            f"Look up job {notice.job_id} in AlumnIQ Admin (Tasks, Webhooks). If it finished there, check that "
            "AlumnIQ can reach the webhook (feed-agent check; public_url behind the proxy). A notification that "
            "still arrives is reported as a follow-up."
        )
    return (
        f"Read AlumnIQ's message above and look up job {notice.job_id} in AlumnIQ Admin; AlumnIQ retries "
        f"failed jobs up to 5 times before it reports a failure. Fix the cause, then move the file from "
        f"{notice.location or 'archive/'} back into {notice.drop_folder or 'the drop folder'} to upload it and "
        "queue the job again."
    )
