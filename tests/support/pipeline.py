"""A pipeline against the Learn simulator, for pipeline and recovery tests: a fixture and small helpers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.claims import Found
from agent.journal import Journal
from agent.pipeline import Pipeline
from agent.retry import RetryPolicy
from agent.settings import Config
from agent.simulator import LearnSimulator
from agent.targets.learn import LearnTarget
from tests.support.agentconf import load
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    membership_rows,
    person_rows,
    write_flatfile,
)
from tests.support.recording import RecordingReporter


@pytest.fixture
def pipeline_env(tmp_path: Path, learn_sim: LearnSimulator) -> Iterator[tuple[Config, Journal, RecordingReporter]]:
    config = load(tmp_path, learn_sim.url)
    journal = Journal(config.agent.journal_path)
    try:
        yield config, journal, RecordingReporter()
    finally:
        journal.close()


def fast_pipeline(config: Config, journal: Journal, reporter: RecordingReporter, **kwargs: object) -> Pipeline:
    """A pipeline whose Learn target retries quickly, so failure paths finish in milliseconds."""
    target = LearnTarget(config.targets["learn"], retry=RetryPolicy(attempts=2, first_delay=0.01))
    return Pipeline(config, journal, reporter, targets={"learn": target}, **kwargs)  # type: ignore[arg-type]


def drop_standard_files(drop: Path) -> dict[str, Path]:
    return {
        "memberships": write_flatfile(drop / "enrol.txt", MEMBERSHIP_HEADER, membership_rows(6, courses=2)),
        "courses": write_flatfile(drop / "courses.txt", COURSE_HEADER, course_rows(2)),
        "people": write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(6)),
    }


def claim_all(pipeline: Pipeline, config: Config, paths: list[Path]) -> list[int]:
    """Take the files as one batch, as the daemon does."""
    taken = pipeline.take(config.route(), [Found(path) for path in paths])
    assert len(taken.file_ids) == len(paths)
    return taken.file_ids
