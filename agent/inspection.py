"""The pre-flight inspection of one file: what it is, and every reason not to send it, in plain words.

Pure: reads files, never touches the network or moves anything. A Learn flat file is checked in one
streaming pass (`agent.linescan`), so a 1 GiB export is checked in seconds before a byte is sent; a
CSV upload for S3 or a job API gets an RFC 4180 check instead (those importers reject files that
are "not a true CSV", and the buckets cannot be read back).
"""

from __future__ import annotations

import csv
import difflib
import io
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from agent.decoding import DecodedSource, open_decoded
from agent.feeds import (
    BOM,
    DELIMITER_NAMES,
    FEED_TYPES,
    LEARN_DELIMITERS,
    choose_delimiter,
    normalize_header,
    sort_key,
)
from agent.linescan import (
    BLOCK_SIZE,
    MAX_REPORTED_LINES,
    LineCounter,
    encoding_problem,
    scan_rows,
)
from agent.parallelscan import scan_parallel


@dataclass
class Inspection:
    """What the pre-flight check found in one file. `problems` non-empty means: do not send it."""

    file: str
    path: str
    size: int = 0
    object: str | None = None
    family: str | None = None
    delimiter: str | None = None
    expected_delimiter: str | None = None  # the target integration's delimiter name, when inspected for one
    encoding: str | None = None
    bom: bool = False
    non_ascii: bool = False
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bad_row_lines: list[int] = field(default_factory=list)
    order: int | None = None

    @property
    def ok(self) -> bool:
        return self.object is not None and not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["delimiter"] = DELIMITER_NAMES.get(self.delimiter or "", self.delimiter)
        return data


# Bytes that say "this is not a text export" at the very start of a file, with what to do instead.
_MAGIC = (
    (
        b"PK\x03\x04",
        "an Excel workbook (.xlsx) or a ZIP archive, not a text export; save it as "
        "'CSV UTF-8' or export a pipe-delimited text file",
    ),
    (
        b"\xd0\xcf\x11\xe0",
        "an old-style Excel workbook (.xls), not a text export; save it as 'CSV UTF-8' "
        "or export a pipe-delimited text file",
    ),
    (b"\x1f\x8b", "gzip-compressed; decompress it and drop the text file"),
    (b"%PDF", "a PDF document, not a text export"),
)


# How the inspection opens a file: plain, or through agent.hashing so the same pass yields its SHA-256.
Opener = Callable[[Path], BinaryIO]


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


