"""pytest fixtures: a real SMTP server (aiosmtpd) on loopback, with TLS and AUTH as needed.

- `tls_cert`: a self-signed certificate for `localhost` / `127.0.0.1`, made at test time
  (cryptography); `.cert` is the PEM a client trusts through `verify_tls = <path>`.
- `smtp_server(**options)`: a factory that starts an aiosmtpd `Controller` on a free loopback port
  and stops it after the test. Options: `tls` (None | "starttls" | "ssl"), `users` (login →
  password; enables AUTH), `auth_required`, `data_reply` (a reply such as "554 5.6.0 no" for every
  DATA), `temporary_failures` (how many DATA commands get "451 4.3.0 try again" first), `port` (a port
  picked earlier with `free_port()`: a server that was "down" comes back where the agent expects it),
  `answer_delay` (seconds before it answers the end of DATA: a client that times out first cannot
  know whether the message was taken).
  The returned `SmtpServer` records every accepted message (raw bytes) and who logged in.

Why a factory: each test wants a slightly different server, and aiosmtpd cannot bind port 0
(see shared/reference/test-infrastructure.md §2), so the port comes from `free_port()`.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.net import free_port


@dataclass(frozen=True)
class TlsCert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def make_certificate(folder: Path) -> TlsCert:
    """A one-day self-signed EC certificate valid for DNS:localhost and IP:127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return TlsCert(cert=cert_path, key=key_path)


@dataclass
class _Recorder:
    """aiosmtpd handler: stores each message, or answers DATA with a configured failure."""

    data_reply: str | None = None
    temporary_failures: int = 0
    answer_delay: float = 0.0  # seconds before answering the end of DATA (keeps the message)
    messages: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    data_attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        with self.lock:
            self.data_attempts += 1
            if self.temporary_failures > 0:
                self.temporary_failures -= 1
                return "451 4.3.0 Temporary local problem, try again later"
            if self.data_reply:
                return self.data_reply
            self.messages.append(bytes(envelope.original_content))
            if session.auth_data is not None:
                login = session.auth_data
                self.logins.append(login.decode() if isinstance(login, bytes) else str(login))
        return "250 OK"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: _Recorder

    @property
    def messages(self) -> list[bytes]:
        return self.handler.messages

    @property
    def logins(self) -> list[str]:
        return self.handler.logins

    @property
    def data_attempts(self) -> int:
        return self.handler.data_attempts

    def parsed(self) -> list[EmailMessage]:
        parsed = [message_from_bytes(raw, policy=policy.default) for raw in self.messages]
        return [message for message in parsed if isinstance(message, EmailMessage)]


def _authenticator(users: dict[str, str]) -> Callable[..., AuthResult]:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        if users.get(login) == password:
            return AuthResult(success=True, auth_data=data.login)
        return AuthResult(success=False, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return check


def _start(
    handler: _Recorder,
    tls: str | None,
    cert: TlsCert | None,
    users: dict[str, str] | None,
    auth_required: bool,
    port: int | None = None,
) -> tuple[Controller, int]:
    options: dict[str, Any] = {}
    if tls == "starttls":
        assert cert is not None
        options.update(tls_context=cert.server_context(), require_starttls=True)
    elif tls == "ssl":
        assert cert is not None
        options.update(ssl_context=cert.server_context())
    if users is not None:
        # aiosmtpd only advertises AUTH over STARTTLS by default; implicit TLS and plain need this off.
        options.update(authenticator=_authenticator(users), auth_require_tls=(tls == "starttls"))
    options["auth_required"] = auth_required
    last_error: Exception | None = None
    for _ in range(5):  # the free port may be taken between probing and binding: try another one
        chosen = port or free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=chosen, **options)
        try:
            controller.start()
        except Exception as exc:
            controller.stop(no_assert=True)
            last_error = exc
            continue
        return controller, chosen
    raise RuntimeError(f"aiosmtpd did not start: {last_error}")


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TlsCert:
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_server(tls_cert: TlsCert) -> Iterator[Callable[..., SmtpServer]]:
    controllers: list[Controller] = []

    def start(
        *,
        tls: str | None = None,
        users: dict[str, str] | None = None,
        auth_required: bool = False,
        data_reply: str | None = None,
        temporary_failures: int = 0,
        port: int | None = None,
        answer_delay: float = 0.0,
    ) -> SmtpServer:
        handler = _Recorder(data_reply=data_reply, temporary_failures=temporary_failures, answer_delay=answer_delay)
        controller, port = _start(handler, tls, tls_cert if tls else None, users, auth_required, port)
        controllers.append(controller)
        return SmtpServer(host="127.0.0.1", port=port, handler=handler)

    yield start
    for controller in controllers:
        controller.stop(no_assert=True)
