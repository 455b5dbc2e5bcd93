"""LearnSimulator as a component: start, stop, TLS, and the helpers tests and the console use."""

from __future__ import annotations

import pytest
import requests

from agent.simulator import LearnSimulator
from tests.simulator.client import feed, post, uid_of
from tests.support.learn import PEOPLE_HEADER, person_rows


def test_stop_ends_keep_alive_connections():
    sim = LearnSimulator().start()
    with requests.Session() as session:
        session.auth = (sim.username, sim.password)
        assert session.get(sim.status_url("0" * 32), timeout=30).status_code == 404
        sim.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(sim.status_url("0" * 32), timeout=30)


def test_tls_simulator_serves_https(learn_tls_sim):
    response = requests.get(learn_tls_sim.status_url("0" * 32), verify=learn_tls_sim.ca_bundle, timeout=30)
    assert learn_tls_sim.url.startswith("https://localhost:")
    assert response.status_code == 401


def test_addresses_follow_the_integration_and_host(learn_sim):
    base = f"http://127.0.0.1:{learn_sim.port}"
    assert learn_sim.url == base
    assert learn_sim.upload_url("person", "refresh") == (
        f"{base}/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/person/refresh"
    )
    assert (
        learn_sim.status_url("ab") == f"{base}/webapps/bb-data-integration-flatfile-BBLEARN/endpoint/dataSetStatus/ab"
    )
    assert learn_sim.token_url == f"{base}/learn/api/public/v1/oauth2/token"
    assert learn_sim.log_url("ab") == f"{base}/learn/api/public/v1/logs/sis/dataSets/ab"


def test_events_narrate_each_upload_and_its_first_problems(learn_sim):
    events: list[str] = []
    learn_sim.on_event = events.append
    rows = person_rows(2)
    rows[1] = (*rows[1][:2], "", *rows[1][3:])

    uid = uid_of(post(learn_sim, "person", feed(PEOPLE_HEADER, rows)))

    assert events[0].startswith("upload person/store: ") and events[0].endswith(f"-> reference code {uid}")
    assert "1 with errors" in events[0]
    assert events[1].startswith("  Error: Line 3: the person record P00002 was not saved")


def test_unknown_reference_codes_raise_key_error(learn_sim):
    with pytest.raises(KeyError):
        learn_sim.dataset("0" * 32)
    with pytest.raises(KeyError):
        learn_sim.log_entries("0" * 32)


@pytest.mark.parametrize("settings", [{"rows_per_second": 0}, {"start_delay": -1}, {"token_seconds": 0}])
def test_impossible_settings_are_refused(settings):
    with pytest.raises(ValueError):
        LearnSimulator(**settings)
