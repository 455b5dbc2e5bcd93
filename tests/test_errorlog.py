"""`feed-agent errors FILE|REFERENCE [--csv]`: the saved log, or the log fetched when it is absent."""

from __future__ import annotations

import csv
import io

from tests.support.cli import run
from tests.support.recordlog import configure, deliver_memberships


def test_errors_prints_the_saved_log_by_name_and_by_reference(tmp_path, rest_sim, capsys):
    config = configure(tmp_path, rest_sim)
    outcome = deliver_memberships(tmp_path, rest_sim, config, total=25, unknown=12)
    assert outcome.receipt is not None
    rest_sim.faults.rest_forbidden = True  # proves the saved file is read, not Learn

    status, out, _err = run(capsys, "-c", config.path, "errors", "enrol.txt")

    assert status == 0
    assert "12 errors" in out
    assert all(f"GHOST{i:05d}" in out for i in range(1, 13))
    status, out, _err = run(capsys, "-c", config.path, "errors", outcome.receipt.reference, "--csv")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 12 and rows[0]["level"] == "Error"


def test_errors_fetches_and_saves_the_log_when_it_is_absent(tmp_path, rest_sim, capsys):
    config = configure(tmp_path, rest_sim)
    outcome = deliver_memberships(tmp_path, rest_sim, config, total=25, unknown=12)
    assert outcome.record_log is not None and outcome.record_log.csv_path is not None
    outcome.record_log.csv_path.unlink()

    status, out, _err = run(capsys, "-c", config.path, "errors", "enrol.txt")

    assert status == 0
    assert "GHOST00012" in out
    assert outcome.record_log.csv_path.is_file()


def test_errors_explains_an_unknown_file_and_a_missing_entitlement(tmp_path, rest_sim, capsys):
    config = configure(tmp_path, rest_sim)
    deliver_memberships(tmp_path, rest_sim, config, total=5, unknown=2)
    status, _out, err = run(capsys, "-c", config.path, "errors", "nope.txt")
    assert status == 1 and "no delivered file" in err

    next(config.agent.archive_dir.glob("*.log.csv")).unlink()
    rest_sim.faults.rest_forbidden = True
    status, _out, err = run(capsys, "-c", config.path, "errors", "enrol.txt")
    assert status == 1 and "system.dataintegrations.log.VIEW" in err
