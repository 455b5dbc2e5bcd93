"""Learn object types, header detection, processing order and the pre-flight inspection of a file.

Pure: reads files, never touches the network or moves anything. The inspection is one streaming
pass over the bytes in large blocks (constant memory, C-speed primitives for the common case), so
a 1 GiB export is checked in seconds before a single byte is sent.

Detection follows reference §3's *recommended* rule (exact column tokens, case-insensitive, first
matching row wins) rather than Blackboard's substring test, which misreads a course file that has
`primary_external_node_key` or `external_association_key`.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

BOM = b"\xef\xbb\xbf"
DELIMITERS = ("|", "\t", ",")
DELIMITER_NAMES = {"|": "pipe", "\t": "tab", ",": "comma", ";": "semicolon"}
BLOCK_SIZE = 4 * 1024 * 1024
MAX_REPORTED_LINES = 5


@dataclass(frozen=True)
class FeedType:
    """One Learn object type: its endpoint slug, family, required columns and key columns."""

    slug: str
    family: str
    required: tuple[str, ...]  # besides data_source_key, which the integration may supply
    keys: tuple[str, ...]  # columns that identify a row: an empty value is an error
    rank: int  # dependency order: lower goes first
    uses_dsk: bool = True


def _t(slug: str, family: str, required: str, keys: str, rank: int, uses_dsk: bool = True) -> FeedType:
    return FeedType(slug, family, tuple(required.split()), tuple(keys.split()), rank, uses_dsk)


# Order (DESIGN.md): term, node, person, secondaryinstrole, associateobserver, categories,
# course/organization, subject/program, associations, memberships, category memberships, standards.
FEED_TYPES: dict[str, FeedType] = {
    t.slug: t
    for t in (
        _t("term", "term", "external_term_key name", "external_term_key", 10),
        _t("node", "node", "external_node_key parent_node_key name", "external_node_key", 20),
        _t("person", "user", "external_person_key firstname lastname user_id", "external_person_key", 30),
        _t(
            "secondaryinstrole",
            "secondary institution role",
            "external_person_key role_id",
            "external_person_key role_id",
            40,
        ),
        _t(
            "associateobserver",
            "observer",
            "external_observer_key external_user_key",
            "external_observer_key external_user_key",
            50,
        ),
        _t("coursecategory", "category", "external_category_key title", "external_category_key", 60),
        _t("organizationcategory", "category", "external_category_key title", "external_category_key", 60),
        _t("course", "course", "external_course_key course_id course_name", "external_course_key", 70),
        _t(
            "organization",
            "organization",
            "external_organization_key organization_id organization_name",
            "external_organization_key",
            70,
        ),
        _t(
            "subject",
            "curriculum",
            "external_subject_key subject_id subject_name subject_type",
            "external_subject_key",
            80,
        ),
        _t(
            "program",
            "curriculum",
            "external_program_key program_id program_name program_type",
            "external_program_key",
            80,
        ),
        _t(
            "userassociation",
            "association",
            "external_association_key external_node_key external_user_key",
            "external_association_key",
            90,
        ),
        _t(
            "courseassociation",
            "association",
            "external_association_key external_node_key external_course_key",
            "external_association_key",
            90,
        ),
        _t(
            "organizationassociation",
            "association",
            "external_association_key external_node_key external_organization_key",
            "external_association_key",
            90,
        ),
        _t(
            "programtosubjectassociation",
            "association",
            "external_association_key external_program_key external_subject_key",
            "external_association_key",
            90,
        ),
        _t(
            "subjecttocourseassociation",
            "association",
            "external_association_key external_subject_key external_course_key",
            "external_association_key",
            90,
        ),
        _t(
            "subjecttoorgassociation",
            "association",
            "external_association_key external_subject_key external_org_key",
            "external_association_key",
            90,
        ),
        _t(
            "membership",
            "membership",
            "external_course_key external_person_key",
            "external_course_key external_person_key",
            100,
        ),
        _t(
            "organizationmembership",
            "membership",
            "external_organization_key external_person_key",
            "external_organization_key external_person_key",
            100,
        ),
        _t(
            "coursecategorymembership",
            "category membership",
            "external_category_key external_course_key",
            "external_category_key external_course_key",
            110,
        ),
        _t(
            "organizationcategorymembership",
            "category membership",
            "external_category_key external_organization_key",
            "external_category_key external_organization_key",
            110,
        ),
        _t(
            "standardsassociation",
            "standards",
            "std_sub_doc_key course_key",
            "std_sub_doc_key course_key",
            120,
            uses_dsk=False,
        ),
    )
}

ORDER_EXPLANATION = (
    "terms and hierarchy nodes first, then users, their roles and observers, categories, courses and "
    "organizations, curriculum, associations, then memberships (which name users and courses that "
    "must already exist), category memberships and standards"
)


def detect_type(columns: Iterable[str], file_name: str = "") -> tuple[str | None, str | None]:
    """The Learn slug for a header, by exact tokens in reference §3's order.

    Returns (slug, note). The note explains a guess (course vs organization category) so the admin
    can confirm it; slug is None when no rule matches.
    """
    cols = set(columns)

    def has(*names: str) -> bool:
        return all(n in cols for n in names)

    if has("std_sub_doc_key"):
        return "standardsassociation", None
    if has("external_subject_key"):
        for other, slug in (
            ("external_program_key", "programtosubjectassociation"),
            ("external_course_key", "subjecttocourseassociation"),
            ("external_org_key", "subjecttoorgassociation"),
        ):
            if has(other):
                return slug, None
        return "subject", None
    if has("external_program_key"):
        return "program", None
    if has("external_node_key"):
        for other, slug in (
            ("external_course_key", "courseassociation"),
            ("external_organization_key", "organizationassociation"),
            ("external_user_key", "userassociation"),
        ):
            if has(other):
                return slug, None
        return "node", None
    if has("external_category_key"):
        if has("external_course_key"):
            return "coursecategorymembership", None
        if has("external_organization_key"):
            return "organizationcategorymembership", None
        return _category_from_name(file_name)
    if has("external_person_key", "external_course_key"):
        return "membership", None
    if has("external_person_key", "external_organization_key"):
        return "organizationmembership", None
    if has("external_course_key"):
        return "course", None
    if has("external_organization_key"):
        return "organization", None
    if has("external_observer_key"):
        return "associateobserver", None
    if has("external_person_key", "role_id"):
        return "secondaryinstrole", None
    if has("external_person_key"):
        return "person", None
    if has("external_term_key"):
        return "term", None
    return None, None


def _category_from_name(file_name: str) -> tuple[str, str | None]:
    """A category header cannot tell course from organization categories: ask the file name.

    Words are matched at their start ("org", "organization(s)", "organisation", "course(s)"), so a
    name like "georgia_categories" is not taken for an organization file.
    """
    words = re.split(r"[^a-z]+", Path(file_name).stem.lower())
    org = any(w.startswith("org") for w in words)
    course = any(w.startswith("course") for w in words)
    if org and not course:
        return "organizationcategory", None
    if course and not org:
        return "coursecategory", None
    return "coursecategory", (
        "a category file can be for courses or organizations; assumed course categories. "
        "Put 'organization' in the file name or set object = organizationcategory in the route if not"
    )


def normalize_header(line: str, delimiter: str) -> list[str]:
    """Header tokens, lowercase, without BOM, surrounding spaces, quotes or line ending."""
    tokens = line.lstrip("\ufeff").rstrip("\r\n").split(delimiter)
    return [t.strip().strip('"').strip().lower() for t in tokens]


def choose_delimiter(header: str, file_name: str = "") -> tuple[str, list[str], str | None, str | None]:
    """The delimiter under which the header is a known Learn header (pipe, tab, then comma).

    When none is recognized, the most frequent candidate is kept for reporting.
    """
    for delimiter in DELIMITERS:
        if delimiter not in header and delimiter != "|":
            continue
        columns = normalize_header(header, delimiter)
        slug, note = detect_type(columns, file_name)
        if slug:
            return delimiter, columns, slug, note
    counts = {d: header.count(d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else "|"
    return delimiter, normalize_header(header, delimiter), None, None


def order_key(slug: str | None) -> int:
    """Dependency rank of a slug; unknown types sort last."""
    feed = FEED_TYPES.get(slug or "")
    return feed.rank if feed else 1000


# ----------------------------------------------------------------------------------------------
# Inspection


@dataclass
class Inspection:
    """What the pre-flight check found in one file. `problems` non-empty means: do not send it."""

    file: str
    path: str
    size: int = 0
    object: str | None = None
    family: str | None = None
    delimiter: str | None = None
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
PIECE_SIZE = 64 * 1024  # UTF-8 validation runs on cache-sized pieces: 2-3x faster than 4 MiB at once
MAX_LINE_BYTES = 64 * 1024 * 1024
_EVERY_BYTE = bytes(range(256))


class _LineCounter:
    """Counts rows, column-count mismatches, empty key values and quoted values over blocks of lines.

    Why this shape: inspection must run near I/O speed on gigabyte exports, and Python-level work per
    line would be 20-50x slower than `wc -l`. Every check is settled per block with C-speed bulk
    operations (`bytes.translate`, `bytes.count`, `isascii`, literal-prefixed regexes); only a block
    that has an anomaly (a blank line, a row with the wrong number of delimiters) is walked line by line.
    Empty optional fields, frequent in real person files, never trigger the slow path: the empty-key
    check looks only at the key columns.
    """

    def __init__(self, result: Inspection, delimiter: str, key_indexes: Sequence[int]) -> None:
        self.result = result
        self.sep = delimiter.encode()
        self.expected = max(len(result.columns) - 1, 0)
        self.line_no = 2  # number of the first line of the next block (the header is line 1)
        self.bad_rows = 0
        self.bad_rows_trailing = 0  # bad rows that have exactly one extra delimiter at the end
        self.non_ascii = False
        # Deleting every byte except the delimiter and "\n" leaves, for a clean block, exactly
        # `row_pattern` once per line: one bytes comparison checks every line's column count.
        self.keep_only_structure = bytes(b for b in _EVERY_BYTE if b not in (self.sep[0], 0x0A))
        self.row_pattern = self.sep * self.expected + b"\n"
        self.empty_keys = [_EmptyKey(result.columns[i], self._empty_field_pattern(i)) for i in key_indexes]
        self.quoted = _Occurrences(
            re.compile(
                b"\\n(?:[^\\n]*?"
                + re.escape(self.sep)
                + b")?"
                + b' *"[^"\\n]*" *(?='
                + re.escape(self.sep)
                + b"|\\r?\\n)"
            )
        )

    def _empty_field_pattern(self, index: int) -> re.Pattern[bytes]:
        """Matches "\\n" + a line whose field number `index` (0-based) is empty or only spaces.

        Shape: newline, `index` fields with their delimiter, then spaces and a delimiter (or the line
        end, for a field after the first: a blank line is not a row). The leading literal newline lets
        the regex engine jump from line start to line start at C speed.
        """
        sep = re.escape(self.sep)
        fields = b"(?:[^" + sep + b"\\n]*" + sep + b"){" + str(index).encode() + b"}" if index else b""
        end = sep if index == 0 else b"(?:" + sep + b"|\\r?\\n)"
        return re.compile(b"\\n" + fields + b"(?= *" + end + b")")

    def feed(self, text: bytes) -> bool:
        """Check a newline + a block of whole lines ending with a newline; False: reject the file now.

        The leading newline (added while the block is assembled, so without an extra copy) lets every
        line-anchored pattern start with a literal newline, which the regex engine finds at C speed.
        """
        if b"\x00" in text:
            line = self.line_no - 1 + text.count(b"\n", 0, text.find(b"\x00"))
            self.result.problems.append(
                f"the file contains NUL bytes (line {line}): it is binary or corrupt, not a text export"
            )
            return False
        if not text.isascii():
            self.non_ascii = True
            if not self._valid_utf8(text):
                return False
        structure = text.translate(None, self.keep_only_structure)
        lines = structure.count(b"\n") - 1
        if self.expected and structure == b"\n" + self.row_pattern * lines:
            self.result.rows += lines
        else:
            self._walk(text)
        for key in self.empty_keys:
            key.scan(text, self.line_no)
        if b'"' in text:
            self.quoted.scan(text, self.line_no)
        self.line_no += lines
        return True

    def _valid_utf8(self, block: bytes) -> bool:
        """Strict UTF-8 check in cache-sized pieces; on failure, find the line exactly (slow path)."""
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        view = memoryview(block)
        try:
            for start in range(0, len(block), PIECE_SIZE):
                decoder.decode(view[start : start + PIECE_SIZE])
            decoder.decode(b"", final=True)
            return True
        except UnicodeDecodeError:
            pass
        for offset, line in enumerate(block.split(b"\n")[1:]):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.result.problems.append(_encoding_problem(exc, self.line_no + offset))
                self.result.encoding = None
                return False
        raise AssertionError("a block failed UTF-8 validation but none of its lines did")

    def _walk(self, block: bytes) -> None:
        """The slow path for a block with an anomaly: blank lines are skipped, bad rows recorded."""
        lines = block.split(b"\n")[1:-1]  # the block starts and ends with "\n"
        counts = list(map(bytes.count, lines, repeat(self.sep)))
        for offset, (line, count) in enumerate(zip(lines, counts, strict=True)):
            if not line.strip():
                continue
            self.result.rows += 1
            if count == self.expected:
                continue
            self.bad_rows += 1
            if count == self.expected + 1 and line.rstrip(b"\r ").endswith(self.sep):
                self.bad_rows_trailing += 1
            if len(self.result.bad_row_lines) < MAX_REPORTED_LINES:
                self.result.bad_row_lines.append(self.line_no + offset)


class _Occurrences:
    """Lines matched by one pattern: an exact count and the first few line numbers."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.count = 0
        self.lines: list[int] = []

    def scan(self, text: bytes, first_line: int) -> None:
        """`text` is "\\n" + a block whose first line is `first_line`; each match starts at a "\\n"."""
        position = 0
        while len(self.lines) < MAX_REPORTED_LINES:
            match = self.pattern.search(text, position)
            if match is None:
                return
            line = first_line + text.count(b"\n", 0, match.start())
            self.count += 1
            if line not in self.lines:
                self.lines.append(line)
            position = text.find(b"\n", match.start() + 1)
            if position < 0:
                return
        # Enough line numbers to show: count the rest in C, one match per line at most.
        self.count += len(self.pattern.findall(text, position))