def inspect_file(
    path: Path,
    forced_object: str | None = None,
    expected_delimiter: str | None = None,
    encoding: str = "utf-8",
    *,
    opener: Opener = _open_binary,
) -> Inspection:
    """Pre-flight check of a Learn flat file in one streaming pass with constant memory.

    `encoding` is the route's declaration for files without a byte-order mark (`utf-8`, or
    `latin-1`: read and checked as Learn reads them); UTF-16 with a mark is always decoded
    (`agent.decoding`).

    `forced_object` (a route's `object =` setting) replaces header detection, but the columns are
    still checked against that type's required columns. `expected_delimiter` (a name: pipe, comma,
    tab, colon) is the target integration's one delimiter; a file written with another is refused,
    because Learn would split every row wrongly. Without it any delimiter is detected and accepted.
    """
    result = Inspection(file=path.name, path=str(path), expected_delimiter=expected_delimiter)
    try:
        handle = opener(path)
    except FileNotFoundError:
        result.problems.append("the file does not exist (check the path)")
        return result
    except IsADirectoryError:
        result.problems.append("is a folder, not a file")
        return result
    except OSError as exc:
        result.problems.append(f"cannot be read: {exc.strerror or exc}")
        return result
    with handle:
        result.size = _size(handle)
        decoded, body = _text_start(result, handle, encoding)
        if body is None:
            return result
        header_end = body.find(b"\n")
        header_bytes = body if header_end < 0 else body[:header_end]
        problem = _header_line_problem(header_bytes, header_end < 0 and result.size > BLOCK_SIZE)
        if problem:
            result.problems.append(problem)
            return result
        try:
            header = header_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.problems.append(encoding_problem(exc, 1))
            return result
        result.encoding = decoded.label if decoded is not None else "utf-8"
        delimiter, columns, slug, note = choose_delimiter(header, path.name)
        result.delimiter, result.columns = delimiter, columns
        if forced_object:
            slug, note = forced_object, None
        if note:
            result.notes.append(note)
        if '"' in header:
            result.notes.append("the column names are in double quotes; they were read without the quotes")
        if slug is None:
            result.problems.append(_unknown_header_problem(header, columns))
            if result.problems[-1].startswith("the columns are separated by semicolons"):
                result.delimiter = delimiter = ";"
                result.columns = normalize_header(header, delimiter)
        else:
            _check_delimiter(result, header)
            _check_columns(result, slug, columns)
        rest = b"" if header_end < 0 else body[header_end + 1 :]
        # A check that hashes what it reads (an S3 file's) scans in one pass; any other may split.
        split = decoded is None and opener is _open_binary and header_end >= 0
        rows_start = (len(BOM) if result.bom else 0) + header_end + 1 if split else None
        _scan(result, handle if decoded is None else cast(BinaryIO, decoded), rest, slug, rows_start)  # it has read()
        _decoding_problem(result, decoded)
    return result


def _text_start(result: Inspection, handle: BinaryIO, encoding: str) -> tuple[DecodedSource | None, bytes | None]:
    """The decoding reader (None: UTF-8 bytes as they are) and the first block's text as UTF-8 without a
    byte-order mark; the text is None when the file is not a text export Learn can read."""
    first = handle.read(BLOCK_SIZE)
    decoded = open_decoded(first, handle, encoding)
    if decoded is not None and decoded.bom:  # UTF-16: judge the text, not its two-byte units
        problem = decoded.problem or _not_text_problem(result, decoded.first)
        if not decoded.first and not decoded.problem:
            problem = "the file contains only a UTF-16 byte-order mark: no header and no rows"
    else:
        problem = _not_text_problem(result, first)
    if problem:
        result.problems.append(problem)
        return decoded, None
    if decoded is not None:
        result.bom = decoded.bom
        return decoded, decoded.first
    result.bom = first.startswith(BOM)
    return None, first[len(BOM) :] if result.bom else first


def _decoding_problem(result: Inspection, decoded: DecodedSource | None) -> None:
    """What decoding a UTF-16 or Latin-1 file found (a bad sequence, Windows-1252 bytes, UTF-8 in disguise)."""
    if decoded is None:
        return
    decoded.finish()
    if decoded.problem:
        result.problems.append(decoded.problem)


def _size(handle: BinaryIO) -> int:
    return os.fstat(handle.fileno()).st_size


def _not_text_problem(result: Inspection, first: bytes) -> str | None:
    """Empty, blank, UTF-16/32 or binary content, named precisely, with what to export instead."""
    if not first:
        return "the file is empty (0 bytes): the SIS export produced nothing"
    if first.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        result.encoding = "utf-32"
        return "the file is UTF-32 text, not UTF-8; export it from the SIS as UTF-8"
    utf16 = _utf16_kind(first)
    if utf16:
        result.encoding, result.bom = utf16, first.startswith((b"\xff\xfe", b"\xfe\xff"))
        looks = _utf16_looks_like(first, utf16)
        return (
            f"the file is UTF-16 text (Excel's 'Unicode Text' export), not UTF-8{looks}; "
            "export it from the SIS (or save it in Excel) as UTF-8, e.g. 'CSV UTF-8'"
        )
    for magic, what in _MAGIC:
        if first.startswith(magic):
            return f"the file is {what}"
    if b"\x00" in first:
        return "the file is binary, not a text export (it contains NUL bytes)"
    text = first[len(BOM) :] if first.startswith(BOM) else first
    if not text.strip(b" \t\r\n\x0b\x0c"):
        if not text:
            return "the file contains only a UTF-8 byte-order mark: no header and no rows"
        return "the file contains only blank lines or spaces: no header and no rows"
    return None


