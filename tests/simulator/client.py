"""A plain `requests` client of the simulator for its tests (never the agent's LearnTarget, so a bug
shared by the two cannot hide itself)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import requests

from agent.simulator import LearnSimulator
from tests.support.waiting import wait_for

SENTENCE = re.compile(
    r"^Success: Feed File Uploaded\.  Use the reference code ([0-9a-f]{32}) "
    r"to track these records in the logs\.$"
)
ISO_MS_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
COUNTS = ("completedCount", "queuedCount", "errorCount", "warningCount")


def feed(header: tuple[str, ...] | list[str], rows: list[tuple[str, ...]], delimiter: str = "|") -> bytes:
    return ("\n".join(delimiter.join(r) for r in [tuple(header), *rows]) + "\n").encode("utf-8")


def post(
    sim: LearnSimulator,
    slug: str,
    body: bytes | Iterator[bytes],
    *,
    operation: str = "store",
    timeout: float | tuple[float, float] = 30,
) -> requests.Response:
    return requests.post(
        sim.upload_url(slug, operation),
        data=body,
        auth=(sim.username, sim.password),
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=timeout,
    )


def uid_of(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    match = SENTENCE.match(response.text)
    assert match, response.text
    return match.group(1)


def upload_and_finish(sim: LearnSimulator, slug: str, body: bytes, operation: str = "store") -> str:
    uid = uid_of(post(sim, slug, body, operation=operation))
    assert sim.wait_idle(20)
    return uid


def status_response(sim: LearnSimulator, uid: str, method: str = "GET") -> requests.Response:
    return requests.request(method, sim.status_url(uid), auth=(sim.username, sim.password), timeout=30)


def status_xml(sim: LearnSimulator, uid: str, method: str = "GET") -> ET.Element:
    response = status_response(sim, uid, method)
    assert response.status_code == 200, response.text
    return ET.fromstring(response.text)


def counts(sim: LearnSimulator, uid: str) -> dict[str, int]:
    return {c.tag: int(c.text or "0") for c in status_xml(sim, uid) if c.tag in COUNTS}


def queued_reading(sim: LearnSimulator, uid: str) -> dict[str, int]:
    """The first status reading after Learn's "nothing queued yet" phase."""
    return wait_for(lambda: (lambda c: c if any(c.values()) else None)(counts(sim, uid)), "the data set to be queued")


def token(sim: LearnSimulator) -> str:
    response = requests.post(
        sim.token_url, data={"grant_type": "client_credentials"}, auth=(sim.rest_key, sim.rest_secret), timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def get_log(sim: LearnSimulator, uid: str, bearer: str, **params: Any) -> requests.Response:
    return requests.get(sim.log_url(uid), params=params, headers={"Authorization": f"Bearer {bearer}"}, timeout=30)
