"""Which files a batch summary lists in its body, and the CSV of every file that travels with it.

Why: the summary of a 20,000-file batch listed every file and weighed 38 MB, over every relay's
limit, so the one email that says how the night went was never delivered. The body now lists at
most `LISTED` files, problems first (worst status first, then the batch's order), then the rest; a
longer batch attaches the complete list as CSV (gzipped when big), so the body stays readable and
nothing is lost. When even the gzipped list would not fit `max_message_mb`, the attachment holds
the first rows that fit (problems first) and the note says how many are missing.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass

from agent.printable import printable
from agent.records import SEVERITY, BatchOutcome, FileOutcome
from agent.wording import format_count, format_size, format_time, next_step

LISTED = 200  # files named in a summary's body
GZIP_OVER = 1024 * 1024  # a list above this is gzipped
MIME_GROWTH = 4 / 3  # base64 in the MIME message
CSV_HEADER = (
    "status",
    "file",
    "object",
    "operation",
    "rows",
    "completed",
    "warnings",
    "errors",
    "reference",
    "finished_utc",
    "now_in",
    "what_happened",
    "what_to_do",
)
FORMULA_STARTS = ("=", "+", "-", "@")  # a spreadsheet would run such a cell as a formula


def problems_first(files: list[FileOutcome]) -> list[FileOutcome]:
    """Worst status first (FAILED, UNCONFIRMED, …), each status in the batch's order; SUCCESS last."""
    rank = {status: SEVERITY.index(status) for status in SEVERITY}
    return sorted(files, key=lambda f: (f.status.ok, -rank[f.status]))


def listed(files: list[FileOutcome]) -> tuple[list[FileOutcome], int]:
    """The files the body names (at most LISTED, problems first) and how many it leaves out."""
    if len(files) <= LISTED:
        return list(files), 0
    return problems_first(files)[:LISTED], len(files) - LISTED


@dataclass(frozen=True)
class ListFile:
    """The attachment: name, bytes, type, and the sentence the body shows about it."""

    filename: str
    data: bytes
    mimetype: str
    note: str


def _cell(value: object) -> str:
    text = printable("" if value is None else str(value))
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def csv_row(outcome: FileOutcome) -> list[str]:
    progress = outcome.progress
    counts = (progress.completed, progress.warnings, progress.errors) if progress else ("", "", "")
    values: list[object] = [
        outcome.status.value,
        outcome.name,
        outcome.object or "",
        outcome.operation or "",
        "" if outcome.rows is None else outcome.rows,
        *counts,
        outcome.receipt.reference if outcome.receipt else "",
        format_time(outcome.finished_at) if outcome.finished_at else "",
        outcome.final_path or "",
        outcome.message,
        "" if outcome.status.ok else next_step(outcome),
    ]
    return [_cell(value) for value in values]


def _csv_lines(files: list[FileOutcome]) -> list[bytes]:
    """Each line of the CSV (header first) as UTF-8 bytes, so a budget can cut it between rows."""
    lines = []
    for row in [list(CSV_HEADER), *(csv_row(f) for f in problems_first(files))]:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(row)
        lines.append(buffer.getvalue().encode("utf-8"))
    return lines


def list_file(batch: BatchOutcome, budget: int) -> ListFile | None:
    """Every file of the batch as CSV, within `budget` bytes of message (after base64); None when
    the body already lists every file."""
    files = batch.files
    if len(files) <= LISTED:
        return None
    lines = _csv_lines(files)
    raw_budget = int(budget / MIME_GROWTH)
    name = f"summary-{batch.route}-{batch.started_at:%Y%m%dT%H%M%SZ}.csv"
    data = b"".join(lines)
    if len(data) <= GZIP_OVER and len(data) <= raw_budget:
        return ListFile(name, data, "text/csv", f"Every file is in the attached {name}.")
    packed, kept = _gzipped(lines, raw_budget)
    total = len(lines) - 1
    if kept == total:
        note = f"Every file is in the attached {name}.gz ({format_size(len(packed))}, gzipped CSV)."
    elif kept:
        note = (
            f"The list of all {format_count(total)} files is too big for one email: the attached {name}.gz "
            f"holds the first {format_count(kept)} (problems first); `feed-agent status` shows the others."
        )
    else:
        return None
    return ListFile(f"{name}.gz", packed, "application/gzip", note)


def _gzipped(lines: list[bytes], limit: int) -> tuple[bytes, int]:
    """The header and as many rows as fit in `limit` bytes gzipped (halving until they fit)."""
    count = len(lines) - 1
    while count > 0:
        packed = gzip.compress(b"".join(lines[: count + 1]), compresslevel=6, mtime=0)
        if len(packed) <= limit:
            return packed, count
        count //= 2
    return b"", 0
