"""A dead-man's-switch ping after each batch (healthchecks.io, Uptime Kuma, Cronitor style).

Why: an agent that silently stopped sends no email at all, so silence must be noticed elsewhere.
The monitoring service expects a GET to the URL after every batch; `…/fail` tells it that something
in the batch failed. A ping never stops the pipeline, and its log line leaves out the query string
and any user:password, which commonly carry the monitor's token.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)


def ping_url(url: str, failed: bool) -> str:
    """The URL to GET: `/fail` appended to the path on failure, without doubling a slash."""
    if not failed:
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/fail"))


def safe_url(url: str) -> str:
    """The URL fit for a log line: no query, fragment or user info (they may hold a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparseable heartbeat URL)"
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def ping(url: str, failed: bool, timeout: float = 10) -> bool:
    """GET the heartbeat URL; True when it answered 2xx/3xx. Never raises."""
    target = ping_url(url, failed)
    try:
        response = requests.get(target, timeout=timeout)
        response.close()
    except Exception as exc:  # requests errors, bad URLs: a ping must never stop the agent
        log.warning(
            "heartbeat ping to %s failed: %s; check [heartbeat] url and the network",
            safe_url(target),
            type(exc).__name__,
        )
        return False
    if response.status_code >= 400:
        log.warning(
            "heartbeat ping to %s failed: HTTP %d; check [heartbeat] url",
            safe_url(target),
            response.status_code,
        )
        return False
    log.debug("heartbeat ping to %s: HTTP %d", safe_url(target), response.status_code)
    return True
