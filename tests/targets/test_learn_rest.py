"""The REST log client through real HTTP against the Learn simulator: token, paging, 401/403/423/429."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from agent.clock import SYSTEM_CLOCK
from agent.errors import TargetError
from agent.retry import RetryPolicy
from agent.settings import Secret
from agent.simulator import LearnSimulator
from agent.targets.learn_rest import ENTITLEMENT, LearnLogClient
from tests.simulator.client import feed, upload_and_finish
from tests.support.clock import FakeClock
from tests.support.learn import MEMBERSHIP_HEADER, PEOPLE_HEADER, learn_settings, membership_rows, person_rows

QUICK = RetryPolicy(attempts=4, first_delay=0.01, cap=0.05)


def rest_settings(sim: LearnSimulator, **overrides: object):
    settings = learn_settings(sim, rest_key=Secret(sim.rest_key), rest_secret=Secret(sim.rest_secret))
    return dataclasses.replace(settings, **overrides)


def client_for(sim: LearnSimulator, clock=SYSTEM_CLOCK, **overrides: object) -> LearnLogClient:
    return LearnLogClient(rest_settings(sim, **overrides), clock=clock, retry=QUICK, locked=QUICK)


def memberships_with_unknown_people(sim: LearnSimulator, total: int, unknown: int) -> str:
    """`total` memberships of which the first `unknown` name people Learn does not have."""
    upload_and_finish(sim, "person", feed(PEOPLE_HEADER, person_rows(total)))
    upload_and_finish(
        sim,
        "course",
        feed(
            ("external_course_key", "data_source_key", "course_id", "course_name"), [("C001", "SIS", "C-1", "Course 1")]
        ),
    )
    rows = membership_rows(total)
    rows = [
        (course, f"GHOST{i:04d}" if i <= unknown else person, source, role)
        for i, (course, person, source, role) in enumerate(rows, start=1)
    ]
    return upload_and_finish(sim, "membership", feed(MEMBERSHIP_HEADER, rows))


def test_reads_every_entry_across_several_pages(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 260, 250)
    client = client_for(learn_sim, log_level="error")

    entries = list(client.entries(uid))

    assert len(entries) == 250
    assert len({e.id for e in entries}) == 250
    assert all(e.level == "Error" for e in entries)
    assert "GHOST0001" in entries[0].message and "GHOST0250" in entries[-1].message
    assert entries[0].line == 2
    assert client.tokens_issued == 1


def test_warning_level_brings_errors_and_warnings(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 25, 12)

    entries = list(client_for(learn_sim).entries(uid))

    assert len(entries) == 12
    assert {e.level for e in entries} == {"Error"}


def test_a_token_that_expires_mid_paging_is_renewed_once(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 260, 250)
    client = client_for(learn_sim)
    seen = []

    for entry in client.entries(uid):
        seen.append(entry)
        if len(seen) == 150:
            learn_sim.expire_tokens()

    assert len(seen) == 250
    assert client.tokens_issued == 2


def test_a_token_near_its_expiry_is_not_reused(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 25, 12)
    clock = FakeClock()
    client = client_for(learn_sim, clock=clock)
    list(client.entries(uid))
    list(client.entries(uid))
    assert client.tokens_issued == 1

    clock.advance(3599 - 30)
    list(client.entries(uid))

    assert client.tokens_issued == 2


def test_a_locked_log_is_waited_out(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 25, 12)
    learn_sim.faults.log_locked_seconds = 3600.0
    locked = client_for(learn_sim, log_wait_minutes=0.002)
    with pytest.raises(TargetError) as refused:
        list(locked.entries(uid))
    assert refused.value.http_status == 423
    assert "log_wait_minutes" in refused.value.message

    learn_sim.faults.log_locked_seconds = 0.4
    uid = upload_and_finish(learn_sim, "membership", feed(MEMBERSHIP_HEADER, [("C001", "NOBODY", "SIS", "Student")]))
    entries = list(client_for(learn_sim, log_wait_minutes=1.0).entries(uid))

    assert [e.level for e in entries] == ["Error"]
    assert "NOBODY" in entries[0].message


def test_forbidden_names_the_entitlement_and_the_screen(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 25, 12)
    learn_sim.faults.rest_forbidden = True

    with pytest.raises(TargetError) as refused:
        list(client_for(learn_sim).entries(uid))

    assert refused.value.http_status == 403
    assert ENTITLEMENT in refused.value.message
    assert "REST API Integrations" in refused.value.message


def test_throttled_calls_honour_retry_after(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 25, 12)
    learn_sim.faults.rest_throttle = 2
    learn_sim.faults.retry_after = 7
    clock = FakeClock()
    client = LearnLogClient(rest_settings(learn_sim), clock=clock, retry=RetryPolicy(attempts=4, first_delay=1.0))

    entries = list(client.entries(uid))

    assert len(entries) == 12
    assert clock.sleeps == [7.0, 7.0]


def test_a_wrong_secret_is_explained_and_never_shown(learn_sim, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(learn_sim, rest_secret=Secret("WRONG-s3cr3t-value"))

    with pytest.raises(TargetError) as refused:
        list(client.entries("a" * 32))

    assert refused.value.http_status == 401
    assert "rest_key and rest_secret" in refused.value.message
    assert "WRONG-s3cr3t-value" not in refused.value.message + caplog.text


def test_probe_tells_401_403_and_ready_apart(learn_sim):
    assert client_for(learn_sim).probe()[0] is True
    ok, why = client_for(learn_sim, rest_secret=Secret("nope")).probe()
    assert not ok and "HTTP 401" in why
    learn_sim.faults.rest_forbidden = True
    ok, why = client_for(learn_sim).probe()
    assert not ok and ENTITLEMENT in why


def test_check_of_a_learn_target_tells_wrong_keys_missing_entitlement_and_ready_apart(learn_sim):
    from agent.targets.learn import LearnTarget

    def check(**overrides: object) -> list:
        target = LearnTarget(rest_settings(learn_sim, **overrides))
        try:
            return target.check()
        finally:
            target.close()

    ready = check()
    assert [r.ok for r in ready] == [True, True]
    assert "REST log" in ready[1].item and "ready" in ready[1].detail
    wrong = check(rest_secret=Secret("not-it"))[1]
    assert not wrong.ok and "rest_key and rest_secret" in wrong.detail and "not-it" not in wrong.detail
    learn_sim.faults.rest_forbidden = True
    forbidden = check()[1]
    assert not forbidden.ok and ENTITLEMENT in forbidden.detail
    without_keys = LearnTarget(learn_settings(learn_sim))
    assert len(without_keys.check()) == 1
    without_keys.close()


def test_a_timed_out_data_set_takes_what_the_log_holds_without_waiting(learn_sim):
    uid = memberships_with_unknown_people(learn_sim, 25, 12)
    learn_sim.faults.log_locked_seconds = 3600.0
    clock = FakeClock()

    with pytest.raises(TargetError) as refused:
        list(client_for(learn_sim, clock=clock, log_wait_minutes=10.0).entries(uid, patient=False))

    assert refused.value.http_status == 423 and "still processing" in refused.value.message
    assert clock.sleeps == []
