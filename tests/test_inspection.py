"""The pre-flight inspection (`agent.inspection`, `agent.linescan`) on real files: type, delimiter, problems.

Each case is a file an SIS (or Excel) really produces; the assertions check the detected type and
that every rejection names a precise, actionable problem.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import feeds
from agent.feeds import FEED_TYPES, normalize_header
from agent.inspection import Inspection, inspect_csv, inspect_file, plan_order

# A realistic header (required columns plus typical optional ones) and one data row per Learn type.
HEADERS: dict[str, tuple[str, str]] = {
    "person": (
        "external_person_key|data_source_key|user_id|firstname|lastname|email|institution_role|row_status",
        "P100|SIS.2024|jdoe|Jane|Doe|jdoe@example.edu|Student|enabled",
    ),
    "course": (
        "external_course_key|course_id|course_name|data_source_key|term_key|available_ind",
        "C-MATH101-F24|MATH101-F24|Calculus I|SIS.2024|F24|Y",
    ),
    "organization": (
        "external_organization_key|organization_id|organization_name|data_source_key",
        "O-CHESS|CHESS|Chess Club|SIS.2024",
    ),
    "membership": (
        "external_course_key|external_person_key|role|data_source_key|available_ind",
        "C-MATH101-F24|P100|Student|SIS.2024|Y",
    ),
    "organizationmembership": (
        "external_organization_key|external_person_key|role|data_source_key",
        "O-CHESS|P100|Participant|SIS.2024",
    ),
    "term": (
        "external_term_key|data_source_key|name|start_date|end_date",
        "F24|SIS.2024|Fall 2024|20240901|20241220",
    ),
    "secondaryinstrole": ("external_person_key|role_id|data_source_key", "P100|ALUMNI|SIS.2024"),
    "associateobserver": ("external_observer_key|external_user_key|data_source_key", "P900|P100|SIS.2024"),
    "coursecategory": (
        "external_category_key|data_source_key|title|parent_category_key",
        "CAT-MATH|SIS|Mathematics|",
    ),
    "organizationcategory": ("external_category_key|data_source_key|title", "CAT-CLUBS|SIS|Clubs"),
    "coursecategorymembership": (
        "external_category_key|external_course_key|data_source_key",
        "CAT-MATH|C-MATH101-F24|SIS",
    ),
    "organizationcategorymembership": (
        "external_category_key|external_organization_key|data_source_key",
        "CAT-CLUBS|O-CHESS|SIS",
    ),
    "node": ("external_node_key|parent_node_key|name|data_source_key", "N-SCI|N-ROOT|Science|SIS"),
    "userassociation": (
        "external_association_key|external_node_key|external_user_key|data_source_key",
        "UA1|N-SCI|P100|SIS",
    ),
    "courseassociation": (
        "external_association_key|external_node_key|external_course_key|data_source_key|is_primary_association",
        "CA1|N-SCI|C-MATH101-F24|SIS|Y",
    ),
    "organizationassociation": (
        "external_association_key|external_node_key|external_organization_key|data_source_key",
        "OA1|N-SCI|O-CHESS|SIS",
    ),
    "subject": (
        "external_subject_key|subject_id|subject_name|subject_type|data_source_key",
        "S-MATH|Mathematics__MATH|Mathematics|U|SIS",
    ),
    "program": (
        "external_program_key|program_id|program_name|program_type|data_source_key",
        "PR-BSC|BSC|Bachelor of Science|U|SIS",
    ),
    "programtosubjectassociation": (
        "external_association_key|external_program_key|external_subject_key|data_source_key",
        "PS1|PR-BSC|S-MATH|SIS",
    ),
    "subjecttocourseassociation": (
        "external_association_key|external_subject_key|external_course_key|data_source_key",
        "SC1|S-MATH|C-MATH101-F24|SIS",
    ),
    "subjecttoorgassociation": (
        "external_association_key|external_subject_key|external_org_key|data_source_key",
        "SO1|S-MATH|O-CHESS|SIS",
    ),
    "standardsassociation": ("std_sub_doc_key|course_key", "STD-1|C-MATH101-F24"),
}
FILE_NAMES = {
    "organizationcategory": "organization_categories.txt",
    "coursecategory": "course_categories.txt",
}


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def feed_file(tmp_path: Path, slug: str, *, name: str | None = None, rows: int = 2) -> Path:
    header, row = HEADERS[slug]
    return write(tmp_path, name or FILE_NAMES.get(slug, f"{slug}.txt"), header + "\n" + (row + "\n") * rows)


def the_problem(result: Inspection) -> str:
    assert len(result.problems) == 1, result.problems
    return result.problems[0]


# ---------------------------------------------------------------------------------------------
# Detection


def test_every_reference_type_has_a_header_case() -> None:
    assert set(HEADERS) == set(FEED_TYPES)
    assert len(FEED_TYPES) == 22


@pytest.mark.parametrize("slug", sorted(HEADERS))
def test_every_type_is_detected_from_a_realistic_header(tmp_path: Path, slug: str) -> None:
    result = inspect_file(feed_file(tmp_path, slug))
    assert result.object == slug
    assert result.family == FEED_TYPES[slug].family
    assert result.problems == []
    assert result.rows == 2
    assert result.delimiter == "|"
    assert result.encoding == "utf-8"
    assert result.ok


@pytest.mark.parametrize("slug", sorted(HEADERS))
def test_required_columns_are_in_the_realistic_header(slug: str) -> None:
    columns = normalize_header(HEADERS[slug][0], "|")
    assert set(FEED_TYPES[slug].required) <= set(columns)
    assert set(FEED_TYPES[slug].keys) <= set(columns)


def test_uppercase_bom_and_crlf_header(tmp_path: Path) -> None:
    header, row = HEADERS["membership"]
    path = write(tmp_path, "m.txt", b"\xef\xbb\xbf" + f"{header.upper()}\r\n{row}\r\n{row}\r\n".encode())
    result = inspect_file(path)
    assert (result.object, result.bom, result.rows, result.problems) == ("membership", True, 2, [])
    assert result.columns[0] == "external_course_key"  # BOM stripped, lowercased


@pytest.mark.parametrize(("delimiter", "name"), [("\t", "tab"), (",", "comma")])
def test_tab_and_comma_delimiters(tmp_path: Path, delimiter: str, name: str) -> None:
    header, row = HEADERS["person"]
    text = header.replace("|", delimiter) + "\n" + row.replace("|", delimiter) + "\n"
    result = inspect_file(write(tmp_path, "p.txt", text))
    assert (result.object, result.delimiter, result.problems) == ("person", delimiter, [])
    assert result.to_json()["delimiter"] == name


def test_reordered_columns_and_spaces_around_names(tmp_path: Path) -> None:
    text = " user_id | lastname|firstname |data_source_key| external_person_key\njdoe|Doe|Jane|SIS|P1\n"
    result = inspect_file(write(tmp_path, "p.txt", text))
    assert (result.object, result.problems, result.rows) == ("person", [], 1)


def test_quoted_comma_header_from_excel(tmp_path: Path) -> None:
    text = '"EXTERNAL_PERSON_KEY","USER_ID","FIRSTNAME","LASTNAME","DATA_SOURCE_KEY"\r\nP1,jdoe,Jane,Doe,SIS\r\n'
    result = inspect_file(write(tmp_path, "excel.csv", text))
    assert (result.object, result.delimiter, result.problems) == ("person", ",", [])
    assert any("double quotes" in note for note in result.notes)


def test_quoted_values_are_a_problem_because_learn_keeps_quotes(tmp_path: Path) -> None:
    text = '"external_person_key","user_id","firstname","lastname"\n"P1","jdoe","Jane","Doe"\n"P2","x","y","z"\n'
    result = inspect_file(write(tmp_path, "excel.csv", text))
    assert result.object == "person"
    assert "double quotes (lines 2, 3)" in the_problem(result)


@pytest.mark.parametrize(
    "extra",
    ["primary_external_node_key", "primary_external_node_key|external_association_key"],
)
def test_course_with_node_and_association_columns_is_still_a_course(tmp_path: Path, extra: str) -> None:
    header = "external_course_key|course_id|course_name|data_source_key|" + extra
    row = "C1|MATH101|Calculus|SIS|" + "|".join("N1" for _ in extra.split("|"))
    result = inspect_file(write(tmp_path, "courses.txt", f"{header}\n{row}\n"))
    assert (result.object, result.problems) == ("course", [])


def test_category_is_ambiguous_without_a_hint_in_the_name(tmp_path: Path) -> None:
    text = "external_category_key|title|data_source_key\nCAT1|Math|SIS\n"
    plain = inspect_file(write(tmp_path, "categories.txt", text))
    assert plain.object == "coursecategory"
    assert any("course categories" in note and "organizationcategory" in note for note in plain.notes)
    assert plain.problems == []
    for name in ("organization_categories.txt", "OrgCategories.txt", "orgs-cat.txt"):
        result = inspect_file(write(tmp_path, name, text))
        assert result.object == "organizationcategory", name
        assert not any("assumed" in note for note in result.notes)
    assert inspect_file(write(tmp_path, "georgia_cats.txt", text)).object == "coursecategory"
    assert inspect_file(write(tmp_path, "course_categories.txt", text)).notes == []


def test_forced_object_replaces_detection_but_checks_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "cats.txt", "external_category_key|title|data_source_key\nC1|Math|SIS\n")
    assert inspect_file(path, "organizationcategory").object == "organizationcategory"
    wrong = inspect_file(path, "person")
    assert wrong.object == "person"
    assert "missing required columns for person: external_person_key" in the_problem(wrong)


# ---------------------------------------------------------------------------------------------
# Column and row checks


def test_missing_required_column_names_the_near_miss(tmp_path: Path) -> None:
    text = "external_person_key|data_source_key|first_name|lastname|user_id\nP1|SIS|Jane|Doe|jdoe\n"
    problem = the_problem(inspect_file(write(tmp_path, "p.txt", text)))
    assert problem == "missing required column for person: firstname (the header has 'first_name')"


def test_no_data_source_key_is_a_note_not_a_problem(tmp_path: Path) -> None:
    result = inspect_file(write(tmp_path, "t.txt", "external_term_key|name\nF24|Fall\n"))
    assert result.ok
    assert any("data_source_key" in note for note in result.notes)


def test_empty_key_values_are_reported_with_line_numbers(tmp_path: Path) -> None:
    header = "external_course_key|external_person_key|role|data_source_key"
    rows = ["C1|P1|Student|SIS", "|P2|Student|SIS", "C1||Student|SIS", "  |P3||SIS", "C1|P4||", "C1|  |x|SIS"]
    result = inspect_file(write(tmp_path, "m.txt", header + "\n" + "\n".join(rows) + "\n"))
    assert result.problems == [
        "2 rows with an empty external_course_key (lines 3, 5); every row needs its key",
        "2 rows with an empty external_person_key (lines 4, 7); every row needs its key",
    ]
    assert result.rows == 6


def test_empty_optional_fields_are_fine_and_key_last_column_is_checked(tmp_path: Path) -> None:
    header = "data_source_key|firstname|lastname|user_id|email|external_person_key"
    rows = "SIS|||u1||P1\r\nSIS|A|B|u2||\r\nSIS|A|B|u3|| \r\n"
    result = inspect_file(write(tmp_path, "p.txt", header + "\r\n" + rows))
    assert result.problems == ["2 rows with an empty external_person_key (lines 3, 4); every row needs its key"]


def test_many_empty_keys_are_counted_exactly_and_shown_as_first_few(tmp_path: Path) -> None:
    rows = "".join(("|SIS|A|B|u\n" if n % 3 == 0 else f"P{n}|SIS|A|B|u\n") for n in range(30))
    header = "external_person_key|data_source_key|firstname|lastname|user_id\n"
    result = inspect_file(write(tmp_path, "p.txt", header + rows))
    assert result.problems == [
        "10 rows with an empty external_person_key (lines 2, 5, 8, 11, 14 and others); every row needs its key"
    ]


def test_column_count_mismatches_first_few_lines_and_others(tmp_path: Path) -> None:
    header, row = HEADERS["term"]
    lines = [row] * 3 + ["F25|SIS|Spring|20250101"] * 7 + ["F26|SIS|Sum|mer|2025|x"]
    result = inspect_file(write(tmp_path, "terms.txt", header + "\n" + "\n".join(lines) + "\n"))
    problem = the_problem(result)
    assert problem.startswith(
        "8 rows do not have the header's 5 pipe-separated columns (lines 5, 6, 7, 8, 9 and others)"
    )
    assert result.bad_row_lines == [5, 6, 7, 8, 9]
    assert result.rows == 11


def test_one_bad_row_is_singular(tmp_path: Path) -> None:
    header, row = HEADERS["term"]
    result = inspect_file(write(tmp_path, "t.txt", f"{header}\n{row}\nF9|SIS|Fall | 2024|x|y|z\n"))
    assert the_problem(result).startswith("1 row does not have the header's 5 pipe-separated columns (line 3)")


def test_trailing_delimiter_on_rows_only_is_named(tmp_path: Path) -> None:
    header, row = HEADERS["term"]
    result = inspect_file(write(tmp_path, "t.txt", f"{header}\n{row}|\n{row}|\n"))
    assert "they end with an extra pipe delimiter" in the_problem(result)


def test_trailing_delimiter_on_every_line_is_named(tmp_path: Path) -> None:
    header, row = HEADERS["term"]
    result = inspect_file(write(tmp_path, "t.txt", f"{header}|\n{row}|\n"))
    assert result.object == "term"
    assert "the header ends with a pipe delimiter" in the_problem(result)


def test_duplicate_columns(tmp_path: Path) -> None:
    result = inspect_file(write(tmp_path, "t.txt", "external_term_key|name|name|data_source_key\nT|a|b|S\n"))
    assert the_problem(result) == "duplicate column: name"


def test_blank_lines_are_not_rows_and_last_line_needs_no_newline(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    text = f"{header}\n\n{row}\n   \n\r\n{row}\n{row}\n\n\n{row}"
    result = inspect_file(write(tmp_path, "p.txt", text))
    assert (result.rows, result.problems, result.ok) == (4, [], True)


def test_header_only_and_header_without_newline(tmp_path: Path) -> None:
    header, _ = HEADERS["person"]
    for name, text in (("a.txt", header + "\n"), ("b.txt", header), ("c.txt", header + "\r\n\r\n\n")):
        result = inspect_file(write(tmp_path, name, text))
        assert result.object == "person"
        assert the_problem(result) == "the file has a header but no data rows"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty (0 bytes)"),
        (b"\n", "only blank lines or spaces"),
        (b"   \r\n\t\n  ", "only blank lines or spaces"),
        (b"\xef\xbb\xbf", "only a UTF-8 byte-order mark"),
        (b"\x00\x01\x02\x03binary\x00", "binary, not a text export (it contains NUL bytes)"),
        (b"PK\x03\x04\x14\x00\x06\x00", "Excel workbook (.xlsx)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old-style Excel workbook (.xls)"),
        (b"\x1f\x8b\x08\x00", "gzip-compressed"),
        (b"\nexternal_term_key|name\nT|n\n", "line 1 is blank"),
        (b"sep=|\nexternal_term_key|name\nT|n\n", "Excel's 'sep=' hint"),
        (b"external_term_key|name\rT|n\rU|m\r", "carriage return only"),
        (b"id;name\n1;x\n", "unrecognized header"),
    ],
)
def test_unusable_files_get_a_precise_problem(tmp_path: Path, content: bytes, expected: str) -> None:
    result = inspect_file(write(tmp_path, "f.txt", content))
    assert result.object is None
    assert expected in the_problem(result)
    assert not result.ok


def test_unknown_header_lists_columns_and_suggests_close_names(tmp_path: Path) -> None:
    result = inspect_file(write(tmp_path, "f.txt", "external_person_id|first_name|email\n1|a|b\n"))
    problem = the_problem(result)
    assert problem.startswith("unrecognized header: no Learn object type has these columns (external_person_id")
    assert "'external_person_id' → external_person_key?" in problem


def test_semicolon_export_is_named(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    result = inspect_file(write(tmp_path, "p.csv", header.replace("|", ";") + "\n" + row.replace("|", ";")))
    assert "separated by semicolons" in the_problem(result)
    assert "person" in result.problems[0]
    assert result.to_json()["delimiter"] == "semicolon"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_named_with_advice(tmp_path: Path, encoding: str) -> None:
    """Learn reads a file without a mark as ISO-8859-1, so BOM-less UTF-16 stays refused."""
    header, row = HEADERS["person"]
    path = write(tmp_path, "p.txt", f"{header}\r\n{row}\r\n".encode(encoding))
    result = inspect_file(path)
    problem = the_problem(result)
    assert "UTF-16" in problem and "export it" in problem and "UTF-8" in problem
    assert "looks like a person file" in problem
    assert result.object is None and result.encoding is not None and result.encoding.startswith("utf-16")


@pytest.mark.parametrize(("encoding", "mark"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_utf16_with_its_byte_order_mark_is_read_as_learn_reads_it(tmp_path: Path, encoding: str, mark: bytes) -> None:
    """Issue 13.8: Learn reads UTF-16 with a BOM; it is inspected by decoding (accents, rows, problems)."""
    header, row = HEADERS["person"]
    accented = "P2|SIS.2024|jnunez|José|Ñúñez|jn@example.edu|Student|enabled"
    path = write(tmp_path, "p.txt", mark + f"{header}\r\n{row}\r\n{accented}\r\n".encode(encoding))
    result = inspect_file(path)
    assert result.ok, result.problems
    assert (result.object, result.encoding, result.bom, result.rows) == ("person", encoding, True, 2)
    assert result.non_ascii and result.delimiter == "|"


def test_utf16_with_a_mark_is_still_checked_row_by_row(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    path = write(tmp_path, "p.txt", f"{header}\n{row}\nP3|SIS|only|three\n".encode("utf-16"))
    problem = the_problem(inspect_file(path))
    assert "1 row does not have the header's 8 pipe-separated columns (line 3)" in problem


def test_broken_utf16_after_its_mark_is_named(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    body = b"\xff\xfe" + f"{header}\n{row}\n".encode("utf-16-le") + b"\x00\xdc\n\x00"  # a lone low surrogate
    problem = the_problem(inspect_file(write(tmp_path, "p.txt", body)))
    assert "UTF-16 byte-order mark but is not valid UTF-16-LE" in problem


def test_a_latin1_route_accepts_latin1_files_as_learn_reads_them(tmp_path: Path) -> None:
    """Issue 13.8: `encoding = latin-1` on the route: checked as ISO-8859-1, today's refusal otherwise."""
    header, row = HEADERS["person"]
    text = f"{header}\n{row}\n".encode() + "P2|SIS|jose|José|Ñúñez|j@x.edu|Student|enabled\n".encode("latin-1")
    path = write(tmp_path, "p.txt", text)
    result = inspect_file(path, encoding="latin-1")
    assert result.ok, result.problems
    assert (result.encoding, result.bom, result.rows, result.non_ascii) == ("latin-1", False, 2, True)
    assert "not UTF-8" in the_problem(inspect_file(path))  # undeclared: refused as before


