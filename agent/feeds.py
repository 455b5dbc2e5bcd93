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
DELIMITER_NAMES = {"|": "pipe", "\t": "tab", ",": "comma"}
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
    """A category header cannot tell course from organization categories: ask the file name."""
    lowered = file_name.lower()
    if re.search(r"org", lowered):
        return "organizationcategory", None
    if "course" in lowered:
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


class _LineCounter:
    """Counts rows, column-count mismatches and empty key values over blocks of whole lines.

    The common case (every line has the header's number of delimiters) is settled with C-speed bulk
    operations on the block; only a block with an anomaly is walked line by line.
    """

    def __init__(self, result: Inspection, delimiter: str, key_indexes: Sequence[int]) -> None:
        self.result = result
        self.sep = delimiter.encode()
        self.expected = max(len(result.columns) - 1, 0)
        self.line_no = 2  # number of the next line to be fed (the header is line 1)
        self.bad_rows = 0
        sep = re.escape(self.sep)
        not_sep = b"[^" + sep + b"\n]*"
        # A line whose k-th field is empty: "\n", k fields with their delimiter, then a delimiter or
        # the line end. The leading literal lets the regex engine skip quickly to line starts.
        self.empty_key_patterns = [(result.columns[i], self._empty_field_pattern(i, sep)) for i in key_indexes]
        self.empty_keys: dict[str, int] = {}
        self.empty_key_lines: list[int] = []

    def _empty_field_pattern(self, index: int, sep: bytes) -> re.Pattern[bytes]:
        """Matches a line whose field number `index` (0-based) is empty or blank.

        Shape: newline, `index` fields with their delimiter, then spaces and a delimiter (or the line
        end, for a field after the first: a blank line is not a row). The leading literal newline
        lets the regex engine jump from line start to line start.
        """
        field_ = b"[^" + sep + b"\\n]*" + sep
        end = sep if index == 0 else b"(?:" + sep + b"|\\r?\\n)"
        return re.compile(b"\\n(?:" + field_ + b"){" + str(index).encode() + b"}(?= *" + end + b")")

    def feed(self, block: bytes) -> None:
        """`block` holds whole lines; the last one may lack its newline only at the end of the file."""
        lines = block.split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        if set(map(bytes.count, lines, repeat(self.sep))) == {self.expected}:
            self.result.rows += len(lines)
        else:
            self._walk(lines)
        if self.empty_key_patterns:
            self._find_empty_keys(block)
        self.line_no += len(lines)

    def _walk(self, lines: list[bytes]) -> None:
        for offset, line in enumerate(lines):
            if not line.strip():
                continue
            self.result.rows += 1
            if line.count(self.sep) != self.expected:
                self.bad_rows += 1
                if len(self.result.bad_row_lines) < MAX_REPORTED_LINES:
                    self.result.bad_row_lines.append(self.line_no + offset)

    def _find_empty_keys(self, block: bytes) -> None:
        text = b"\n" + block if block.endswith(b"\n") else b"\n" + block + b"\n"
        for column, pattern in self.empty_key_patterns:
            for match in pattern.finditer(text):
                self.empty_keys[column] = self.empty_keys.get(column, 0) + 1
                if len(self.empty_key_lines) < MAX_REPORTED_LINES:
                    line = self.line_no + text.count(b"\n", 0, match.start())
                    if line not in self.empty_key_lines:
                        self.empty_key_lines.append(line)


def inspect_file(path: Path, forced_object: str | None = None) -> Inspection:
    """Pre-flight check of a Learn flat file in one streaming pass.

    `forced_object` (a route's `object =` setting) replaces header detection, but the columns are
    still checked against that type's required columns.
    """
    result = Inspection(file=path.name, path=str(path))
    try:
        handle = path.open("rb")
    except OSError as exc:
        result.problems.append(f"cannot be read: {exc.strerror or exc}")
        return result
    with handle:
        result.size = _size(handle)
        first = handle.read(BLOCK_SIZE)
        if not first.strip(b" \t\r\n"):
            result.problems.append("the file is empty" if not first else "the file contains only blank lines")
            return result
        if not _looks_like_text(first):
            result.problems.append("the file is binary, not a text export (it contains NUL bytes)")
            return result
        result.bom = first.startswith(BOM)
        body = first[len(BOM) :] if result.bom else first
        header_end = body.find(b"\n")
        while header_end < 0 and len(body) < 64 * 1024 * 1024:
            more = handle.read(BLOCK_SIZE)
            if not more:
                break
            body += more
            header_end = body.find(b"\n")
        header_bytes = body if header_end < 0 else body[:header_end]
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
        if slug is None:
            result.problems.append(_unknown_header_problem(columns))
        else:
            _check_columns(result, slug, columns)
        rest = b"" if header_end < 0 else body[header_end + 1 :]
        _scan_rows(result, handle, rest, delimiter, slug)
    return result


