"""HTTP plumbing (`agent.targets.http`): a streamed body with a BOM in front, and messages without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from agent.simulator import LearnSimulator
from agent.targets.http import StreamedBody, new_session, start, without_credentials
from tests.support.net import free_port


def test_streamed_body_puts_the_prefix_first_and_counts_what_was_sent(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_bytes(b"x" * 100_000)
    with StreamedBody(path, prefix=b"\xef\xbb\xbf") as body:
        assert len(body) == 100_003
        first = body.read(10)
        rest = b"".join(body)
    assert first == b"\xef\xbb\xbf" + b"x" * 7
    assert len(first) + len(rest) == 100_003 and body.sent == 100_003


def test_messages_never_carry_credentials_and_stay_short() -> None:
    assert without_credentials("https://user:pw@learn.example.edu/x") == "https://learn.example.edu/x"
    assert without_credentials("https://learn.example.edu/x") == "https://learn.example.edu/x"
    assert start("a\n b   c") == "'a b c'"
    assert start("y" * 500).endswith("…'") and len(start("y" * 500)) < 210


def test_a_session_reads_the_proxy_environment_once_per_server(
    learn_sim: LearnSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    status_url = learn_sim.status_url("0" * 32)
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    session = new_session()
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(status_url, timeout=5)  # the proxy from the environment is honoured
    monkeypatch.delenv("http_proxy")
    with pytest.raises(requests.exceptions.ProxyError):
        session.get(status_url, timeout=5)  # ...and kept: the environment was read once
    fresh = new_session()
    assert fresh.get(status_url, timeout=5).status_code in (200, 401, 404)
    session.close()
    fresh.close()