def _utf16_kind(first: bytes) -> str | None:
    """UTF-16 by its byte-order mark, or by ASCII text with every other byte NUL (no BOM)."""
    if first.startswith(b"\xff\xfe"):
        return "utf-16-le"
    if first.startswith(b"\xfe\xff"):
        return "utf-16-be"
    sample = first[:4096]
    half = len(sample) // 2
    if half < 2 or b"\x00" not in sample:
        return None
    even_nuls, odd_nuls = sample[0::2].count(0), sample[1::2].count(0)
    if odd_nuls >= 0.9 * half and even_nuls <= 0.1 * half:
        return "utf-16-le"
    if even_nuls >= 0.9 * half and odd_nuls <= 0.1 * half:
        return "utf-16-be"
    return None


def _utf16_looks_like(first: bytes, encoding: str) -> str:
    """`` (it looks like a person file)`` when the UTF-16 header is a Learn header, to help the admin."""
    text = first[:8192].decode(encoding, errors="ignore").lstrip("\ufeff")
    header = text.split("\n", 1)[0]
    _, _, slug, _ = choose_delimiter(header)
    return f" (it looks like a {slug} file)" if slug else ""


def _header_line_problem(header: bytes, too_long: bool) -> str | None:
    """Line 1 must be the header: not blank, not Excel's `sep=` hint, not CR-only line endings."""
    if b"\r" in header.rstrip(b"\r"):
        return (
            "the lines end with a carriage return only (old Mac format), so the file reads as one line; "
            "export it with LF or CRLF line endings"
        )
    if too_long:
        return f"the first line is longer than {BLOCK_SIZE // (1024 * 1024)} MiB: this is not a flat file"
    if not header.strip(b" \t\r"):
        return "line 1 is blank; the header (the column names) must be the first line"
    if header.lower().startswith(b"sep="):
        return "line 1 is Excel's 'sep=' hint, not the header; remove that line so the column names are on line 1"
    return None


# Every column that identifies some Learn object type: "did you mean" candidates for a near miss.
_KEY_COLUMNS = sorted({c for t in FEED_TYPES.values() for c in (*t.required, *t.keys)})


def _check_delimiter(result: Inspection, header: str) -> None:
    """A file whose delimiter is not the integration's: Learn would read each row as one bad column."""
    expected, found = result.expected_delimiter, result.delimiter or ""
    if not expected:
        return
    wanted = LEARN_DELIMITERS.get(expected, expected)
    if found == wanted or found not in header:  # a one-column header shows no delimiter at all
        return
    name = DELIMITER_NAMES.get(found, repr(found))
    result.problems.append(
        f"the columns are separated by {name} ({found!r}) but the target's Learn integration expects "
        f"{expected} ({wanted!r}): Learn reads one delimiter per integration and would refuse every row; "
        f"export the file with {expected} delimiters, or, if the integration's Feed File Delimiter in Learn is "
        f"{name}, set delimiter = {name} in the target"
    )


