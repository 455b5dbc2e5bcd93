"""`feed-agent errors FILE|REFERENCE [--csv]`: a delivered file's record-level log, on the terminal.

Why a command: the email may be lost, cut to fit `max_message_mb`, or sent while Learn still kept
the log locked. The saved `archive/NAME.STAMP.log.csv` is read when it is there; otherwise the log
is fetched now (and saved, so the next call is local).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TextIO

from agent import archive
from agent.clock import utcnow
from agent.errors import AgentError
from agent.journal import Journal
from agent.journal_schema import FileRecord
from agent.logdigest import digest_file, read_csv
from agent.profiles import make_target
from agent.records import RecordLog
from agent.settings import Config
from agent.targets.base import RecordLogSource
from agent.wording import record_log_heading


def record_log_for(config: Config, name_or_reference: str) -> RecordLog:
    """The saved log of a delivered file, or the log fetched (and saved) now. Raises AgentError."""
    if not config.agent.journal_path.exists():
        raise AgentError(f"no files handled yet (no journal at {config.agent.journal_path})")
    with Journal(config.agent.journal_path) as journal:
        record = journal.delivered(name_or_reference)
        if record is None or record.reference is None:
            raise AgentError(
                f"no delivered file is named {name_or_reference} or has it as reference code "
                "(feed-agent status lists recent files)"
            )
        saved = journal.record_log_path(record.id)
        if saved is not None and saved.is_file():
            return digest_file(record.reference, saved)
        fetched = _fetch(config, record)
        journal.record_log_saved(record.id, fetched)
    if fetched.problem:
        raise AgentError(f"the record log of {record.name} could not be read: {fetched.problem}")
    return fetched


def _fetch(config: Config, record: FileRecord) -> RecordLog:
    settings = config.targets.get(record.target)
    receipt = record.receipt_object()
    if settings is None or receipt is None:
        raise AgentError(f"{record.name} went to target {record.target}, which is no longer configured")
    target = make_target(settings)
    try:
        if not isinstance(target, RecordLogSource):
            raise AgentError(f"target {record.target} ({settings.type}) keeps no record-level log")
        where = Path(record.current_path) if record.current_path else None
        csv_path = archive.record_log_path(
            where, config.agent.archive_dir, name=record.name, when=record.finished_at or utcnow()
        )
        fetched = target.record_log(receipt, csv_path)
    finally:
        target.close()
    if fetched is None:
        raise AgentError(
            f"target {record.target} has no REST application: set rest_key and rest_secret in "
            f"[target:{record.target}] to read Learn's record log (see the admin guide)"
        )
    return fetched


def print_record_log(record: RecordLog, *, as_csv: bool = False, out: TextIO | None = None) -> None:
    """Every entry (streamed from the saved CSV), after the groups; or the CSV itself."""
    stream = out or sys.stdout
    path = record.csv_path
    if as_csv:
        if path is not None:
            with path.open(encoding="utf-8", newline="") as source:
                shutil.copyfileobj(source, stream)
        return

    def echo(text: str) -> None:
        stream.write(text + "\n")

    echo(f"{record_log_heading(record)} (reference {record.reference})")
    if path is not None:
        echo(f"saved at {path}")
    if record.groups:
        echo("")
        echo("Grouped by message (largest first):")
        for group in record.groups:
            echo(f"  {group.count:>7,} × {group.level}: {group.shape}")
    if path is not None:
        echo("")
        echo("Every entry, as Learn wrote it:")
        for entry in read_csv(path):
            where = f" (line {entry.line})" if entry.line is not None else ""
            echo(f"  {entry.level}{where}: {entry.message}")
