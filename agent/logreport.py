"""Learn's record-level log in a per-file email: the section the templates lay out, and the attachment.

Why the body stays short and the attachment carries the rest: 250 errors listed one by one bury the
three reasons behind them. The body shows the groups (largest first, with counts and examples) and
the first entries as Learn wrote them; the complete log travels as `NAME.log.csv` (gzipped over
1 MB) and always stays in `archive/`. The whole email must stay under `[email] max_message_mb`
(campus mail systems refuse more), so when the log does not fit, the attachment holds what fits
and the body says where the full file is.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from agent.archive import split_name
from agent.records import FileOutcome
from agent.wording import format_count, format_size, record_log_heading, record_log_problem

GZIP_OVER = 1024 * 1024  # attachments above this are gzipped
MIME_GROWTH = 4 / 3  # base64 in the MIME message
FLUSH_EVERY = 256  # lines between size checks while compressing
GROUPS_SHOWN = 10  # the body shows the largest groups; the attachment has every entry


@dataclass(frozen=True)
class GroupView:
    count: str
    level: str
    shape: str
    examples: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.count} × {self.level}: {self.shape}"

    @property
    def value(self) -> str:
        return "e.g. " + " · ".join(self.examples)


@dataclass(frozen=True)
class EntryView:
    level: str
    line: str
    message: str

    @property
    def label(self) -> str:
        named = self.line and f"line {self.line}" in self.message.lower()  # Learn wrote it already
        return f"{self.level} (line {self.line})" if self.line and not named else self.level

    @property
    def value(self) -> str:
        return self.message


@dataclass(frozen=True)
class RecordLogView:
    """What the per-file templates show of the record log (every text already formatted)."""

    heading: str
    groups: tuple[GroupView, ...]  # the largest GROUPS_SHOWN
    more_groups: str  # "and 4 smaller groups (9 entries) in the attached log", or ""
    first: tuple[EntryView, ...]
    first_label: str  # "The first 50 of 250 entries, as Learn wrote them"
    problem: str  # why details are missing or incomplete, and how to fetch them later
    attachment: str  # what is attached and where the complete log is


@dataclass(frozen=True)
class LogFile:
    """The attachment made from a saved log: name, bytes, type, and a sentence about it."""

    filename: str
    data: bytes
    mimetype: str
    note: str


def record_log_view(outcome: FileOutcome, attachment_note: str = "") -> RecordLogView | None:
    record = outcome.record_log
    if record is None:
        return None
    groups = tuple(GroupView(format_count(g.count), g.level, g.shape, g.examples) for g in record.groups)
    rest = record.groups[GROUPS_SHOWN:]
    more = (
        f"… and {len(rest)} smaller group(s) ({format_count(sum(g.count for g in rest))} entries) in the log."
        if rest
        else ""
    )
    first = tuple(EntryView(e.level, "" if e.line is None else str(e.line), e.message) for e in record.first)
    label = (
        f"The first {len(first)} of {format_count(record.total)} entries, as Learn wrote them"
        if record.total > len(first)
        else "Every entry, as Learn wrote it"
    )
    return RecordLogView(
        heading=record_log_heading(record),
        groups=groups[:GROUPS_SHOWN],
        more_groups=more,
        first=first,
        first_label=label,
        problem=record_log_problem(outcome),
        attachment=attachment_note,
    )


def attachment_name(outcome: FileOutcome) -> str:
    stem, _suffixes = split_name(outcome.name)
    return f"{stem}.log.csv"


def log_file(outcome: FileOutcome, budget: int) -> LogFile | None:
    """The log as an attachment of at most `budget` bytes in the message (after base64).

    Up to 1 MB it goes as it is; bigger, gzipped; when even that does not fit, the first lines that
    fit are sent and the note says where the complete log is."""
    record = outcome.record_log
    path = record.csv_path if record is not None else None
    if path is None or not path.is_file():
        return None
    raw_budget = int(budget / MIME_GROWTH)
    name = attachment_name(outcome)
    size = path.stat().st_size
    if size <= GZIP_OVER and size <= raw_budget:
        return LogFile(
            name, path.read_bytes(), "text/csv", f"The complete log is attached ({name}) and saved at {path}."
        )
    data, lines, complete = _gzipped(path, raw_budget)
    if complete:
        note = f"The complete log is attached, gzipped ({name}.gz, {format_size(len(data))}), and saved at {path}."
    elif lines:
        note = (
            f"The log is too big for one email: the attached {name}.gz holds its first {format_count(lines)} "
            f"entries; the complete log is saved at {path}."
        )
    else:
        return None
    return LogFile(f"{name}.gz", data, "application/gzip", note)


def _gzipped(path: Path, limit: int) -> tuple[bytes, int, bool]:
    """(gzip bytes, entries kept, whether all were kept): whole lines only, never over `limit`."""
    buffer = io.BytesIO()
    kept_size = 0
    kept_lines = 0
    with path.open("rb") as source, gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as packed:
        pending = 0
        for line in source:
            packed.write(line)
            pending += 1
            if pending >= FLUSH_EVERY:
                packed.flush()
                if buffer.tell() + 64 > limit:
                    break
                kept_size, kept_lines, pending = buffer.tell(), kept_lines + pending, 0
        else:
            packed.close()
            if buffer.tell() <= limit:
                return buffer.getvalue(), kept_lines + pending - 1, True
    # Over the limit: keep the lines up to the last check that fitted, as a valid gzip stream.
    return _first_lines(path, kept_lines - 1, limit) if kept_size else (b"", 0, False)


def _first_lines(path: Path, count: int, limit: int) -> tuple[bytes, int, bool]:
    """The header and the first `count` entries, gzipped (halved until they fit)."""
    while count > 0:
        buffer = io.BytesIO()
        with path.open("rb") as source, gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as packed:
            for number, line in enumerate(source):
                if number > count:
                    break
                packed.write(line)
        if buffer.tell() <= limit:
            return buffer.getvalue(), count, False
        count //= 2
    return b"", 0, False