def _unknown_header_problem(header: str, columns: list[str]) -> str:
    """Why no type matched: a semicolon export, a near-miss column name, or simply not a Learn feed."""
    if ";" in header:
        _, _, slug, _ = choose_delimiter(header.replace(";", "|"))
        if slug:
            return (
                f"the columns are separated by semicolons (;), which Learn does not accept (it looks "
                f"like a {slug} file); export it with pipe | delimiters (comma or tab also work)"
            )
    shown = ", ".join(c for c in columns[:6] if c) or "(nothing)"
    more = ", …" if len(columns) > 6 else ""
    hints = []
    for column in columns:
        close = difflib.get_close_matches(column, _KEY_COLUMNS, n=1, cutoff=0.8)
        if close and close[0] != column and close[0] not in columns:
            hints.append(f"'{column}' → {close[0]}?")
    hint = f"; did you mean: {', '.join(hints[:3])}" if hints else ""
    return (
        f"unrecognized header: no Learn object type has these columns ({shown}{more}){hint}; a Learn feed "
        "needs a key column such as external_person_key, external_course_key or external_term_key"
    )


def _check_columns(result: Inspection, slug: str, columns: list[str]) -> None:
    feed = FEED_TYPES[slug]
    result.object, result.family = slug, feed.family
    present = set(columns)
    missing = [c for c in feed.required if c not in present]
    if missing:
        shown = []
        for column in missing:
            close = difflib.get_close_matches(column, [c for c in columns if c], n=1, cutoff=0.75)
            shown.append(f"{column} (the header has '{close[0]}')" if close else column)
        result.problems.append(
            f"missing required column{'s' if len(missing) > 1 else ''} for {slug}: " + ", ".join(shown)
        )
    if feed.uses_dsk and "data_source_key" not in present:
        result.notes.append("no data_source_key column: the integration's default data source will be used")
    duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
    if duplicates:
        result.problems.append("duplicate column" + ("s" if len(duplicates) > 1 else "") + ": " + ", ".join(duplicates))
    name = DELIMITER_NAMES.get(result.delimiter or "", "delimiter")
    if len(columns) > 1 and columns[-1] == "" and "" not in columns[:-1]:
        result.problems.append(
            f"the header ends with a {name} delimiter, which adds a column without a name; remove the "
            "trailing delimiter from the header (and from every row)"
        )
    elif "" in columns:
        result.problems.append(
            f"the header has an empty column name (two {name} delimiters in a row, or one at the start)"
        )


def _scan(result: Inspection, handle: BinaryIO, rest: bytes, slug: str | None, rows_start: int | None) -> None:
    """Run the row scan (split across processes for a big file, when `rows_start` allows it) and fold
    what it found into the inspection."""
    feed = FEED_TYPES.get(slug or "")
    key_indexes = [result.columns.index(k) for k in feed.keys if k in result.columns] if feed else []
    delimiter = result.delimiter or "|"
    split = (
        None
        if rows_start is None
        else scan_parallel(Path(result.path), rows_start, result.columns, delimiter, key_indexes)
    )
    counter = split or scan_rows(handle, rest, result.columns, delimiter, key_indexes)
    result.rows = counter.rows
    result.bad_row_lines = counter.bad_row_lines
    result.problems.extend(counter.problems)
    if counter.encoding_failed:
        result.encoding = None
    if not counter.finished:
        return
    result.non_ascii = counter.non_ascii or any(not c.isascii() for c in result.columns)
    _row_problems(result, counter)


def _row_problems(result: Inspection, counter: LineCounter) -> None:
    if result.rows == 0 and not result.problems:
        result.problems.append("the file has a header but no data rows")
    name = DELIMITER_NAMES.get(result.delimiter or "", result.delimiter or "")
    if counter.bad_rows:
        width = len(result.columns) - 1
        advice = f"; every row needs exactly {width} delimiters (values must not contain one)"
        if counter.bad_rows_trailing == counter.bad_rows:
            advice = f"; {'they end' if counter.bad_rows > 1 else 'it ends'} with an extra {name} delimiter"
        result.problems.append(
            _column_count_problem(counter.bad_rows, result.bad_row_lines, len(result.columns), name) + advice
        )
    for key in counter.empty_keys:
        if key.count:
            rows = "row" if key.count == 1 else "rows"
            result.problems.append(
                f"{key.count} {rows} with an empty {key.column} ({_lines_text(key.count, key.lines)}); "
                "every row needs its key"
            )
    if counter.quoted.count:
        where = _lines_text(counter.quoted.count, counter.quoted.lines)
        result.problems.append(
            f"values are wrapped in double quotes ({where}); "
            "Learn keeps the quotes as part of the data, so export without quotes (text qualifier: none)"
        )