class _EmptyKey(_Occurrences):
    """Rows whose value in one key column is empty: Learn cannot match such a row to anything."""

    def __init__(self, column: str, pattern: re.Pattern[bytes]) -> None:
        super().__init__(pattern)
        self.column = column


def inspect_file(path: Path, forced_object: str | None = None) -> Inspection:
    """Pre-flight check of a Learn flat file in one streaming pass with constant memory.

    `forced_object` (a route's `object =` setting) replaces header detection, but the columns are
    still checked against that type's required columns.
    """
    result = Inspection(file=path.name, path=str(path))
    try:
        handle = path.open("rb")
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
        first = handle.read(BLOCK_SIZE)
        problem = _not_text_problem(result, first)
        if problem:
            result.problems.append(problem)
            return result
        result.bom = first.startswith(BOM)
        body = first[len(BOM) :] if result.bom else first
        header_end = body.find(b"\n")
        header_bytes = body if header_end < 0 else body[:header_end]
        problem = _header_line_problem(header_bytes, header_end < 0 and result.size > BLOCK_SIZE)
        if problem:
            result.problems.append(problem)
            return result
        try:
            header = header_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            result.problems.append(_encoding_problem(exc, 1))
            return result
        result.encoding = "utf-8"
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
            _check_columns(result, slug, columns)
        rest = b"" if header_end < 0 else body[header_end + 1 :]
        _scan_rows(result, handle, rest, delimiter, slug)
    return result


