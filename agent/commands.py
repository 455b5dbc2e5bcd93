"""The commands that are not the long-running loop: `status`, `history` and `check` (`post` is agent/posting.py).

`status` reads the journal (the daemon or a `post` may be writing it meanwhile: WAL lets both); a
manual post whose process is gone shows as "interrupted", with the command that resumes it. `check`
validates the configuration and reaches every target and the mail server with the configured
credentials, without sending data.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from agent.advice import resume_post_command
from agent.errors import ConfigError
from agent.history import history_report
from agent.journal import Journal
from agent.journal_schema import FileRecord, JobRecord, JobState, Owner
from agent.mailer import Mailer
from agent.printable import printable
from agent.processes import is_feed_agent
from agent.profiles import make_target
from agent.records import CheckResult
from agent.settings import Config, WebhookSettings
from agent.spool import describe, spool_state
from agent.wording import format_duration
from agent.wording_posts import interrupted_post
from agent.wording_troubles import trouble_status_line


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
        troubles = journal.troubles()
    interrupted = [f for f in files if _post_gone(f)]
    lines = []
    if troubles:  # first: what keeps failing now (each emailed once; the agent retries by itself)
        lines += ["Problems now (the agent retries by itself):"]
        lines += [f"  {trouble_status_line(t.key, t.since, t.attempts, t.problem)}" for t in troubles] + [""]
    lines += ["Files (in flight first):"]
    header = ("ID", "FILE", "ROUTE", "OBJECT/OP", "STATE", "STATUS", "ROWS", "C/W/E", "REFERENCE", "UPDATED")
    rows = []
    for f in files:
        counts = "/".join(str(x if x is not None else "-") for x in (f.completed, f.warnings, f.errors))
        rows.append(
            (
                str(f.id),
                printable(f.name),
                f.route,
                f"{f.object or '-'}/{f.operation or '-'}",
                _state_text(f),
                f.status or "-",
                "-" if f.rows is None else str(f.rows),
                counts,
                f.reference or "-",
                _short_time(f.updated_at),
            )
        )
    lines += _table(header, rows) if rows else ["  (none)"]
    if interrupted:
        lines += ["", "Interrupted posts (only `post` takes them up):"]
        lines += [f"  {_interrupted_line(config, f)}" for f in interrupted]
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


def history(config: Config, *, route: str | None, slug: str | None, days: float) -> str:
    """`feed-agent history`: each feed's deliveries of the last `days` days (read-only)."""
    if route is not None and route not in {r.name for r in config.routes}:
        raise ConfigError(f"there is no route '{route}' in {config.path}")
    with Journal(config.agent.journal_path) as journal:
        return history_report(journal, route=route, slug=slug, days=days)


def _post_gone(record: FileRecord) -> bool:
    """An unfinished manual post whose process is no longer running (closed terminal, SIGKILL, reboot)."""
    if not record.in_flight or not record.owner.manual:
        return False
    return not is_feed_agent(record.owner_pid, started_by=record.updated_at)


def _state_text(record: FileRecord) -> str:
    if not record.in_flight or not record.owner.manual:
        return record.state.value
    if _post_gone(record):
        return "interrupted"
    return f"posting (pid {record.owner_pid})"


def _interrupted_line(config: Config, record: FileRecord) -> str:
    command = resume_post_command(
        config.path, Path(record.current_path or ""), route=record.route, keep=record.owner is Owner.POST_KEEP
    )
    kind = config.targets[record.target].type if record.target in config.targets else "learn"
    return interrupted_post(record, kind, command)


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