def _lines_text(count: int, lines: list[int]) -> str:
    """`line 4`, `lines 4, 9` or `lines 4, 9, 12, 15, 20 and others`."""
    shown = ", ".join(map(str, lines))
    more = " and others" if count > len(lines) else ""
    return f"line{'s' if len(lines) > 1 or more else ''} {shown}{more}"


def _column_count_problem(bad: int, lines: list[int], width: int, delimiter_name: str) -> str:
    shown = ", ".join(map(str, lines)) + (" and others" if bad > len(lines) else "")
    plural = "s" if bad > 1 else ""
    verb = "do not have" if bad > 1 else "does not have"
    return f"{bad} row{plural} {verb} the header's {width} {delimiter_name}-separated columns (line{plural} {shown})"


def plan_order(inspections: list[Inspection], arrival: dict[str, float] | None = None) -> list[Inspection]:
    """Sort by dependency rank, then oldest arrival, then name; set each one's `order` (1-based).

    Unrecognized files go last: they will be rejected, but the table should still list them.
    """
    arrival = arrival or {}
    ordered = sorted(inspections, key=lambda i: sort_key(i.object, arrival.get(i.path, 0.0), i.file))
    for position, item in enumerate(ordered, start=1):
        item.order = position
    return ordered


# Plain CSV (S3 and job targets: not Learn feeds, so no type detection)


def inspect_csv(path: Path, *, opener: Opener = _open_binary) -> Inspection:
    """RFC 4180 check for CSV uploads: non-empty, UTF-8, a header, the same column count everywhere.

    Handshake's importer rejects files that are "not a true CSV", and we cannot read the bucket back,
    so problems must be caught here, with line numbers.
    """
    result = Inspection(file=path.name, path=str(path), delimiter=",")
    problem = _csv_head_problem(path, result)
    if problem is None:
        problem = _scan_csv(path, result, opener)
    if problem is not None:
        result.problems.append(problem)
    return result


def _csv_head_problem(path: Path, result: Inspection) -> str | None:
    """What is wrong with the file as a whole (unreadable, empty, binary), from its first block."""
    try:
        result.size = path.stat().st_size
        with path.open("rb") as raw:
            head = raw.read(BLOCK_SIZE)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not head.strip():
        return "the file is empty" if not head else "the file contains only blank lines"
    if b"\x00" in head:
        return "the file is binary, not a CSV export (it contains NUL bytes)"
    result.bom = head.startswith(BOM)
    return None


def _scan_csv(path: Path, result: Inspection, opener: Opener) -> str | None:
    """Every row parsed as CSV: rows counted, column counts compared with the header's."""
    bad_lines: list[int] = []
    bad = 0
    try:
        with io.TextIOWrapper(opener(path), encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text, strict=True)
            header = next(reader, [])
            result.columns = [c.strip() for c in header]
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                result.rows += 1
                if len(row) != len(header):
                    bad += 1
                    if len(bad_lines) < MAX_REPORTED_LINES:
                        bad_lines.append(reader.line_num)
                result.non_ascii = result.non_ascii or not all(v.isascii() for v in row)
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start : exc.start + 1].hex().upper()
        return f"the file is not UTF-8 text (byte 0x{byte} near byte {exc.start}); export it as UTF-8"
    except csv.Error as exc:
        return f"not a valid CSV file: {exc} (quotes must be doubled inside quoted values)"
    result.encoding = "utf-8"
    if result.rows == 0:
        return "the file has a header but no data rows"
    if bad:
        return _column_count_problem(bad, bad_lines, len(result.columns), "comma")
    return None
