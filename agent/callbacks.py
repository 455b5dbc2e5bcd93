"""Per-job notification URLs and what a notification says: pure functions, no I/O.

Why a token per job: AlumnIQ calls back whatever URL we gave as `notifyWebhook`, and its payload is
not documented in the material we have, so the URL itself must say which job it settles. A random
token (256 bits) makes that URL unguessable; only its SHA-256 is stored, so whoever reads the
journal cannot forge a notification either.

Why the verdict reads several fields: without a documented payload we accept the common shapes
(`success: true`, `status: "failed"`, `state: "completed"`, `error: "..."`) and keep the raw body
in the journal for whoever needs more. A body that says nothing clear counts as a failure: an admin
looking at a FAILED report with AlumnIQ's words loses less than one trusting a SUCCESS that wasn't.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

JOBS_PATH = "/jobs/"
MAX_BODY_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 500
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
SUCCESS_WORDS = frozenset({"success", "succeeded", "successful", "complete", "completed", "done", "ok", "finished"})
FAILURE_WORDS = frozenset({"failure", "failed", "fail", "error", "errored", "aborted", "cancelled", "canceled"})
MESSAGE_FIELDS = ("message", "error", "errorMessage", "detail", "status", "state")


def new_token() -> str:
    """32 random bytes, URL-safe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the journal stores instead of the token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def job_link(base_url: str, token: str) -> str:
    """`{public_url}/jobs/{token}`."""
    return base_url.rstrip("/") + JOBS_PATH + token


def token_in(path: str) -> str | None:
    """The token of a `/jobs/{token}` request path (any prefix before it, e.g. a proxy's), else None."""
    head, sep, token = path.partition("?")[0].rpartition(JOBS_PATH)
    if not sep or not _TOKEN_SHAPE.fullmatch(token) or (head and not head.startswith("/")):
        return None
    return token


@dataclass(frozen=True)
class Verdict:
    """What a notification says: the job succeeded or not, and AlumnIQ's own words."""

    succeeded: bool
    message: str


def read_verdict(raw: bytes) -> Verdict:
    """Success or failure from `success`, `status`, `state`, `error`, `message` (the first clear one wins)."""
    data = _json(raw)
    if not isinstance(data, dict):
        text = raw.decode("utf-8", "replace").strip()
        return Verdict(False, _short(text) or "the notification had no readable body")
    succeeded = _decide(data)
    return Verdict(succeeded if succeeded is not None else False, _message(data, succeeded))


def _decide(data: dict[str, Any]) -> bool | None:
    if isinstance(data.get("success"), bool):
        return bool(data["success"])
    for field in ("status", "state", "result"):
        word = data.get(field)
        if isinstance(word, str):
            if word.strip().lower() in SUCCESS_WORDS:
                return True
            if word.strip().lower() in FAILURE_WORDS:
                return False
    error = data.get("error")
    if error is False or (error is None and "error" in data):
        return True
    if error:
        return False
    return None


def _message(data: dict[str, Any], succeeded: bool | None) -> str:
    for field in MESSAGE_FIELDS:
        value = data.get(field)
        if isinstance(value, str) and value.strip():
            return _short(value)
    if succeeded is None:
        return "the notification did not say whether the job succeeded"
    return "the job succeeded" if succeeded else "the job failed (no message given)"


def _short(text: str) -> str:
    return " ".join(text.split())[:MAX_MESSAGE_CHARS]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
