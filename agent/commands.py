"""The commands that are not the long-running loop: `post` (one file by hand), `status` and `check`.

`post` runs the same pipeline as the daemon, on one file, narrated on the terminal; `--keep` adopts
the file where it is instead of moving it. `status` reads the journal (the daemon may be writing it
meanwhile: WAL lets both). `check` validates the configuration and reaches every target and the
mail server with the configured credentials, without sending data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from agent import archive
from agent.journal import Journal
from agent.mailer import Mailer
from agent.notify import EmailReporter
from agent.pipeline import BatchContext, Pipeline
from agent.profiles import make_target
from agent.records import CheckResult, FileOutcome, Status, UploadProgress
from agent.settings import Config
from agent.spool import describe, spool_state


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
        pipeline = Pipeline(config, journal, reporter, narrate=echo, upload_progress=upload_progress)
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
    return "\n".join([*lines, *reports])


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
    return results
