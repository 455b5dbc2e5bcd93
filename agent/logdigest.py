"""Learn's record-level log, digested as it streams by: a CSV on disk, counts, groups and the first entries.

Why streaming: a data set of 200,000 records can log 200,000 messages. Each entry is written to
the CSV and folded into the digest as its page arrives, so memory holds one page, a bounded number
of message groups (each with a few examples) and the first `FIRST_ENTRIES` entries, whatever the
size of the log.

Why shapes: Learn's messages are free English naming the record's keys. Replacing quoted values,
keys and numbers with placeholders turns "Line 7: … P00007 …" and "Line 9: … P00009 …" into one
group an admin can read at a glance; the examples and the CSV keep every message as Learn wrote it.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

from agent.errors import AgentError
from agent.records import LogEntry, MessageGroup, RecordLog

FIRST_ENTRIES = 50
EXAMPLES_PER_GROUP = 3
MAX_GROUPS = 200  # beyond this many shapes, messages are counted under one "other messages" group
OTHER_SHAPE = "(other messages of many different shapes: see the attached log)"
CSV_COLUMNS = ("level", "line", "message", "created", "id")
SEVERITY = {"Error": 0, "Warning": 1, "Information": 2, "Debug": 3}

_LINE = re.compile(r"\bline (\d+)\b", re.IGNORECASE)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NAMED_KEY = re.compile(r"\b(\w+_(?:key|id))\s+(?!\()[^\s,;:()]+")
_WITH_DIGIT = re.compile(r"(?<![\w<])[\w.-]*\d[\w.-]*(?![\w>])")


def line_of(message: str) -> int | None:
    """The file line a message names ("Line 12: …"), or None when it names none."""
    match = _LINE.search(message)
    return int(match.group(1)) if match else None


def shape(message: str) -> str:
    """The message with quoted values, e-mail addresses, keys and numbers replaced by placeholders."""
    text = _QUOTED.sub("'…'", message)
    text = _EMAIL.sub("<email>", text)
    text = _NAMED_KEY.sub(lambda m: f"{m.group(1)} <key>", text)
    return _WITH_DIGIT.sub(lambda m: "<n>" if m.group(0).isdigit() else "<key>", text)


class _Group:
    __slots__ = ("count", "examples", "order")

    def __init__(self, order: int) -> None:
        self.count = 0
        self.examples: list[str] = []
        self.order = order


class LogDigest:
    """Counts per level, groups by shape (bounded) and the first entries of a log, one entry at a time."""

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.counts: dict[str, int] = {}
        self.first: list[LogEntry] = []
        self._groups: dict[tuple[str, str], _Group] = {}

    def add(self, entry: LogEntry) -> None:
        self.counts[entry.level] = self.counts.get(entry.level, 0) + 1
        if len(self.first) < FIRST_ENTRIES:
            self.first.append(entry)
        key = (entry.level, shape(entry.message))
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= MAX_GROUPS:
                key = (entry.level, OTHER_SHAPE)
                group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(len(self._groups))
        group.count += 1
        if len(group.examples) < EXAMPLES_PER_GROUP:
            group.examples.append(entry.message)

    def groups(self) -> tuple[MessageGroup, ...]:
        """Largest first; errors before warnings at equal size; then in the order first seen."""
        ranked = sorted(self._groups.items(), key=lambda kv: (-kv[1].count, SEVERITY.get(kv[0][0], 9), kv[1].order))
        return tuple(MessageGroup(level, text, g.count, tuple(g.examples)) for (level, text), g in ranked)

    def result(self, csv_path: Path | None, *, complete: bool = True, problem: str = "") -> RecordLog:
        return RecordLog(
            reference=self.reference,
            counts=dict(self.counts),
            groups=self.groups(),
            first=tuple(self.first),
            csv_path=csv_path,
            complete=complete,
            problem=problem,
        )


class LogCsvWriter:
    """Writes entries to `path` as they come; the file gets its name only when the log was read to
    the end, so a half-read log is never mistaken for a complete one (it stays `<path>.part`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".part")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.partial.open("w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(CSV_COLUMNS)

    def write(self, entry: LogEntry) -> None:
        line = "" if entry.line is None else str(entry.line)
        self._writer.writerow((entry.level, line, entry.message, entry.created, entry.id))

    def close(self, *, complete: bool = True) -> None:
        if not self._file.closed:
            self._file.close()
            if complete:
                os.replace(self.partial, self.path)

    def __enter__(self) -> LogCsvWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close(complete=kind is None)


def collect(reference: str, entries: Iterable[LogEntry], csv_path: Path) -> RecordLog:
    """Stream `entries` into the CSV and the digest. A failure part way (a 403, the network, a log
    still locked) is not raised: the result says what is missing and keeps what was read."""
    digest = LogDigest(reference)
    writer = LogCsvWriter(csv_path)
    try:
        with writer:
            for entry in entries:
                writer.write(entry)
                digest.add(entry)
    except AgentError as exc:
        partial = writer.partial
        if not digest.counts:
            partial.unlink(missing_ok=True)
        return digest.result(partial if digest.counts else None, complete=False, problem=exc.message)
    return digest.result(csv_path)


def read_csv(path: Path) -> Iterator[LogEntry]:
    """The entries of a saved log, one at a time."""
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            line = row.get("line") or ""
            yield LogEntry(
                level=row.get("level") or "",
                message=row.get("message") or "",
                line=int(line) if line.isdigit() else None,
                created=row.get("created") or "",
                id=row.get("id") or "",
            )


def digest_file(reference: str, path: Path) -> RecordLog:
    """The digest of a saved log (for a report or `feed-agent errors` long after delivery)."""
    digest = LogDigest(reference)
    for entry in read_csv(path):
        digest.add(entry)
    return digest.result(path)
