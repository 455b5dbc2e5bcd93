"""The streamed row checker and the compact per-record facts it leaves behind.

Why compact: Learn writes one log entry per record, and the REST log must serve a data set of a
million records without holding a million message strings. So the checker keeps, per record, one
byte (what happened) and a few bytes of facts (line number, the record's keys, the offending value),
and :mod:`agent.simulator.logentries` writes the English sentence only when a page is asked for.

The checks follow `shared/reference/learn-snapshot-flatfile.md` §2 (required columns, key lengths,
characters of course ids and term/node keys, Y/N flags, row_status values); how Learn words them is
invented. The delimiter is the integration's one "Feed File Delimiter" (pipe by default, or comma,
tab, colon), never guessed per file: a comma file sent to a pipe integration has a one-column header
and every record fails, as on a real Learn. Encoding, also §2 (Blackboard's legacy page): a file that
starts with a UTF-8 byte-order mark is read as UTF-8, any other as ISO-8859-1, so UTF-8 text without
a BOM is stored garbled ("JosÃ©") exactly as such a Learn would store it, and later references to the
real key fail. A file that starts with a UTF-16 byte-order mark (little- or big-endian) is read as
UTF-16, as Learn reads Unicode files with a mark.
"""

from __future__ import annotations

import codecs
import re
from array import array
from collections.abc import Sequence
from typing import Protocol

from agent.simulator.objects import (
    COURSE_ID_FORBIDDEN,
    COURSE_ID_LIMIT,
    IDENTITY,
    PLAIN_KEY_COLUMNS,
    REFERENCES,
    REQUIRED,
    ROW_STATUSES,
    STORED_KEY_COLUMN,
    key_limit,
)

MAX_LINE = 1024 * 1024  # a longer "line" is an error row, not a memory hog
MAX_REMEMBERED_KEYS = 1_000_000  # new keys kept per upload; beyond it, references are no longer checked
MAX_FACT_BYTES = 256 * 1024 * 1024  # per data set; beyond it, later records are logged without their keys
MAX_VALUE_CHARS = 100  # a value quoted in a log message is cut to this length

# What happened to a record (one byte each). Below WARNING: an error; 0: completed.
COMPLETED = 0
E_FIELDS = 1  # args: fields in the record, fields in the header
E_NO_COLUMN = 2  # args: the missing column
E_NO_VALUE = 3  # args: the empty column
E_UNKNOWN_REFERENCE = 4  # args: column, value, kind of object
E_LONG_LINE = 5  # args: none
E_KEY_TOO_LONG = 6  # args: column, limit
E_COURSE_ID = 7  # args: value
E_KEY_CHARACTERS = 8  # args: column, value
WARNING = 64
W_IGNORED_VALUES = 64  # args: column, value[, column, value]: values Learn ignored

_UNIT = "\x1f"  # separates facts; never inside a stored value
BOM = b"\xef\xbb\xbf"
UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
# Learn's "Feed File Delimiter" choices for an integration (name -> character); pipe is Learn's default.
DELIMITERS = {"pipe": "|", "comma": ",", "tab": "\t", "colon": ":"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9.-]*")


class KeyLookup(Protocol):
    """What the checker needs from Learn's memory of stored people, courses and organizations."""

    def knows(self, kind: str, key: str) -> bool: ...


