"""pytest fixtures: the Learn simulator on a real loopback socket, and settings that point at it.

- `learn_sim`: a started :class:`LearnSimulator` (port 0, fast processing), stopped at teardown.
- `learn_tls_sim`: the same behind HTTPS with a throw-away self-signed certificate; its CA bundle
  path is `learn_tls_sim.ca_bundle` (for `verify_tls = <path>` tests).
- `learn_settings(sim, **overrides)`: `LearnTargetSettings` with small poll intervals so waits finish
  in a fraction of a second; overrides may give plain strings for username/password.
- `write_flatfile(path, header, rows, ...)`: a feed file as an SIS would export it.
- `PEOPLE_HEADER` / `person_rows(n)`, `COURSE_HEADER` / `course_rows(n)`, `MEMBERSHIP_HEADER` /
  `membership_rows(n)`: small valid data sets whose keys match each other.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from agent.settings import LearnTargetSettings, Secret
from agent.simulator import LearnSimulator

FAST_ROWS_PER_SECOND = 2000.0
PEOPLE_HEADER = ("external_person_key", "data_source_key", "firstname", "lastname", "user_id", "email")
COURSE_HEADER = ("external_course_key", "data_source_key", "course_id", "course_name")
MEMBERSHIP_HEADER = ("external_course_key", "external_person_key", "data_source_key", "role")


def person_rows(count: int) -> list[tuple[str, ...]]:
    return [
        (f"P{i:05d}", "SIS", f"First{i}", f"Last{i}", f"user{i}", f"user{i}@example.edu") for i in range(1, count + 1)
    ]


def course_rows(count: int) -> list[tuple[str, ...]]:
    return [(f"C{i:03d}", "SIS", f"COURSE-{i}", f"Course {i}") for i in range(1, count + 1)]


def membership_rows(count: int, *, courses: int = 1) -> list[tuple[str, ...]]:
    """Person i enrolled in course ((i-1) % courses)+1: valid once person_rows/course_rows are stored."""
    return [(f"C{(i - 1) % courses + 1:03d}", f"P{i:05d}", "SIS", "Student") for i in range(1, count + 1)]


def write_flatfile(
    path: Path,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    delimiter: str = "|",
    bom: bool = False,
    newline: str = "\n",
) -> Path:
    """Writes a header line and rows, UTF-8, optionally with a byte-order mark; returns the path."""
    lines = [delimiter.join(header), *(delimiter.join(row) for row in rows)]
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


class LearnEndpoint(Protocol):
    """What learn_settings needs: a LearnSimulator, or any stand-in with these attributes."""

    url: str
    integration: str
    username: str
    password: str


def learn_settings(sim: LearnEndpoint, **overrides: Any) -> LearnTargetSettings:
    """Settings for a LearnTarget aimed at `sim`, tuned for tests (polls every 0.05-0.2 s, 30 s timeout)."""
    for key in ("username", "password"):
        if isinstance(overrides.get(key), str):
            overrides[key] = Secret(overrides[key])
    settings = LearnTargetSettings(
        name="learn",
        url=sim.url,
        integration=sim.integration,
        username=Secret(sim.username),
        password=Secret(sim.password),
        verify_tls=True,
        poll_initial_seconds=0.05,
        poll_max_seconds=0.2,
        timeout_minutes=0.5,
    )
    return dataclasses.replace(settings, **overrides)


@pytest.fixture
def learn_sim() -> Iterator[LearnSimulator]:
    """A running simulator on 127.0.0.1, any free port; stopped after the test."""
    sim = LearnSimulator(rows_per_second=FAST_ROWS_PER_SECOND).start()
    try:
        yield sim
    finally:
        sim.stop()


def make_self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost/127.0.0.1 and its key, written as PEM files in `folder`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), loopback])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "learn-cert.pem", folder / "learn-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def learn_tls_sim(tmp_path: Path) -> Iterator[LearnSimulator]:
    """A simulator behind HTTPS (https://localhost:PORT) with a self-signed certificate.

    `sim.ca_bundle` (a str path) is the certificate to trust, e.g. `learn_settings(sim, verify_tls=...)`.
    """
    cert_path, key_path = make_self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    sim = LearnSimulator(rows_per_second=FAST_ROWS_PER_SECOND, tls=context).start()
    sim.ca_bundle = str(cert_path)  # type: ignore[attr-defined]
    try:
        yield sim
    finally:
        sim.stop()
