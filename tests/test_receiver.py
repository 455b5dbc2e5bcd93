"""The webhook receiver over real sockets: only POST /jobs/{token} within 64 KB reaches `settle`.

Every refusal is a bare status with an empty body; a caller that stalls mid-request holds only its
own thread.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from agent.callbacks import MAX_BODY_BYTES, new_token
from agent.receiver import Receiver


class Settler:
    """Settles each known token once, like the journal does; records every call."""

    def __init__(self, *known: str) -> None:
        self.open = set(known)
        self.calls: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, token: str, raw: bytes) -> bool:
        with self.lock:
            self.calls.append((token, raw))
            if token in self.open:
                self.open.discard(token)
                return True
            return False


@pytest.fixture
def token() -> str:
    return new_token()


@pytest.fixture
def settler(token: str) -> Settler:
    return Settler(token)


@pytest.fixture
def receiver(settler: Settler) -> Iterator[Receiver]:
    with Receiver(("127.0.0.1", 0), settler) as running:
        yield running


def test_a_post_to_an_open_job_settles_it_once(receiver: Receiver, settler: Settler, token: str) -> None:
    first = requests.post(f"{receiver.url}/jobs/{token}", json={"success": True}, timeout=10)
    replay = requests.post(f"{receiver.url}/jobs/{token}", json={"success": True}, timeout=10)
    assert (first.status_code, first.content) == (204, b"")
    assert (replay.status_code, replay.content) == (404, b"")
    assert settler.calls == [(token, b'{"success": true}')] * 2


def test_unknown_tokens_and_other_paths_get_the_same_bare_404(receiver: Receiver, settler: Settler) -> None:
    for path in (f"/jobs/{new_token()}", "/jobs/", "/", "/admin"):
        answer = requests.post(receiver.url + path, data=b"{}", timeout=10)
        assert (answer.status_code, answer.content) == (404, b""), path
    assert [token for token, _ in settler.calls] == [settler.calls[0][0]]  # only the well-formed token asked


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_refused_without_detail(
    receiver: Receiver, settler: Settler, token: str, method: str
) -> None:
    answer = requests.request(method, f"{receiver.url}/jobs/{token}", data=b"{}", timeout=10)
    assert answer.status_code == 405 and answer.content == b""
    assert settler.calls == [] and token in settler.open


def test_a_body_over_64_kb_is_refused_unread(receiver: Receiver, settler: Settler, token: str) -> None:
    big = requests.post(f"{receiver.url}/jobs/{token}", data=b"x" * (MAX_BODY_BYTES + 1), timeout=10)
    assert (big.status_code, big.content) == (413, b"")
    assert settler.calls == [] and token in settler.open
    exact = requests.post(f"{receiver.url}/jobs/{token}", data=b" " * MAX_BODY_BYTES, timeout=10)
    assert exact.status_code == 204


def test_a_body_without_a_length_is_refused(receiver: Receiver, settler: Settler, token: str) -> None:
    chunked = requests.post(f"{receiver.url}/jobs/{token}", data=iter([b"{}"]), timeout=10)
    assert chunked.status_code == 411 and settler.calls == []


def test_a_stalled_caller_does_not_block_the_next_one(receiver: Receiver, settler: Settler, token: str) -> None:
    host, port = receiver.address
    with socket.create_connection((host, port), timeout=10) as stalled:
        stalled.sendall(f"POST /jobs/{token} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        answer = requests.post(f"{receiver.url}/jobs/{token}", json={"success": True}, timeout=10)
        assert answer.status_code == 204


def test_a_settle_that_breaks_asks_the_caller_to_try_again(token: str) -> None:
    def broken(_token: str, _raw: bytes) -> bool:
        raise RuntimeError("journal is gone")

    with Receiver(("127.0.0.1", 0), broken) as running:
        answer = requests.post(f"{running.url}/jobs/{token}", json={}, timeout=10)
    assert (answer.status_code, answer.content) == (503, b"")
