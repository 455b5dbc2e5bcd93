"""The commands that are not the long-running loop: `post` (one file by hand), `status` and `check`.

`post` runs the same pipeline as the daemon, on one file, narrated on the terminal; `--keep` adopts
the file where it is instead of moving it. `status` reads the journal (the daemon may be writing it
meanwhile: WAL lets both). `check` validates the configuration and reaches every target and the
mail server with the configured credentials, without sending data.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from agent import archive
from agent.batchitem import BatchContext
from agent.completions import JobFollowUp, configured_base_url
from agent.journal import Journal
from agent.journal_schema import JobRecord, JobState
from agent.mailer import Mailer
from agent.notify import EmailReporter
from agent.pipeline import Pipeline
from agent.profiles import make_target
from agent.records import CheckResult, FileOutcome, Status, UploadProgress
from agent.settings import Config, WebhookSettings
from agent.spool import describe, spool_state
from agent.wording import format_duration


def post_file(
    config: Config,
    path: Path,
    *,
    object_slug: str | None = None,
    operation: str | None = None,
    route_name: str | None = None,
    keep: bool = False,
    force: bool = False,
    echo: Callable[[str], None] = print,
    upload_progress: UploadProgress | None = None,
) -> FileOutcome:
    """`feed-agent post`: one file by hand, narrated; archived unless `keep`; `upload_progress` hears
    the upload's bytes (the CLI's meter on a terminal)."""
    route = config.route(route_name)
    archive.prepare_folders(config.agent)
    with Journal(config.agent.journal_path) as journal:
        reporter = EmailReporter(config, journal)
        reporter.deliver_waiting(force=True)  # reports an earlier run could not send go first
        follow_up = JobFollowUp(config, journal, reporter, base_url=configured_base_url(config.webhook))
        pipeline = Pipeline(
            config, journal, reporter, narrate=echo, upload_progress=upload_progress, follow_up=follow_up
        )
        if not path.is_file():
            echo(f"{path}: no such file")
            return FileOutcome(
                name=path.name,
                route=route.name,
                target=route.target,
                target_type=config.targets[route.target].type,
                status=Status.FAILED,
                message=f"{path}: no such file",
            )
        if keep:
            file_id = pipeline.adopt(route, path)
        else:
            claimed = pipeline.claim(route, path)
            if claimed is None:
                raise FileNotFoundError(path)
            file_id = claimed
        echo(f"posting {path.name} via route {route.name} to target {route.target}")
        context = BatchContext(force=force, keep=keep, object_override=object_slug, operation_override=operation)
        try:
            batch = pipeline.process(route, [file_id], context)
        finally:
            pipeline.close()
    outcome = batch.files[0]
    counts = outcome.progress
    echo(f"result: {outcome.status.value}" + (f" — reference {outcome.receipt.reference}" if outcome.receipt else ""))
    if counts is not None:
        echo(
            f"counts: completed {counts.completed}, warnings {counts.warnings}, errors {counts.errors}, "
            f"queued {counts.queued}"
        )
    if outcome.message:
        echo(f"reason: {outcome.message}")
    echo(f"file: {outcome.final_path}")
    return outcome


def status_report(config: Config, limit: int = 20) -> str:
    """`feed-agent status`: in-flight files first, then recent files and batches."""
    reports = ["", "Reports:", *[f"  {line}" for line in describe(spool_state(config)) or ["none waiting"]]]
    if not config.agent.journal_path.exists():
        return "\n".join([f"No files handled yet (no journal at {config.agent.journal_path}).", *reports])
    with Journal(config.agent.journal_path) as journal:
        files = journal.recent_files(limit)
        batches = journal.recent_batches(max(1, limit // 2))
        awaiting = journal.jobs(awaiting_only=True, limit=limit)
        ended = [j for j in journal.jobs(limit=limit) if j.state in (JobState.SUCCEEDED, JobState.FAILED)]
    lines = ["Files (in flight first):"]
    header = ("ID", "FILE", "ROUTE", "OBJECT/OP", "STATE", "STATUS", "ROWS", "C/W/E", "REFERENCE", "UPDATED")
    rows = []
    for f in files:
        counts = "/".join(str(x if x is not None else "-") for x in (f.completed, f.warnings, f.errors))
        rows.append(
            (
                str(f.id),
                f.name,
                f.route,
                f"{f.object or '-'}/{f.operation or '-'}",
                f.state,
                f.status or "-",
                "-" if f.rows is None else str(f.rows),
                counts,
                f.reference or "-",
                _short_time(f.updated_at),
            )
        )
    lines += _table(header, rows) if rows else ["  (none)"]
    lines += ["", "Batches:"]
    batch_rows = [
        (
            str(b.id),
            b.route,
            _short_time(b.started_at),
            _short_time(b.finished_at) if b.finished_at else "running",
            str(b.files),
            b.status or "-",
        )
        for b in batches
    ]
    lines += (
        _table(("ID", "ROUTE", "STARTED", "FINISHED", "FILES", "STATUS"), batch_rows) if batch_rows else ["  (none)"]
    )
    if awaiting or ended or config.webhook.enabled:
        lines += ["", "Jobs awaiting notification:", *_awaiting_table(awaiting)]
        lines += ["", "Jobs ended (as AlumnIQ reported):", *_ended_table(ended)]
    return "\n".join([*lines, *reports])


def _ended_table(jobs: Sequence[JobRecord]) -> list[str]:
    rows = [
        (
            job.name,
            job.job_id or "-",
            "SUCCESS" if job.state is JobState.SUCCEEDED else "FAILED",
            _short_time(job.notified_at),
            (job.message or "")[:60],
        )
        for job in jobs
    ]
    return _table(("FILE", "JOB ID", "RESULT", "NOTIFIED", "MESSAGE"), rows) if rows else ["  (none)"]


def _awaiting_table(jobs: Sequence[JobRecord]) -> list[str]:
    """Queued jobs AlumnIQ has not reported on yet, with their age; past the deadline is marked."""
    now = datetime.now(timezone.utc)
    rows = []
    for job in jobs:
        age = format_duration((now - job.queued_at).total_seconds()) if job.queued_at else "-"
        overdue = job.notify_by is not None and job.notify_by <= now
        rows.append(
            (
                job.name,
                job.job_id or "-",
                job.target,
                _short_time(job.queued_at),
                age,
                _short_time(job.notify_by) + (" NOT NOTIFIED" if overdue else ""),
            )
        )
    return _table(("FILE", "JOB ID", "TARGET", "QUEUED", "AGE", "EXPECTED BY"), rows) if rows else ["  (none)"]


def _short_time(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    return ["  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in (header, *rows)]


def check(config: Config, *, send_test_email: bool = False, canary: bool = False) -> list[CheckResult]:
    """`feed-agent check`: configuration, folders, every target, the mail server."""
    results = [CheckResult("configuration", True, f"{config.path} is valid")]
    for route in config.routes:
        ok = route.watch.is_dir() and os.access(route.watch, os.R_OK | os.W_OK | os.X_OK)
        detail = (
            f"{route.watch} exists and is writable"
            if ok
            else (f"{route.watch} is missing or not readable/writable by this user; create it or fix its permissions")
        )
        results.append(CheckResult(f"route {route.name} folder", ok, detail))
    for name, settings in config.targets.items():
        target = make_target(settings)
        try:
            results += target.check(canary=canary)
        except Exception as exc:  # a check must report, not crash
            results.append(CheckResult(f"target {name}", False, f"unexpected error: {exc}"))
        finally:
            target.close()
    results += Mailer(config.email, config.agent.outbox_dir).check(send_test=send_test_email)
    if config.webhook.enabled:
        results += webhook_checks(config.webhook)
    return results


def webhook_checks(settings: WebhookSettings) -> list[CheckResult]:
    """Something answers at `listen` (the receiver of a running `watch`), and public_url is https."""
    host, port = settings.address
    try:
        with socket.create_connection((host or "127.0.0.1", port), timeout=5):
            pass
        reach = CheckResult("webhook listener", True, f"{settings.listen} answers")
    except OSError as exc:
        detail = (
            f"nothing answers at {settings.listen} ({exc.strerror or exc}); the receiver runs inside "
            "`feed-agent watch`: start the service, or check listen"
        )
        reach = CheckResult("webhook listener", False, detail)
    public = settings.public_url or f"http://{settings.listen}"
    if urlsplit(public).scheme == "https":
        return [reach, CheckResult("webhook public_url", True, public)]
    detail = (
        f"{public} is not https: each job's secret URL would cross the network in clear; put the "
        "receiver behind an https reverse proxy and set public_url"
    )
    return [reach, CheckResult("webhook public_url", True, detail, warning=True)]