def _size(handle: io.BufferedReader) -> int:
    return os.fstat(handle.fileno()).st_size


def _looks_like_text(block: bytes) -> bool:
    return b"\x00" not in block


def _encoding_problem(exc: UnicodeDecodeError, line: int) -> str:
    byte = exc.object[exc.start : exc.start + 1]
    shown = f"0x{byte.hex().upper()}" if byte else "an incomplete character"
    return (
        f"the file is not UTF-8 text (byte {shown} on line {line}); "
        "export it from the SIS as UTF-8"
    )


def _unknown_header_problem(columns: list[str]) -> str:
    shown = ", ".join(c for c in columns[:6] if c) or "(nothing)"
    more = ", …" if len(columns) > 6 else ""
    return (
        f"unrecognized header: no Learn object type has these columns ({shown}{more}); a Learn feed "
        "needs a key column such as external_person_key, external_course_key or external_term_key"
    )


def _check_columns(result: Inspection, slug: str, columns: list[str]) -> None:
    feed = FEED_TYPES[slug]
    result.object, result.family = slug, feed.family
    present = set(columns)
    missing = [c for c in feed.required if c not in present]
    if missing:
        result.problems.append(
            f"missing required column{'s' if len(missing) > 1 else ''} for {slug}: " + ", ".join(missing)
        )
    if feed.uses_dsk and "data_source_key" not in present:
        result.notes.append("no data_source_key column: the integration's default data source will be used")
    duplicates = sorted({c for c in columns if c and columns.count(c) > 1})
    if duplicates:
        result.problems.append(
            "duplicate column" + ("s" if len(duplicates) > 1 else "") + ": " + ", ".join(duplicates)
        )
    if "" in columns:
        result.problems.append("the header has an empty column name (a stray delimiter?)")


def _scan_rows(
    result: Inspection, handle: io.BufferedReader, rest: bytes, delimiter: str, slug: str | None
) -> None:
    """Count rows, validate UTF-8 and column counts over the remainder of the file."""
    feed = FEED_TYPES.get(slug or "")
    key_indexes = [result.columns.index(k) for k in feed.keys if k in result.columns] if feed else []
    counter = _LineCounter(result, delimiter, key_indexes)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    non_ascii = not rest.isascii()
    pending = rest
    line_base = 2
    while True:
        chunk = handle.read(BLOCK_SIZE)
        data = pending + chunk
        if not chunk:
            block, pending = data, b""
        else:
            cut = data.rfind(b"\n") + 1
            block, pending = data[:cut], data[cut:]
        if block:
            if b"\x00" in block:
                result.problems.append(
                    "the file contains NUL bytes after the header: it is binary or corrupt"
                )
                result.encoding = None
                return
            if non_ascii or not block.isascii():
                non_ascii = True
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    line = line_base + block.count(b"\n", 0, exc.start)
                    result.problems.append(_encoding_problem(exc, line))
                    result.encoding = None
                    return
            counter.feed(block)
            line_base = counter.line_no
        if not chunk:
            break
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        result.problems.append(_encoding_problem(exc, line_base))
        result.encoding = None
        return
    result.non_ascii = non_ascii or any(not c.isascii() for c in result.columns)
    _row_problems(result, counter)


def _row_problems(result: Inspection, counter: _LineCounter) -> None:
    if result.rows == 0 and not result.problems:
        result.problems.append("the file has a header but no data rows")
    if counter.bad_rows:
        name = DELIMITER_NAMES.get(result.delimiter or "", result.delimiter or "")
        result.problems.append(
            _column_count_problem(counter.bad_rows, result.bad_row_lines, len(result.columns), name)
            + "; values must not contain the delimiter"
        )
    if counter.empty_keys:
        total = sum(counter.empty_keys.values())
        which = " or ".join(counter.empty_keys)
        lines = ", ".join(map(str, sorted(counter.empty_key_lines)))
        more = " and others" if total > len(counter.empty_key_lines) else ""
        result.problems.append(
            f"{total} empty {which} value{'s' if total > 1 else ''} (line{'s' if total > 1 else ''} "
            f"{lines}{more}); every row needs its key"
        )


def _column_count_problem(bad: int, lines: list[int], width: int, delimiter_name: str) -> str:
    shown = ", ".join(map(str, lines)) + (" and others" if bad > len(lines) else "")
    plural = "s" if bad > 1 else ""
    verb = "do not have" if bad > 1 else "does not have"
    return (
        f"{bad} row{plural} {verb} the header's {width} {delimiter_name}-separated columns "
        f"(line{plural} {shown})"
    )


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