class RowLog:
    """Per-record outcome codes and facts of one data set, in record order."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.width = len(IDENTITY.get(slug, ()))
        self.codes = bytearray()
        self.error_rows = array("I")  # indices of records with errors
        self.problem_rows = array("I")  # indices of records with errors or warnings
        self.header: tuple[str, ...] = ()
        self.delimiter = "|"
        self.encoding = "iso-8859-1"  # how Learn read the file: utf-8 or utf-16-le/-be after a byte-order mark
        self._facts = bytearray()
        self._ends = array("Q")

    @property
    def rows(self) -> int:
        return len(self.codes)

    @property
    def errors(self) -> int:
        return len(self.error_rows)

    @property
    def warnings(self) -> int:
        return len(self.problem_rows) - len(self.error_rows)

    def add(self, code: int, line: int, identity: Sequence[str], args: Sequence[str] = ()) -> None:
        index = len(self.codes)
        self.codes.append(code)
        if code != COMPLETED:
            self.problem_rows.append(index)
            if code < WARNING:
                self.error_rows.append(index)
        if len(self._facts) < MAX_FACT_BYTES:
            keys = [*identity, *[""] * (self.width - len(identity))][: self.width]
            values = [str(line), *(_clean(v) for v in keys), *(_clean(v) for v in args)]
            self._facts += _UNIT.join(values).encode("utf-8")
        self._ends.append(len(self._facts))

    def facts(self, index: int) -> tuple[int | None, list[str], list[str]]:
        """(line number, identity values, arguments) of a record; (None, [], []) once facts ran out."""
        start = self._ends[index - 1] if index else 0
        raw = bytes(self._facts[start : self._ends[index]])
        if not raw:
            return None, [], []
        values = raw.decode("utf-8", errors="replace").split(_UNIT)
        return int(values[0]), values[1 : 1 + self.width], values[1 + self.width :]

    def storage_bytes(self) -> int:
        """Bytes held for the records (codes, indices, facts): what a million-record data set costs."""
        arrays = (self.error_rows, self.problem_rows, self._ends)
        return len(self.codes) + len(self._facts) + sum(a.itemsize * len(a) for a in arrays)


def _clean(value: str) -> str:
    value = value.replace(_UNIT, " ")
    return value if len(value) <= MAX_VALUE_CHARS else value[: MAX_VALUE_CHARS - 3] + "..."


class RowChecker:
    """Parses an upload line by line, as it streams in, and decides each record's fate."""

    def __init__(self, slug: str, store: KeyLookup, delimiter: str = "|") -> None:
        self.slug = slug
        self.store = store
        self.log = RowLog(slug)
        self.log.delimiter = delimiter  # the integration's: a file in another one fails every record
        self.columns: list[str] | None = None
        self.new_keys: set[str] = set()
        self._partial = bytearray()
        self._skipping_long_line = False
        self._line = 0
        self._head: bytes | None = b""  # the first bytes, until the byte-order mark is known (then None)
        self._utf16: codecs.IncrementalDecoder | None = None  # set for a UTF-16 file: lines are re-encoded

    @property
    def rows(self) -> int:
        return self.log.rows

    # Feeding ------------------------------------------------------------------------------
    def feed(self, piece: bytes) -> None:
        if self._head is not None:  # a UTF-16 mark needs 2 bytes, a UTF-8 one 3: look before splitting lines
            self._head += piece
            if len(self._head) < len(BOM):
                return
            piece, self._head = self._head, None
            self._sniff(piece)
        if self._utf16 is not None:
            piece = self._utf16.decode(piece).encode("utf-8")
        self._split(piece)

    def _sniff(self, start: bytes) -> None:
        """A UTF-16 byte-order mark: the rest is decoded as UTF-16 and handled as UTF-8 lines."""
        for mark, encoding in UTF16_BOMS.items():
            if start.startswith(mark):
                self.log.encoding = encoding
                self._utf16 = codecs.getincrementaldecoder("utf-16")("replace")  # drops the mark itself

    def _split(self, piece: bytes) -> None:
        start = 0
        while True:
            newline = piece.find(b"\n", start)
            if newline < 0:
                self._keep(piece[start:])
                return
            self._keep(piece[start:newline])
            self._end_line()
            start = newline + 1

    def close(self) -> None:
        if self._head:  # a file shorter than a UTF-8 byte-order mark
            head, self._head = self._head, None
            self._sniff(head)
            self._split(self._utf16.decode(head).encode("utf-8") if self._utf16 is not None else head)
        if self._utf16 is not None:
            self._split(self._utf16.decode(b"", True).encode("utf-8"))
        if self._partial or self._skipping_long_line:
            self._end_line()

    def _keep(self, data: bytes) -> None:
        if self._skipping_long_line:
            return
        self._partial += data
        if len(self._partial) > MAX_LINE:
            self._partial.clear()
            self._skipping_long_line = True

    def _end_line(self) -> None:
        self._line += 1
        if self._skipping_long_line:
            self._skipping_long_line = False
            self.log.add(E_LONG_LINE, self._line, ())
            return
        raw = bytes(self._partial)
        self._partial.clear()
        if self.columns is None and raw.startswith(BOM):
            self.log.encoding, raw = "utf-8", raw[len(BOM) :]
        lines_in = "utf-8" if self._utf16 is not None else self.log.encoding  # UTF-16 arrives re-encoded
        text = raw.decode(lines_in, errors="replace").rstrip("\r")
        if self.columns is None:
            self._read_header(text)
        elif text.strip():
            self._check_row(text)

    # Header and rows ----------------------------------------------------------------------
    def _read_header(self, text: str) -> None:
        self.columns = [name.strip().lower() for name in text.split(self.log.delimiter)]
        self.log.header = tuple(self.columns)

    def _check_row(self, text: str) -> None:
        columns = self.columns
        assert columns is not None
        values = [v.strip() for v in text.split(self.log.delimiter)]
        row = dict(zip(columns, values, strict=False))
        identity = [row.get(column, "") for column in IDENTITY.get(self.slug, ())]
        code, args = self._problem(columns, values, row)
        if code == COMPLETED:
            code, args = self._warnings(row)
            key_column = STORED_KEY_COLUMN.get(self.slug)
            if key_column and len(self.new_keys) <= MAX_REMEMBERED_KEYS:
                self.new_keys.add(row[key_column])
        self.log.add(code, self._line, identity, args)

    def _problem(self, columns: list[str], values: list[str], row: dict[str, str]) -> tuple[int, Sequence[str]]:
        if len(values) != len(columns):
            return E_FIELDS, (str(len(values)), str(len(columns)))
        for column in REQUIRED[self.slug]:
            if column not in row:
                return E_NO_COLUMN, (column,)
            if not row[column]:
                return E_NO_VALUE, (column,)
        for column, value in row.items():
            limit = key_limit(column)
            if limit is not None and len(value) > limit:
                return E_KEY_TOO_LONG, (column, str(limit))
            if column in PLAIN_KEY_COLUMNS and not _PLAIN_KEY.fullmatch(value):
                return E_KEY_CHARACTERS, (column, value)
        course_id = row.get("course_id", "")
        if self.slug == "course" and (len(course_id) > COURSE_ID_LIMIT or set(course_id) & set(COURSE_ID_FORBIDDEN)):
            return E_COURSE_ID, (course_id,)
        for column, kind in REFERENCES.get(self.slug, {}).items():
            if not self.store.knows(kind, row[column]):
                return E_UNKNOWN_REFERENCE, (column, row[column], kind)
        return COMPLETED, ()

    def _warnings(self, row: dict[str, str]) -> tuple[int, Sequence[str]]:
        ignored: list[str] = []
        available = row.get("available_ind", "")
        if available and available.upper() not in ("Y", "N"):
            ignored += ["available_ind", available]
        status = row.get("row_status", "")
        if status and status.lower() not in ROW_STATUSES:
            ignored += ["row_status", status]
        return (W_IGNORED_VALUES, ignored) if ignored else (COMPLETED, ())
