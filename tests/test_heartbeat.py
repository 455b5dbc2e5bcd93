"""Heartbeat pings against a real HTTP server on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from agent.heartbeat import ping, ping_url, safe_url
from tests.support.net import free_port, serving


@dataclass
class Monitor:
    """A fake monitoring service: records each GET path; answers `status` (200 unless changed)."""

    base: str
    paths: list[str] = field(default_factory=list)
    status: int = 200


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    state = Monitor(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.paths.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Handler) as base:
        state.base = base
        yield state


def test_success_ping_gets_the_url_as_is(monitor: Monitor) -> None:
    assert ping(f"{monitor.base}/ping/uuid-1234", failed=False) is True
    assert monitor.paths == ["/ping/uuid-1234"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/ping/abc", "/ping/abc/fail"),
        ("/ping/abc/", "/ping/abc/fail"),
        ("/ping/abc?key=t0k", "/ping/abc/fail?key=t0k"),
    ],
    ids=["plain", "trailing-slash", "query"],
)
def test_failure_ping_appends_fail_once(monitor: Monitor, path: str, expected: str) -> None:
    assert ping(monitor.base + path, failed=True) is True
    assert monitor.paths == [expected]


def test_ping_url_without_path() -> None:
    assert ping_url("https://hc.example.org", failed=True) == "https://hc.example.org/fail"


def test_http_error_returns_false_and_logs_without_the_query(
    monitor: Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    monitor.status = 500
    with caplog.at_level(logging.WARNING, logger="agent.heartbeat"):
        assert ping(f"{monitor.base}/ping/abc?token=s3cr3t-token", failed=False) is False
    assert "HTTP 500" in caplog.text and "/ping/abc" in caplog.text
    assert "s3cr3t-token" not in caplog.text


def test_unreachable_monitor_never_raises_and_hides_the_token(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://user:pa55word@127.0.0.1:{free_port()}/ping/abc?token=s3cr3t-token"
    with caplog.at_level(logging.WARNING, logger="agent.heartbeat"):
        assert ping(url, failed=True, timeout=5) is False
    assert "heartbeat ping" in caplog.text and "/ping/abc/fail" in caplog.text
    for secret in ("s3cr3t-token", "pa55word", "user:"):
        assert secret not in caplog.text


@pytest.mark.parametrize("url", ["", "not a url", "http://[::1"], ids=["empty", "words", "broken-ipv6"])
def test_invalid_urls_return_false(url: str) -> None:
    assert ping(url, failed=False, timeout=1) is False


def test_safe_url_drops_credentials_query_and_fragment() -> None:
    assert safe_url("https://u:p@hc.example.org:8443/ping/x?k=v#frag") == "https://hc.example.org:8443/ping/x"
