"""The streaming digest: shapes, groups (largest first, bounded), the first entries, the CSV."""

from __future__ import annotations

import pytest

from agent.errors import TargetError
from agent.logdigest import FIRST_ENTRIES, MAX_GROUPS, OTHER_SHAPE, LogDigest, collect, digest_file, line_of, shape
from agent.records import LogEntry


def entry(message: str, level: str = "Error") -> LogEntry:
    return LogEntry(level=level, message=message, line=line_of(message))


def test_shape_replaces_keys_numbers_and_quoted_values():
    first = shape(
        "Line 7: the membership record (external_course_key C001, external_person_key jsmith) was not saved: "
        "external_person_key 'jsmith' names a person that does not exist."
    )
    second = shape(
        "Line 912: the membership record (external_course_key C017, external_person_key akhan) was not saved: "
        "external_person_key 'akhan' names a person that does not exist."
    )
    assert first == second
    assert "jsmith" not in first and "<n>" in first
    assert shape("user 4 has email bob@example.edu") == "user <n> has email <email>"


def test_line_of():
    assert line_of("Line 12: bad") == 12
    assert line_of("Record 3: bad") is None


def test_groups_largest_first_with_bounded_examples_and_first_entries():
    digest = LogDigest("ref")
    for i in range(120):
        digest.add(entry(f"Line {i + 2}: person P{i:05d} lacks user_id"))
    for i in range(5):
        digest.add(entry(f"Line {i + 200}: course C{i} has a bad row_status 'maybe'", "Warning"))

    result = digest.result(None)

    assert [g.count for g in result.groups] == [120, 5]
    assert result.groups[0].examples == (
        "Line 2: person P00000 lacks user_id",
        "Line 3: person P00001 lacks user_id",
        "Line 4: person P00002 lacks user_id",
    )
    assert len(result.first) == FIRST_ENTRIES and result.first[0].line == 2
    assert dict(result.counts) == {"Error": 120, "Warning": 5}


def test_many_shapes_are_bounded_under_one_other_group():
    digest = LogDigest("ref")
    for i in range(MAX_GROUPS + 50):
        digest.add(entry("word " + "x" * i))

    groups = digest.groups()

    assert len(groups) == MAX_GROUPS + 1
    assert any(g.shape == OTHER_SHAPE and g.count == 50 for g in groups)


def test_collect_saves_every_entry_and_keeps_a_partial_log_apart(tmp_path):
    path = tmp_path / "a.log.csv"
    record = collect("ref", (entry(f'Line {i}: x, "quoted"') for i in range(3)), path)
    assert record.complete and record.csv_path == path
    again = digest_file("ref", path)
    assert [e.message for e in again.first] == [e.message for e in record.first]

    def failing():
        yield entry("Line 1: one")
        raise TargetError("Learn kept the log locked")

    partial = collect("ref", failing(), tmp_path / "b.log.csv")
    assert not partial.complete and partial.problem == "Learn kept the log locked"
    assert partial.csv_path == tmp_path / "b.log.csv.part" and not (tmp_path / "b.log.csv").exists()
    nothing = collect("ref", iter(_raise()), tmp_path / "c.log.csv")
    assert nothing.csv_path is None and not list(tmp_path.glob("c.*"))


def _raise():
    raise TargetError("403")
    yield  # pragma: no cover


def test_a_non_agent_error_is_not_swallowed(tmp_path):
    def broken():
        raise RuntimeError("bug")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError):
        collect("ref", broken(), tmp_path / "d.log.csv")
