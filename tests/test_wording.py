"""The words of the reports: formatted numbers, subjects, next steps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.profiles import LEARN_LOGS
from agent.records import Receipt, Status
from agent.render import Renderer
from agent.wording import (
    file_subject,
    format_duration,
    format_size,
    format_time,
    format_time_left,
    next_step,
    status_meaning,
)
from tests.support.outcomes import DROP, START, batch, outcome

# -- formatting ---------------------------------------------------------------------------------------


def test_formatting_of_sizes_durations_and_times() -> None:
    assert [format_size(n) for n in (0, 1023, 1536, 5 * 1024 * 1024 + 1)] == [
        "0 B",
        "1023 B",
        "1.5 KB",
        "5.0 MB",
    ]
    assert [format_duration(s) for s in (4.4, 125, 3730, None)] == [
        "4 s",
        "2 min 05 s",
        "1 h 02 min 10 s",
        "—",
    ]
    assert format_time(START) == "2026-11-22 07:00:05 UTC"
    assert format_time(START.astimezone(timezone(timedelta(hours=2)))) == "2026-11-22 07:00:05 UTC"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05 UTC"


# -- subjects ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status), ids=[s.name for s in Status])
def test_per_file_subject_for_every_status(status: Status) -> None:
    rendered = Renderer().file_report(outcome(status))
    assert rendered.subject == f"[feed-agent] {status.value} courses.txt — course/store"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"target": "bucket", "target_type": "s3", "object": None}, "s3/upload"),
        ({"target": "archive", "target_type": "s3", "object": "course"}, "s3/upload"),
        ({"target": "jobs", "target_type": "job", "operation": None}, "job/upload"),
        ({"object": None}, "unknown/store"),
        ({"object": "membership", "operation": "refresh"}, "membership/refresh"),
    ],
    ids=["s3", "s3-with-object", "job", "learn-undetected", "learn-refresh"],
)
def test_subject_object_part_for_other_targets(changes: dict[str, object], expected: str) -> None:
    changed = outcome(Status.SUCCESS)
    for key, value in changes.items():
        setattr(changed, key, value)
    assert Renderer().file_report(changed).subject.endswith(f" — {expected}")


def test_summary_subject_counts_statuses_in_fixed_order() -> None:
    files = [
        outcome(Status.ERRORS, "c.txt"),
        outcome(Status.SUCCESS, "a.txt"),
        outcome(Status.SUCCESS, "b.txt"),
    ]
    assert Renderer().summary(batch(*files)).subject == "[feed-agent] Summary: 3 files — 2 SUCCESS, 1 ERRORS"
    every = [outcome(s, f"{s.name}.txt") for s in reversed(Status)]
    assert Renderer().summary(batch(*every)).subject == (
        "[feed-agent] Summary: 9 files — 1 SUCCESS, 1 QUEUED, 1 WARNINGS, 1 ERRORS, 1 FAILED, 1 REJECTED, 1 HELD, "
        "1 TIMED OUT, 1 UNCONFIRMED"
    )


def test_alert_subjects() -> None:
    renderer = Renderer()
    running = outcome(Status.SUCCESS, "users.txt", object="person", finished_at=None)
    assert renderer.still_processing(running, 42).subject == "[feed-agent] STILL PROCESSING users.txt — person/store"
    assert renderer.missing("sis", DROP, 26, None).subject == "[feed-agent] MISSING: no file on route sis for 26 hours"


# -- next steps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.SUCCESS, ["Nothing to do."]),
        (Status.WARNINGS, ["3 record(s) have warnings", f"look up reference REF-8f3c2a61 in {LEARN_LOGS}"]),
        (
            Status.ERRORS,
            ["10 record(s) were not processed", f"look up reference REF-8f3c2a61 in {LEARN_LOGS}"],
        ),
        (
            Status.FAILED,
            [
                "What is wrong: Learn rejected the upload: HTTP 400 bad header.",
                f"check reference REF-8f3c2a61 in {LEARN_LOGS} before anything else",
                "if it was processed there, do not send it again",
                f"move the file back into {DROP}.",
            ],
        ),
        (
            Status.REJECTED,
            [
                "What is wrong: the header matches no known feed type.",
                f"Fix it, then move the file back into {DROP}.",
            ],
        ),
        (
            Status.HELD,
            [
                "the refresh file shrank by 40%",
                f"move the file back into {DROP}",
                "post /srv/sis/var/failed/stamped_courses.txt --route sis --operation store --force",
            ],
        ),
        (
            Status.TIMED_OUT,
            [
                "The upload was accepted with reference REF-8f3c2a61",
                f"Check reference REF-8f3c2a61 in {LEARN_LOGS} before re-sending",
                f"move the file back into {DROP}",
            ],
        ),
        (
            Status.UNCONFIRMED,
            [
                "Do not move it back yet: Learn may already have it.",
                f"Look in {LEARN_LOGS} for a data set received at about 2026-11-22 07:02:10 UTC.",
                f"If there is none, move the file back into {DROP} to send it again.",
            ],
        ),
    ],
    ids=[s.name for s in Status if s is not Status.QUEUED],  # QUEUED is a job target's: tested below
)
def test_next_step_per_status(status: Status, expected: list[str]) -> None:
    step = next_step(outcome(status))
    for words in expected:
        assert words in step


def test_next_step_for_a_file_held_behind_a_failed_dependency() -> None:
    step = next_step(outcome(Status.HELD, "enrolments.txt", held_by="courses.txt", message=""))
    assert "depends on courses.txt, which did not reach Learn" in step
    assert f"Fix courses.txt first, then move both files back into {DROP}." in step


def test_next_step_names_the_job_id_for_job_targets() -> None:
    job = outcome(Status.ERRORS, target="jobs", target_type="job", receipt=Receipt("jobs", "job", "job-77"))
    assert "job id job-77 in the job service's log" in next_step(job)


# -- rendering ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (
            {"completion": "webhook", "notify_within_hours": "3"},
            ["feed-agent sends a SUCCESS or FAILED report", "within 3 hours, a NOT NOTIFIED alert"],
        ),
        (
            {"completion": "email", "notify_email": "ops@example.edu"},
            ["AlumnIQ emails ops@example.edu when the job ends", "add a [webhook] section"],
        ),
        ({"completion": "none"}, ["Nobody will be told when the job ends", "add a [webhook] section"]),
    ],
)
def test_a_queued_job_says_who_hears_its_end(details: dict[str, str], expected: list[str]) -> None:
    queued = outcome(
        Status.QUEUED,
        "warehouse.csv",
        target="alumniq",
        target_type="job",
        object=None,
        operation="upload",
        receipt=Receipt(target="alumniq", kind="job", reference="J-42", details=details),
    )
    step = next_step(queued)
    for words in expected:
        assert words in step
    assert "queued job J-42" in status_meaning(queued) and "not known yet" in status_meaning(queued)
    assert file_subject(queued) == "[feed-agent] QUEUED warehouse.csv — job/upload"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, ""),
        (20, "under a minute left"),
        (12 * 60 + 10, "about 12 min left"),
        (3 * 3600 + 5 * 60, "about 3 h 05 min left"),
    ],
)
def test_time_left_is_an_estimate_in_round_figures(seconds, words) -> None:
    assert format_time_left(seconds) == words
