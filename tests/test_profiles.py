"""One profile per target type: what the pipeline, the CLI and the reports ask instead of branching."""

from __future__ import annotations

from pathlib import Path

from agent.profiles import JOB, LEARN, S3, make_target, profile_for
from agent.settings import RouteSettings
from agent.targets.learn import LearnTarget
from tests.support.learn import learn_settings


def test_learn_inspects_flat_files_and_holds_dependents(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("external_person_key|firstname|lastname|user_id\nP1|Ada|L|ada\n", encoding="utf-8")
    result = LEARN.inspect(users)
    assert (result.object, result.problems) == ("person", [])
    assert LEARN.holds_dependents and LEARN.sent_object(result) == "person"
    route = RouteSettings(name="weekly", watch=tmp_path, target="learn", operation="refresh")
    assert LEARN.operation(route) == "refresh"
    assert LEARN.subject_part(None, "store") == "unknown/store"
    assert LEARN.look_up("abc").startswith("reference abc in Learn: System Admin")


def test_s3_and_job_take_plain_csv_uploads_in_arrival_order(tmp_path: Path) -> None:
    name = tmp_path / "test_users.csv"
    name.write_text("email,name\na@x.edu,A\n", encoding="utf-8")
    result = S3.inspect(name)
    assert result.object == "csv" and not result.problems
    assert any("Handshake never processes" in note for note in result.notes)  # the vendor's naming rule
    assert not JOB.inspect(name).notes  # AlumnIQ has no such rule
    route = RouteSettings(name="hs", watch=tmp_path, target="hs", operation="refresh")
    assert S3.operation(route) == "upload" and not S3.holds_dependents and S3.sent_object(result) is None
    assert S3.subject_part("csv", "upload") == "s3/upload" and JOB.subject_part(None, None) == "job/upload"
    assert (S3.receipt_label, JOB.receipt_label) == ("S3 key", "Job id")


def test_profiles_make_their_targets(learn_sim) -> None:  # type: ignore[no-untyped-def]
    assert profile_for("learn") is LEARN and profile_for("s3") is S3 and profile_for("job") is JOB
    target = make_target(learn_settings(learn_sim))
    try:
        assert isinstance(target, LearnTarget)
    finally:
        target.close()