def _size(handle: io.BufferedReader) -> int:
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


def _encoding_problem(exc: UnicodeDecodeError, line: int) -> str:
    """Name the line and the byte, and what the byte would be in Windows-1252 (the usual culprit)."""
    byte = exc.object[exc.start : exc.start + 1]
    if not byte:
        return f"the file is not UTF-8 text (line {line} ends inside a character); export it as UTF-8"
    guess = byte.decode("cp1252", errors="replace")
    known = guess.isprintable() and guess != "\ufffd"
    hint = f", which is '{guess}' in Latin-1/Windows-1252" if known else ""
    return (
        f"the file is not UTF-8 text (line {line} has the byte 0x{byte.hex().upper()}{hint}); "
        "export it from the SIS as UTF-8"
    )


# Every column that identifies some Learn object type: "did you mean" candidates for a near miss.
_KEY_COLUMNS = sorted({c for t in FEED_TYPES.values() for c in (*t.required, *t.keys)})


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


def _scan_rows(result: Inspection, handle: io.BufferedReader, rest: bytes, delimiter: str, slug: str | None) -> None:
    """Count rows and validate UTF-8, column counts and key values over the rest of the file."""
    feed = FEED_TYPES.get(slug or "")
    key_indexes = [result.columns.index(k) for k in feed.keys if k in result.columns] if feed else []
    counter = _LineCounter(result, delimiter, key_indexes)
    pending = rest
    while True:
        chunk = handle.read(BLOCK_SIZE)
        if not chunk:
            last = b"\n" + pending + (b"" if pending.endswith(b"\n") else b"\n")  # maybe no line end
            if pending and not counter.feed(last):
                return
            break
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:  # no line end in this chunk: part of a very long line
            pending += chunk
            if len(pending) > MAX_LINE_BYTES:
                line = counter.line_no + pending.count(b"\n")
                result.problems.append(
                    f"line {line} is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB: this is not a "
                    "flat file (or its line ends are missing)"
                )
                return
            continue
        text = b"".join((b"\n", pending, memoryview(chunk)[:cut]))  # one copy per block
        pending = chunk[cut:]
        if not counter.feed(text):
            return
    result.non_ascii = counter.non_ascii or any(not c.isascii() for c in result.columns)
    _row_problems(result, counter)


