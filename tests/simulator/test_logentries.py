"""Log entries: what each record's entry says, level filtering, and the cost of a very big data set."""

from __future__ import annotations

import tracemalloc

from agent.simulator import LearnSimulator
from agent.simulator.logentries import parse_level
from tests.simulator.client import feed, get_log, token, upload_and_finish
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
)


def test_a_membership_error_names_both_keys_and_the_missing_person(learn_sim):
    upload_and_finish(learn_sim, "course", feed(COURSE_HEADER, course_rows(1)))
    uid = upload_and_finish(learn_sim, "membership", feed(MEMBERSHIP_HEADER, membership_rows(2)))

    errors = learn_sim.log_entries(uid, "Error")

    assert [e.level for e in errors] == ["Error", "Error"]
    assert errors[0].message == (
        "Line 2: the membership record (external_course_key C001, external_person_key P00001) was not saved: "
        "external_person_key 'P00001' names a person that does not exist."
    )
    assert "P00002" in errors[1].message and "Line 3" in errors[1].message


def test_every_record_has_exactly_one_entry_and_errors_and_warnings_match_the_counts(learn_sim):
    header = (*PEOPLE_HEADER, "available_ind")
    rows = [(*r, "Y") for r in person_rows(6)]
    rows[1] = (*rows[1][:4], "", *rows[1][5:])  # no user_id
    rows[4] = (*rows[4][:6], "perhaps")
    uid = upload_and_finish(learn_sim, "person", feed(header, rows))

    entries = learn_sim.log_entries(uid, "Debug")
    info = learn_sim.dataset(uid)

    assert [e.level for e in entries] == [
        "Information",
        "Debug",
        "Information",
        "Error",
        "Information",
        "Information",
        "Warning",
        "Information",
        "Information",
    ]
    assert (info.errors, info.warnings) == (1, 1)
    assert len(learn_sim.log_entries(uid, "Warning")) == info.errors + info.warnings


def test_delete_records_are_reported_as_deleted(learn_sim):
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, person_rows(1)), "delete")

    (record,) = [e for e in learn_sim.log_entries(uid, "Information") if e.message.startswith("Line")]

    assert record.message == "Line 2: the person record P00001 was deleted."


def test_records_beyond_the_fact_budget_are_still_logged_without_their_keys(learn_sim, monkeypatch):
    monkeypatch.setattr("agent.simulator.rows.MAX_FACT_BYTES", 20)  # three records fit
    rows = person_rows(4)
    rows[3] = (*rows[3][:4], "", rows[3][5])
    uid = upload_and_finish(learn_sim, "person", feed(PEOPLE_HEADER, rows))

    messages = [e.message for e in learn_sim.log_entries(uid, "Information")][1:-1]
    errors = learn_sim.log_entries(uid, "Error")

    assert messages[0] == "Line 2: the person record P00001 was saved."
    assert messages[-1].startswith("Record 4: the person record was not saved")
    assert len(errors) == learn_sim.dataset(uid).errors == 1


def test_levels_are_read_in_any_case():
    assert [parse_level(t) for t in ("error", "WARNING", "Information", "debug", "fatal")] == [
        "Error",
        "Warning",
        "Information",
        "Debug",
        None,
    ]


def test_a_data_set_of_200000_records_is_stored_compactly_and_served_page_by_page():
    with LearnSimulator(rows_per_second=10_000_000, start_delay=0) as sim:
        rows = person_rows(200_000)
        rows[199_990] = (*rows[199_990][:4], "", rows[199_990][5])
        uid = upload_and_finish(sim, "person", feed(PEOPLE_HEADER, rows))
        bearer = token(sim)

        assert sim.log_storage_bytes(uid) / 200_000 < 40  # bytes per record: codes, indices and facts
        tracemalloc.start()
        try:
            far = get_log(sim, uid, bearer, level="Information", offset=199_950, limit=100)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

        assert far.status_code == 200
        results = far.json()["results"]
        assert len(results) == 52 and "paging" not in far.json()
        assert results[41]["level"] == "Error" and "P199991" in results[41]["message"]  # entry k is record k-1
        assert results[-1]["message"].endswith("199999 records completed, 0 with warnings, 1 with errors.")
        assert peak < 2_000_000  # one page was built, not 2,000 of them
        assert get_log(sim, uid, bearer).json()["results"][0]["message"].startswith("Line 199992")
