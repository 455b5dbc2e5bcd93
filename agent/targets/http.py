"""HTTP plumbing shared by the Learn clients: a streamed request body, large socket writes, short answers.

- `StreamedBody`: a file (optionally behind a BOM) that requests streams with a Content-Length, so a
  1 GiB export never becomes 1 GiB of RAM and Learn sees an ordinary (not chunked) upload.
- `new_session`: a requests session whose adapter writes 256 KiB at a time (urllib3's 16 KiB costs
  about 20% on big files) and that reads the proxy environment once per server, not per request.
- `read_start`, `start`, `root_cause`, `without_credentials`: what goes into a message about an
  answer or a failure: short, on one line, and never a credential.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

import requests
import requests.adapters

from agent.records import UploadProgress

if TYPE_CHECKING:
    from requests.sessions import _Settings

PIECE = 64 * 1024
SEND_BLOCK = 256 * 1024  # bytes per socket write


def start(text: str, limit: int = 200) -> str:
    """The start of an answer on one line, quoted, for messages."""
    flat = " ".join(text.split())
    return repr(flat[:limit] + ("…" if len(flat) > limit else ""))


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


class StreamedBody:
    """A file (optionally behind a BOM) that requests streams with a Content-Length.

    requests treats an object with `read` and `__iter__` as a stream and uses `__len__` for the
    Content-Length header, so the file goes out in pieces and never as one bytes object. Reads stop
    at the length announced at the start (a file that grows meanwhile cannot overrun the header).

    `before_last` runs before the piece that completes the body is handed out (`complete` is then
    True), with the SHA-256 of the file's bytes (the prefix is not the file's); `after_last` runs
    when the sender asks for more after it, i.e. once every byte was handed to the socket (urllib3
    reads until an empty piece).

    Why hash here: the upload reads every byte anyway, and while it waits for the server the
    client's core is idle; the check before sending is then free to split its scan across the
    cores (agent.parallelscan) instead of sharing one with a hashing thread. The digest is of what
    was sent, which is what the journal must know.
    """

    def __init__(
        self,
        path: Path,
        prefix: bytes = b"",
        on_sent: UploadProgress | None = None,
        *,
        before_last: Callable[[str], None] | None = None,
        after_last: Callable[[], None] | None = None,
    ) -> None:
        self._prefix = prefix
        self._file: BinaryIO = path.open("rb")
        self._length = len(prefix) + path.stat().st_size
        self._on_sent = on_sent
        self._before_last = before_last
        self._after_last = after_last
        self.sent = 0
        self.complete = False
        self._digest = hashlib.sha256()

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        left = self._length - self.sent
        if left <= 0:
            if self._after_last is not None:
                after, self._after_last = self._after_last, None
                after()
            return b""
        wanted = min(left, size if size and size > 0 else PIECE)
        if self._prefix:
            head, self._prefix = self._prefix[:wanted], self._prefix[wanted:]
            own = self._file.read(wanted - len(head)) if wanted > len(head) else b""
            data = head + own
        else:
            data = own = self._file.read(wanted)
        self._digest.update(own)
        if self.sent + len(data) >= self._length and data:
            self.complete = True
            if self._before_last is not None:
                self._before_last(self._digest.hexdigest())
        self.sent += len(data)
        if self._on_sent is not None:
            self._on_sent(self.sent, self._length)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            piece = self.read(PIECE)
            if not piece:
                return
            yield piece

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> StreamedBody:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


class LargeBlockAdapter(requests.adapters.HTTPAdapter):
    """Sends request bodies in 256 KiB writes instead of 16 KiB ones (fewer syscalls, same memory)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blocksize", SEND_BLOCK)
        super().init_poolmanager(*args, **kwargs)


class _EnvironmentOnceSession(requests.Session):
    """A session that reads the proxy environment once per server, not once per request.

    Why: requests looks `*_proxy`/`no_proxy` and the CA bundle variables up again for every request,
    about 0.1 ms each; a burst of thousands of small files pays it twice per file. The environment
    of a running agent does not change, so the answer for a scheme and host is kept for the session.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str, str], _Settings] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> _Settings:
        if proxies or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, repr((stream, verify, cert)))
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        answer = self._environment[key].copy()
        answer["proxies"] = dict(answer["proxies"])
        return answer


def new_session() -> requests.Session:
    session = _EnvironmentOnceSession()
    adapter = LargeBlockAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def read_start(response: requests.Response, limit: int = 64 * 1024) -> str:
    """At most `limit` bytes of an answer as text: enough for a code or a message, never a flood."""
    data = bytearray()
    try:
        for piece in response.iter_content(8192):
            data += piece
            if len(data) >= limit:
                break
    except requests.RequestException:
        pass
    return bytes(data[:limit]).decode(response.encoding or "utf-8", errors="replace")


def root_cause(exc: BaseException) -> str:
    """The telling part of a connection error, e.g. 'Connection refused', not a pool's life story."""
    text = str(exc)
    reason = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text) or re.search(r"(\w+\('[^']+'\))", text)
    return reason.group(1).strip() if reason else start(text)
