"""Learn with a REST application, for record-log tests: config with REST keys, a sim, memberships delivered.

- `configure(tmp_path, sim, rest=True)`: a real INI + .env whose [target:learn] has rest_key/rest_secret.
- `rest_sim`: a simulator with a recognisable REST secret (`REST_SECRET`), so tests can look for leaks.
- `deliver_memberships(tmp_path, sim, config, total, unknown)`: people and a course stored, then
  `total` memberships through the real pipeline, the first `unknown` naming people Learn lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import load_config
from agent.journal import Journal
from agent.pipeline import Pipeline
from agent.records import FileOutcome
from agent.retry import RetryPolicy
from agent.settings import Config
from agent.simulator import LearnSimulator
from agent.targets.learn import LearnTarget
from tests.simulator.client import feed, upload_and_finish
from tests.support.agentconf import write_config
from tests.support.learn import (
    COURSE_HEADER,
    MEMBERSHIP_HEADER,
    PEOPLE_HEADER,
    course_rows,
    person_rows,
    write_flatfile,
)
from tests.support.pipeline import claim_all
from tests.support.recording import RecordingReporter

REST_SECRET = "rest-secret-Zq81xx"


def configure(tmp_path: Path, sim: LearnSimulator, *, rest: bool = True, extra: str = "") -> Config:
    target_extra = "rest_key = ${REST_KEY}\nrest_secret = ${REST_SECRET}\nlog_wait_minutes = 0.5\n" if rest else ""
    ini = write_config(tmp_path, sim.url, target_extra=target_extra + extra)
    with (tmp_path / ".env").open("a", encoding="utf-8") as env:
        env.write(f"REST_KEY={sim.rest_key}\nREST_SECRET={sim.rest_secret}\n")
    return load_config(ini, environ={})


@pytest.fixture
def rest_sim() -> Iterator[LearnSimulator]:
    simulator = LearnSimulator(rows_per_second=5000.0, rest_secret=REST_SECRET).start()
    yield simulator
    simulator.stop()


def deliver_memberships(tmp_path: Path, sim: LearnSimulator, config: Config, total: int, unknown: int) -> FileOutcome:
    """People and a course stored first; then `total` memberships, the first `unknown` naming nobody."""
    upload_and_finish(sim, "person", feed(PEOPLE_HEADER, person_rows(total)))
    upload_and_finish(sim, "course", feed(COURSE_HEADER, course_rows(1)))
    rows = [("C001", f"GHOST{i:05d}" if i <= unknown else f"P{i:05d}", "SIS", "Student") for i in range(1, total + 1)]
    path = write_flatfile(tmp_path / "drop" / "enrol.txt", MEMBERSHIP_HEADER, rows)
    journal = Journal(config.agent.journal_path)
    reporter = RecordingReporter()
    target = LearnTarget(config.targets["learn"], retry=RetryPolicy(attempts=2, first_delay=0.01))
    pipeline = Pipeline(config, journal, reporter, targets={"learn": target})  # type: ignore[arg-type]
    try:
        batch = pipeline.process(config.route(), claim_all(pipeline, config, [path]))
    finally:
        journal.close()
    (outcome,) = batch.files
    return outcome
