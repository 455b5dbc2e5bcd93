"""The row checker, through real uploads: headers, required values, references, limits, warnings."""

from __future__ import annotations

import pytest

from agent.simulator import LearnSimulator
from tests.simulator.client import feed, upload_and_finish
from tests.support.learn import (
    COURSE_HEADER,
    FAST_ROWS_PER_SECOND,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
)


@pytest.mark.parametrize(
    ("name", "delimiter", "bom", "upper"),
    [("pipe", "|", False, False), ("comma", ",", True, True), ("tab", "\t", True, False), ("colon", ":", True, True)],
)
def test_headers_are_parsed_case_insensitively_with_the_integrations_delimiter_and_bom(name, delimiter, bom, upper):
    header = [h.upper() if upper else h for h in PEOPLE_HEADER]
    body = (b"\xef\xbb\xbf" if bom else b"") + feed(header, person_rows(5), delimiter).replace(b"\n", b"\r\n")

    with LearnSimulator(rows_per_second=FAST_ROWS_PER_SECOND, delimiter=name) as sim:
        uid = upload_and_finish(sim, "person", body)
        info = sim.dataset(uid)

    assert (info.rows, info.completed, info.errors, info.warnings) == (5, 5, 0, 0), info.problems


@pytest.mark.parametrize("delimiter", [",", "\t", ":"])
def test_a_file_in_another_delimiter_than_the_integrations_fails_every_record(learn_sim, delimiter):
    """Issue 13.1: Learn reads one delimiter per integration (pipe by default), it never guesses."""
    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(4), delimiter)))

    assert (info.rows, info.completed, info.errors) == (4, 0, 4)
    assert all("external_person_key" in problem for problem in info.problems), info.problems


def test_the_log_names_the_integrations_delimiter():
    with LearnSimulator(rows_per_second=FAST_ROWS_PER_SECOND, delimiter="colon") as sim:
        uid = upload_and_finish(sim, "person", feed(PEOPLE_HEADER, person_rows(1), ":"))
        messages = [entry.message for entry in sim.find(uid).log.page("Debug", 0, 5)]  # type: ignore[union-attr]

    assert any("6 columns (colon)" in message for message in messages), messages


def test_an_unknown_delimiter_is_refused_when_the_simulator_is_made():
    with pytest.raises(ValueError, match="pipe, comma, tab, colon"):
        LearnSimulator(delimiter="semicolon")


def test_rows_missing_required_values_are_errors_and_blank_lines_do_not_count(learn_sim):
    good = person_rows(3)
    no_user_id = ("P9", "SIS", "First", "Last", "", "x@example.edu")
    too_many = ("P8", "SIS", "First", "Last", "u8", "a@b.c", "extra")
    body = feed(PEOPLE_HEADER, [*good, no_user_id, too_many]) + b"\n\n"

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", body))

    assert (info.rows, info.completed, info.errors) == (5, 3, 2)
    assert any("user_id" in p for p in info.problems)
    assert any("7 fields" in p for p in info.problems)


def test_a_record_with_fewer_fields_than_the_header_is_an_error(learn_sim):
    short = ("P7", "SIS", "First", "Last", "u7")  # no email field at all

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, [*person_rows(1), short])))

    assert (info.completed, info.errors) == (1, 1)
    assert "5 fields but the header has 6" in info.problems[0]
    assert "P7" in info.problems[0]


def test_a_header_without_a_required_column_fails_every_row(learn_sim):
    header = ("external_person_key", "firstname", "user_id")  # no lastname
    body = feed(header, [("P1", "A", "u1"), ("P2", "B", "u2")])

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", body))

    assert (info.errors, info.completed) == (2, 0)
    assert "lastname" in info.problems[0]


def test_available_ind_other_than_y_or_n_is_a_warning(learn_sim):
    header = (*PEOPLE_HEADER, "available_ind")
    rows = [(*person_rows(3)[0], "Y"), (*person_rows(3)[1], "n"), (*person_rows(3)[2], "yes")]

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", feed(header, rows)))

    assert (info.completed, info.warnings, info.errors) == (2, 1, 0)
    assert "available_ind 'yes'" in info.problems[0]


def test_an_unknown_row_status_is_a_warning_and_both_warnings_make_one(learn_sim):
    header = (*PEOPLE_HEADER, "row_status", "available_ind")
    base = person_rows(4)
    rows = [
        (*base[0], "ENABLED", "Y"),
        (*base[1], "archived", "Y"),
        (*base[2], "disabled", "N"),
        (*base[3], "gone", "maybe"),
    ]

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", feed(header, rows)))

    assert (info.completed, info.warnings, info.errors) == (2, 2, 0)
    assert "row_status 'archived'" in info.problems[0] and "P00002" in info.problems[0]
    assert "row_status 'gone'" in info.problems[1] and "available_ind 'maybe'" in info.problems[1]


def test_keys_longer_than_learn_allows_are_errors(learn_sim):
    long_key = "K" * 65
    rows = [("P1", "SIS", "A", "B", "u1", "a@b.c"), (long_key, "SIS", "A", "B", "u2", "c@d.e")]

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, rows)))

    assert (info.completed, info.errors) == (1, 1)
    assert "external_person_key is longer than 64 characters" in info.problems[0]


