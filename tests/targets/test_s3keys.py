"""S3 object names (`agent.targets.s3keys`): key templates in UTC, the prefix, Handshake's naming rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.records import Submission
from agent.targets.s3keys import handshake_name_warning, normalized_prefix, render_template


def make_submission(path: Path, name: str | None = None) -> Submission:
    return Submission(path=path, name=name or path.name, object=None, operation="upload", rows=0)


def test_render_template_fills_every_field_in_utc() -> None:
    evening_in_chicago = datetime(2024, 1, 1, 23, 30, tzinfo=timezone(timedelta(hours=-6)))
    sub = Submission(path=Path("x"), name="users.csv", object="person", operation="upload", rows=1)
    rendered = render_template("{date:%Y-%m-%d}/{stem}-{object}{suffix}|{name}|{date}", sub, evening_in_chicago)
    assert rendered == "2024-01-02/users-person.csv|users.csv|20240102"


def test_render_template_treats_a_naive_time_as_utc() -> None:
    sub = make_submission(Path("x"), name="users.csv")
    assert render_template("{date:%H%M}_{name}", sub, datetime(2024, 5, 6, 7, 8)) == "0708_users.csv"


@pytest.mark.parametrize("template", ["{nope}_{name}", "{}_{name}", "{name.upper}", "{date:%Y"])
def test_render_template_rejects_unknown_or_broken_fields_in_plain_words(template: str) -> None:
    sub = make_submission(Path("x"), name="users.csv")
    with pytest.raises(ValueError) as caught:
        render_template(template, sub, datetime(2024, 1, 2, tzinfo=timezone.utc))
    assert template in str(caught.value)


def test_prefix_gets_exactly_one_trailing_slash() -> None:
    assert normalized_prefix("/importer-production-uni") == "importer-production-uni/"
    assert normalized_prefix("production/warehouse/") == "production/warehouse/"
    assert normalized_prefix("") == ""


@pytest.mark.parametrize("name", ["TEST_users.csv", "20240102_users_sample.csv", "Contest.csv"])
def test_handshake_warns_about_names_it_never_processes(name: str) -> None:
    warning = handshake_name_warning(name)
    assert warning is not None and name in warning and "never processes" in warning


def test_handshake_has_no_warning_for_a_normal_name() -> None:
    assert handshake_name_warning("20240102_users.csv") is None