def _row_problems(result: Inspection, counter: _LineCounter) -> None:
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
    ordered = sorted(inspections, key=lambda i: (order_key(i.object), arrival.get(i.path, 0.0), i.file))
    for position, item in enumerate(ordered, start=1):
        item.order = position
    return ordered


# ----------------------------------------------------------------------------------------------
# Plain CSV (S3 and job targets: not Learn feeds, so no type detection)


def inspect_csv(path: Path) -> Inspection:
    """RFC 4180 check for CSV uploads: non-empty, UTF-8, a header, the same column count everywhere.

    Handshake's importer rejects files that are "not a true CSV", and we cannot read the bucket back,
    so problems must be caught here, with line numbers.
    """
    result = Inspection(file=path.name, path=str(path), delimiter=",")
    try:
        result.size = path.stat().st_size
        with path.open("rb") as raw:
            head = raw.read(BLOCK_SIZE)
    except OSError as exc:
        result.problems.append(f"cannot be read: {exc.strerror or exc}")
        return result
    if not head.strip():
        result.problems.append("the file is empty" if not head else "the file contains only blank lines")
        return result
    if b"\x00" in head:
        result.problems.append("the file is binary, not a CSV export (it contains NUL bytes)")
        return result
    result.bom = head.startswith(BOM)
    bad_lines: list[int] = []
    bad = 0
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as text:
            reader = csv.reader(text, strict=True)
            header = next(reader, [])
            result.columns = [c.strip() for c in header]
            width = len(header)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                result.rows += 1
                if len(row) != width:
                    bad += 1
                    if len(bad_lines) < MAX_REPORTED_LINES:
                        bad_lines.append(reader.line_num)
                if not result.non_ascii and not all(v.isascii() for v in row):
                    result.non_ascii = True
    except UnicodeDecodeError as exc:
        result.problems.append(
            f"the file is not UTF-8 text (byte 0x{exc.object[exc.start : exc.start + 1].hex().upper()} near "
            f"byte {exc.start}); export it as UTF-8"
        )
        return result
    except csv.Error as exc:
        result.problems.append(f"not a valid CSV file: {exc} (quotes must be doubled inside quoted values)")
        return result
    result.encoding = "utf-8"
    if result.rows == 0:
        result.problems.append("the file has a header but no data rows")
    if bad:
        result.problems.append(_column_count_problem(bad, bad_lines, len(result.columns), "comma"))
    return result