@pytest.mark.parametrize("course_id", ["MATH 101", "A&B", "A/B", "O'NEIL", "C++", "X" * 101])
def test_course_ids_with_forbidden_characters_or_too_long_are_errors(learn_sim, course_id):
    body = feed(COURSE_HEADER, [("C1", "SIS", course_id, "Course")])

    info = learn_sim.dataset(upload_and_finish(learn_sim, "course", body))

    assert info.errors == 1
    assert "course_id" in info.problems[0]


def test_memberships_naming_unknown_people_or_courses_fail_until_those_are_stored(learn_sim):
    memberships = feed(MEMBERSHIP_HEADER, membership_rows(4, courses=2))

    wrong_order = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert (wrong_order.errors, wrong_order.completed) == (4, 0)
    assert "does not exist" in wrong_order.problems[0]

    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(4)))
    upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(2)))
    right_order = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert (right_order.errors, right_order.completed) == (0, 4), right_order.problems

    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)), "delete")
    after_delete = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert (after_delete.errors, after_delete.completed) == (1, 3)


def test_organization_memberships_need_stored_organizations(learn_sim):
    org_header = ("external_organization_key", "organization_id", "organization_name")
    orgs = feed(org_header, [("O1", "ORG1", "Chess")])
    members = feed(("external_organization_key", "external_person_key"), [("O1", "P00001")])
    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)))

    assert learn_sim.dataset(upload_and_finish(learn_sim, "organizationmembership", members)).errors == 1
    upload_and_finish(learn_sim, "organization", orgs)
    assert learn_sim.dataset(upload_and_finish(learn_sim, "organizationmembership", members)).errors == 0


def test_rows_with_errors_are_not_remembered(learn_sim):
    bad_person = ("P00001", "SIS", "", "Last", "user1", "u@example.edu")  # no firstname
    upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, [bad_person]))
    upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(1)))

    memberships = feed(MEMBERSHIP_HEADER, membership_rows(1))
    info = learn_sim.dataset(upload_and_finish(learn_sim, "membership", memberships))
    assert info.errors == 1


def test_a_line_longer_than_the_limit_is_one_error_row_not_a_memory_hog(learn_sim, monkeypatch):
    monkeypatch.setattr("agent.simulator.rows.MAX_LINE", 1000)
    rows = person_rows(3)
    body = feed(PEOPLE_HEADER, rows[:2]) + b"P9|" + b"x" * 5000 + b"\n" + "|".join(rows[2]).encode() + b"\n"

    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", body))

    assert (info.rows, info.errors, info.completed) == (4, 1, 3)
    assert "Line 4" in info.problems[0]


def test_without_a_byte_order_mark_learn_reads_iso_8859_1_and_stores_utf8_keys_garbled(learn_sim):
    people = feed(PEOPLE_HEADER, [("Zoë", "SIS", "Zoë", "Ñúñez", "zoe", "z@example.edu")])
    course = feed(COURSE_HEADER, course_rows(1))
    membership = b"\xef\xbb\xbf" + feed(MEMBERSHIP_HEADER, [("C001", "Zoë", "SIS", "Student")])
    upload_and_finish(learn_sim, "course", course)

    stored = upload_and_finish(learn_sim, "person", people)
    refused = learn_sim.dataset(upload_and_finish(learn_sim, "membership", membership))

    assert learn_sim.uploads[1].encoding == "iso-8859-1"
    assert "ZoÃ«" in learn_sim.log_entries(stored, "Information")[1].message
    assert refused.errors == 1 and "'Zoë' names a person that does not exist" in refused.problems[0]

    upload_and_finish(learn_sim, "person", b"\xef\xbb\xbf" + people)
    assert learn_sim.uploads[-1].encoding == "utf-8"
    assert learn_sim.dataset(upload_and_finish(learn_sim, "membership", membership)).errors == 0


@pytest.mark.parametrize(("encoding", "mark"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_with_a_utf16_byte_order_mark_learn_reads_utf16_and_stores_the_keys_right(learn_sim, encoding, mark):
    """Issue 13.8: Learn reads Unicode files with a BOM; the simulator decodes UTF-16 LE and BE."""
    text = "\r\n".join("|".join(row) for row in [PEOPLE_HEADER, ("Zoë", "SIS", "Zoë", "Ñúñez", "zoe", "z@x.edu")])
    stored = upload_and_finish(learn_sim, "person", mark + (text + "\r\n").encode(encoding))

    assert learn_sim.uploads[-1].encoding == encoding
    assert learn_sim.dataset(stored).completed == 1
    assert learn_sim.store.knows("person", "Zoë")
    assert "Zoë" in learn_sim.log_entries(stored, "Information")[1].message


def test_a_tiny_upload_shorter_than_a_byte_order_mark_is_still_read(learn_sim):
    info = learn_sim.dataset(upload_and_finish(learn_sim, "person", b"x\n"))
    assert (info.rows, info.errors) == (0, 0)


@pytest.mark.parametrize("key", ["2026 FALL", "2026/FA", "été"])
def test_term_keys_hold_only_letters_digits_dashes_and_dots(learn_sim, key):
    body = b"\xef\xbb\xbf" + feed(("external_term_key", "name"), [("2026-FA.1", "Fall"), (key, "Other")])

    info = learn_sim.dataset(upload_and_finish(learn_sim, "term", body))

    assert (info.completed, info.errors) == (1, 1)
    assert f"external_term_key '{key}' may hold only letters, digits" in info.problems[0]
