"""Learn's SIS data set log, rendered one page at a time from a :class:`~agent.simulator.rows.RowLog`.

Every record produces exactly one entry: an Error, a Warning or an Information ("saved"). Around
them come an Information entry when processing starts and one when it ends, and a Debug entry that
describes the header, so that each `level` of the REST call returns something different. Hence the
Error and Warning entries are exactly the errorCount and warningCount of dataSetStatus.

The entry at position k of a level is found by index arithmetic (Information, Debug) or in the
record-index arrays (Error, Warning): a page never needs the pages before it. The wording is
invented free English that names the record's external key(s) and the reason, as the reference
says Learn's does; clients must not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from agent.simulator.objects import IDENTITY, object_name
from agent.simulator.rows import (
    COMPLETED,
    DELIMITERS,
    E_COURSE_ID,
    E_FIELDS,
    E_KEY_CHARACTERS,
    E_KEY_TOO_LONG,
    E_LONG_LINE,
    E_NO_COLUMN,
    E_NO_VALUE,
    E_UNKNOWN_REFERENCE,
    MAX_LINE,
    WARNING,
    RowLog,
)

LEVELS = ("Debug", "Information", "Warning", "Error")  # lowest first
FIELDS = ("id", "created", "level", "message")
_WHY_IGNORED = {"available_ind": "not Y or N", "row_status": "not enabled, disabled or deleted"}


def parse_level(text: str) -> str | None:
    """The level named by a query value (any case), or None when it names none."""
    for level in LEVELS:
        if text.lower() == level.lower():
            return level
    return None


@dataclass(frozen=True)
class LogEntry:
    """One entry of the log, as the REST call returns it."""

    id: str
    created: datetime
    level: str
    message: str

    def as_json(self, fields: tuple[str, ...] = FIELDS) -> dict[str, Any]:
        values = {
            "id": self.id,
            "created": self.created.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": self.level,
            "message": self.message,
        }
        return {name: values[name] for name in fields}


class DataSetLog:
    """The log of one data set: start, header, one entry per record, end (in that order)."""

    def __init__(
        self, uid: str, operation: str, rows: RowLog, first_id: int, begins: datetime, rows_per_second: float
    ) -> None:
        self.uid = uid
        self.operation = operation
        self.rows = rows
        self.first_id = first_id
        self.begins = begins
        self.rate = rows_per_second
        self.object = object_name(rows.slug)

    def count(self, level: str) -> int:
        if level == "Error":
            return self.rows.errors
        if level == "Warning":
            return len(self.rows.problem_rows)
        return self.rows.rows + (3 if level == "Debug" else 2)

    def page(self, level: str, offset: int, limit: int) -> list[LogEntry]:
        end = min(self.count(level), offset + limit)
        return [self.entry(level, k) for k in range(offset, end)]

    def entry(self, level: str, k: int) -> LogEntry:
        """The k-th entry (0-based) of those at `level` or above."""
        rows = self.rows.rows
        if level == "Error":
            return self._record(self.rows.error_rows[k])
        if level == "Warning":
            return self._record(self.rows.problem_rows[k])
        # Information skips the Debug header entry at position 1.
        position = k + 1 if level == "Information" and k > 0 else k
        if position == 0:
            return self._made(0, "Information", 0, self._start())
        if position == 1:
            return self._made(1, "Debug", 0, self._header())
        if position == rows + 2:
            return self._made(position, "Information", rows, self._end())
        return self._record(position - 2)

    # Rendering ----------------------------------------------------------------------------------
    def _made(self, position: int, level: str, processed: int, message: str) -> LogEntry:
        when = self.begins + timedelta(seconds=processed / self.rate)
        return LogEntry(f"_{self.first_id + position}_1", when, level, message)

    def _record(self, index: int) -> LogEntry:
        code = self.rows.codes[index]
        level = "Information" if code == COMPLETED else ("Warning" if code >= WARNING else "Error")
        return self._made(index + 2, level, index + 1, self._sentence(index, code))

    def _start(self) -> str:
        return (
            f"Data set {self.uid}: processing started for {self.rows.rows} {self.object} records "
            f"(operation {self.operation})."
        )

    def _header(self) -> str:
        header = self.rows.header
        delimiter = {char: name for name, char in DELIMITERS.items()}.get(self.rows.delimiter, self.rows.delimiter)
        return f"Data set {self.uid}: the header has {len(header)} columns ({delimiter}): {', '.join(header)}."

    def _end(self) -> str:
        rows = self.rows
        completed = rows.rows - rows.errors - rows.warnings
        return (
            f"Data set {self.uid}: processing finished: {completed} records completed, "
            f"{rows.warnings} with warnings, {rows.errors} with errors."
        )

    def _sentence(self, index: int, code: int) -> str:
        line, identity, args = self.rows.facts(index)
        where = f"Line {line}" if line is not None else f"Record {index + 1}"
        subject = self._subject(identity, known=line is not None)
        if code == COMPLETED:
            return f"{where}: {subject} was {'deleted' if self.operation == 'delete' else 'saved'}."
        if code >= WARNING:
            pairs = zip(args[::2], args[1::2], strict=False)
            ignored = "; ".join(
                f"{column} '{value}' ({_WHY_IGNORED.get(column, 'not valid')})" for column, value in pairs
            )
            return f"{where}: {subject} was saved, but these values were ignored: {ignored}."
        return f"{where}: {subject} was not saved: {_reason(code, args)}."

    def _subject(self, identity: list[str], *, known: bool) -> str:
        columns = IDENTITY.get(self.rows.slug, ())
        if not known or not columns:
            return f"the {self.object} record"
        if len(columns) == 1:
            return (
                f"the {self.object} record {identity[0]}" if identity[0] else f"the {self.object} record without a key"
            )
        named = ", ".join(f"{column} {value or '(empty)'}" for column, value in zip(columns, identity, strict=False))
        return f"the {self.object} record ({named})"


def _reason(code: int, args: list[str]) -> str:
    def arg(i: int) -> str:
        return args[i] if i < len(args) else "?"

    if code == E_FIELDS:
        return f"it has {arg(0)} fields but the header has {arg(1)}"
    if code == E_NO_COLUMN:
        return f"the header lacks the required column {arg(0)}"
    if code == E_NO_VALUE:
        return f"the required field {arg(0)} is empty"
    if code == E_UNKNOWN_REFERENCE:
        return f"{arg(0)} '{arg(1)}' names a {arg(2)} that does not exist"
    if code == E_LONG_LINE:
        return f"the line is longer than {MAX_LINE} bytes"
    if code == E_KEY_TOO_LONG:
        return f"{arg(0)} is longer than {arg(1)} characters"
    if code == E_KEY_CHARACTERS:
        return f"{arg(0)} '{arg(1)}' may hold only letters, digits, '-' and '.'"
    if code == E_COURSE_ID:
        return f"course_id '{arg(0)}' is longer than 100 characters or contains a space, &, /, ' or +"
    return "the record could not be processed"