def test_a_latin1_route_refuses_windows_1252_bytes_naming_the_line(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    text = f"{header}\n{row}\n".encode() + "P2|SIS|o|Seán “Jr”|Ó|o@x.edu|Student|enabled\n".encode("cp1252")
    problem = the_problem(inspect_file(write(tmp_path, "p.txt", text), encoding="latin-1"))
    assert "line 3 has the byte 0x93" in problem and "Windows-1252" in problem


def test_a_latin1_route_refuses_a_file_that_is_utf8(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    text = f"{header}\n{row}\nP2|SIS|jose|José|Núñez|j@x.edu|Student|enabled\n".encode()
    problem = the_problem(inspect_file(write(tmp_path, "p.txt", text), encoding="latin-1"))
    assert "the file is UTF-8 text" in problem and "remove encoding = latin-1" in problem


def test_a_utf8_mark_wins_over_a_latin1_route(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    text = b"\xef\xbb\xbf" + f"{header}\n{row}\nP2|SIS|jose|José|Núñez|j@x.edu|Student|enabled\n".encode()
    result = inspect_file(write(tmp_path, "p.txt", text), encoding="latin-1")
    assert result.ok and (result.encoding, result.bom) == ("utf-8", True)


def test_utf32_export_is_named(tmp_path: Path) -> None:
    result = inspect_file(write(tmp_path, "p.txt", "external_term_key|name\nT|n\n".encode("utf-32")))
    assert "UTF-32" in the_problem(result)


def test_latin1_accents_name_the_line_and_the_byte(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    text = f"{header}\n{row}\n".encode() + "P2|SIS|jose|José|Ñúñez|j@x.edu|Student|enabled\n".encode("latin-1")
    result = inspect_file(write(tmp_path, "p.txt", text))
    problem = the_problem(result)
    assert "not UTF-8" in problem and "line 3" in problem and "0xE9" in problem and "'é'" in problem
    assert result.encoding is None


def test_latin1_in_the_header(tmp_path: Path) -> None:
    result = inspect_file(write(tmp_path, "p.txt", "external_person_key|prénom\nP1|x\n".encode("latin-1")))
    assert "line 1" in the_problem(result)


def test_latin1_straddling_bytes_that_would_look_valid_without_the_ascii(tmp_path: Path) -> None:
    """é (0xE9) ... ° ± (0xB0 0xB1): valid UTF-8 only if the ASCII between them were ignored."""
    header, _ = HEADERS["term"]
    text = f"{header}\n".encode() + "T1|SIS|Café at 25° ±2|20240101|20240102\n".encode("latin-1")
    assert "line 2" in the_problem(inspect_file(write(tmp_path, "t.txt", text)))


def test_nul_bytes_after_the_first_block(tmp_path: Path) -> None:
    header, row = HEADERS["term"]
    body = (row + "\n").encode() * (feeds.BLOCK_SIZE // len(row) + 10)
    path = write(tmp_path, "t.txt", header.encode() + b"\n" + body + b"T9|\x00|x|y|z\n")
    problem = the_problem(inspect_file(path))
    nul_line = body.count(b"\n") + 2
    assert "NUL bytes" in problem and f"(line {nul_line})" in problem


def test_valid_utf8_with_bom_and_accents_is_clean(tmp_path: Path) -> None:
    text = "\ufeffexternal_person_key|firstname|lastname|user_id\nP1|José|Ñúñez|jn\nP2|Søren|Yılmaz|sy\nP3|李|王|lw\n"
    result = inspect_file(write(tmp_path, "p.txt", text.encode()))
    assert (result.ok, result.bom, result.non_ascii, result.rows) == (True, True, True, 3)


def test_multibyte_character_split_across_the_block_boundary_is_not_an_error(tmp_path: Path) -> None:
    header = b"external_person_key|firstname|lastname|user_id\n"
    filler = b"P0|Ann|Lee|al\n"
    prefix = header + filler * ((feeds.BLOCK_SIZE - 100 - len(header)) // len(filler))
    # A padding row sized so that the 2-byte "ë" of the next row starts on the block's last byte.
    pad = feeds.BLOCK_SIZE - 1 - len(b"P1|Zo") - len(prefix) - len(b"P0|Ann|Lee|\n")
    data = prefix + b"P0|Ann|Lee|" + b"a" * pad + b"\n" + "P1|Zoë|Ünal|zu\n".encode() * 1000
    assert data[feeds.BLOCK_SIZE - 1 : feeds.BLOCK_SIZE + 1] == "ë".encode(), "fixture must split ë"
    result = inspect_file(write(tmp_path, "p.txt", data))
    assert result.problems == []
    assert result.rows == data.count(b"\n") - 1
    assert result.non_ascii


def test_row_count_is_exact_over_several_blocks(tmp_path: Path) -> None:
    header, row = HEADERS["person"]
    rows = 3 * feeds.BLOCK_SIZE // len(row) + 123
    path = write(tmp_path, "big.txt", (header + "\r\n" + (row + "\r\n") * rows).encode())
    assert path.stat().st_size > 2 * feeds.BLOCK_SIZE
    result = inspect_file(path)
    assert (result.rows, result.problems, result.size) == (rows, [], path.stat().st_size)


def test_bad_rows_and_empty_keys_in_later_blocks_have_exact_line_numbers(tmp_path: Path) -> None:
    header, row = HEADERS["term"]
    count = feeds.BLOCK_SIZE // len(row) + 500
    lines = [row] * count
    lines[count - 5] = "|SIS|Fall|20240101|20240102"
    lines[count - 2] = "T|SIS|Fall|2024"
    result = inspect_file(write(tmp_path, "t.txt", header + "\n" + "\n".join(lines) + "\n"))
    assert result.problems[0].startswith(f"1 row does not have the header's 5 pipe-separated columns (line {count})")
    assert result.problems[1].startswith(f"1 row with an empty external_term_key (line {count - 3})")
    assert result.rows == count


def test_a_very_long_line_is_fine(tmp_path: Path) -> None:
    text = b"external_course_key|course_id|course_name|description\nC1|M1|Calc|" + b"x" * (6 * 1024 * 1024) + b"\n"
    result = inspect_file(write(tmp_path, "c.txt", text + b"C2|M2|Alg|short\n"))
    assert (result.rows, result.problems) == (2, [])


def test_missing_file_and_folder(tmp_path: Path) -> None:
    assert the_problem(inspect_file(tmp_path / "nope.txt")) == "the file does not exist (check the path)"
    assert the_problem(inspect_file(tmp_path)) == "is a folder, not a file"


def test_to_json_has_the_contract_keys(tmp_path: Path) -> None:
    data = inspect_file(feed_file(tmp_path, "person")).to_json()
    assert {"file", "object", "delimiter", "encoding", "bom", "rows", "problems", "order"} <= set(data)
    assert (data["object"], data["delimiter"], data["encoding"], data["bom"], data["rows"]) == (
        "person",
        "pipe",
        "utf-8",
        False,
        2,
    )


# ---------------------------------------------------------------------------------------------
# Order


def test_plan_order_by_type_then_arrival_then_name(tmp_path: Path) -> None:
    def made(name: str, slug: str | None) -> Inspection:
        return Inspection(file=name, path=str(tmp_path / name), object=slug)

    items = [
        made("zz_unknown.txt", None),
        made("b_members.txt", "membership"),
        made("a_members.txt", "membership"),
        made("courses.txt", "course"),
        made("people_late.txt", "person"),
        made("people_early.txt", "person"),
    ]
    arrival = {str(tmp_path / "people_late.txt"): 200.0, str(tmp_path / "people_early.txt"): 100.0}
    ordered = plan_order(items, arrival)
    assert [i.file for i in ordered] == [
        "people_early.txt",
        "people_late.txt",
        "courses.txt",
        "a_members.txt",
        "b_members.txt",
        "zz_unknown.txt",
    ]
    assert [i.order for i in ordered] == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------------------------------------
# Plain CSV (S3 / job targets)


def test_inspect_csv_accepts_quoted_commas(tmp_path: Path) -> None:
    text = 'id,name,note\r\n1,"Doe, Jane","said ""hi"""\r\n2,Søren,\r\n'
    result = inspect_csv(write(tmp_path, "people.csv", text))
    assert (result.problems, result.rows, result.columns, result.non_ascii) == (
        [],
        2,
        ["id", "name", "note"],
        True,
    )


def test_inspect_csv_bad_quote(tmp_path: Path) -> None:
    result = inspect_csv(write(tmp_path, "bad.csv", 'id,name\n1,"Doe"x,\n'))
    assert the_problem(result).startswith("not a valid CSV file: ")
    assert "quotes must be doubled" in result.problems[0]


def test_inspect_csv_ragged_rows_have_line_numbers(tmp_path: Path) -> None:
    result = inspect_csv(write(tmp_path, "r.csv", "a,b,c\n1,2,3\n1,2\n1,2,3,4\n1,2,3\n"))
    assert the_problem(result) == "2 rows do not have the header's 3 comma-separated columns (lines 3, 4)"


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "the file is empty"), (b"a,b,c\n", "header but no data rows"), (b"\x00\x01", "binary")],
)
def test_inspect_csv_empty_header_only_binary(tmp_path: Path, content: bytes, expected: str) -> None:
    assert expected in the_problem(inspect_csv(write(tmp_path, "x.csv", content)))
