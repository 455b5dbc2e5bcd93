"""The refresh guard: a refresh with no rows, or far fewer than the last accepted one, is held."""

from __future__ import annotations

from pathlib import Path

from agent.guard import refresh_guard
from agent.journal import Journal
from agent.records import FileOutcome, Receipt, Result, Status
from tests.support.learn import learn_settings

FAILED = Path("/srv/var/failed")


class _Endpoint:
    url, integration, username, password = "https://learn.example.edu", "BBLEARN", "u", "p"


SETTINGS = learn_settings(_Endpoint(), refresh_guard_percent=10.0)


def outcome(rows: int, operation: str = "refresh", object: str = "person") -> FileOutcome:
    return FileOutcome(
        name="users.txt",
        route="weekly",
        target="learn",
        target_type="learn",
        status=Status.SUCCESS,
        rows=rows,
        object=object,
        operation=operation,
    )


def accepted_refresh(journal: Journal, rows: int, object: str = "person") -> None:
    file_id = journal.add_file(route="weekly", target="learn", name="users.txt", source_path=Path("/d/users.txt"))
    journal.inspected(file_id, rows=rows, size=1, object=object, operation="refresh", sha256=None)
    journal.submitted(file_id, Receipt("learn", "learn", "ref"))
    journal.finished(file_id, Result(Status.SUCCESS))


def test_store_files_are_never_guarded(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        assert refresh_guard(journal, SETTINGS, outcome(0, operation="store"), FAILED) is None


def test_an_empty_refresh_is_held_even_without_history(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        reason = refresh_guard(journal, SETTINGS, outcome(0), FAILED)
    assert reason is not None and "no rows" in reason and "--force" in reason


def test_a_shrunken_refresh_is_held_against_the_last_accepted_one(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite3") as journal:
        assert refresh_guard(journal, SETTINGS, outcome(10), FAILED) is None  # first ever: nothing to compare
        accepted_refresh(journal, 1000)
        accepted_refresh(journal, 50, object="course")  # another object is another data set
        assert refresh_guard(journal, SETTINGS, outcome(900), FAILED) is None  # exactly at the limit
        reason = refresh_guard(journal, SETTINGS, outcome(899), FAILED)
    assert reason is not None and "899 rows, 10% fewer than the 1,000 rows" in reason
