"""Learn REST: the OAuth2 token and the SIS data set log (`shared/reference/learn-rest-logs.md`).

- `POST /learn/api/public/v1/oauth2/token`: HTTP Basic with the REST application's key and secret
  (not the flat-file integration's), form body `grant_type=client_credentials`.
- `GET /learn/api/public/v1/logs/sis/dataSets/{uid}`: Bearer token; `level`, `offset`, `limit`
  (capped at 100), `fields`; `paging.nextPage` on every page but the last, keeping the other query
  parameters; 423 while any data set of the integration is still waiting or processing.

Invented where the reference is silent: error bodies are `{"status": N, "message": "..."}` (the
token endpoint's `{"error": "...", "error_description": "..."}`); parameters are checked before the
data set is looked up (400 before 404); unknown query parameters are ignored, but an unknown
`fields` name or a bad `level`/`offset`/`limit` is a 400; the fault `rest_throttle` counts token
and log calls alike (both count against a REST application's limits).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from agent.simulator.core import SimulatorCore
from agent.simulator.httpd import Handler
from agent.simulator.logentries import FIELDS, parse_level

REST_PREFIX = "/learn/api/public/v1"
TOKEN_PATH = f"{REST_PREFIX}/oauth2/token"
LOG_PREFIX = f"{REST_PREFIX}/logs/sis/dataSets/"
PAGE_LIMIT = 100
ENTITLEMENT = "system.dataintegrations.log.VIEW"

_LOG_PATH = re.compile(r"^/learn/api/public/v1/logs/sis/dataSets/([^/]+)$")


class TokenStore:
    """Bearer tokens and when each stops working (time.monotonic())."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, lifetime: float) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._expiry = {t: end for t, end in self._expiry.items() if end > now}  # forget dead ones
            self._expiry[token] = now + lifetime
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            end = self._expiry.get(token)
        return end is not None and time.monotonic() < end

    def expire_all(self) -> None:
        with self._lock:
            self._expiry.clear()


class RestEndpoints:
    """Answers everything under /learn/api/."""

    def __init__(self, core: SimulatorCore) -> None:
        self.core = core
        self.tokens = TokenStore()

    def dispatch(self, handler: Handler, method: str) -> None:
        core = self.core
        with core.lock:
            core.rest_requests += 1
        path = handler.url_path
        match = _LOG_PATH.match(path)
        if path == TOKEN_PATH:
            if method != "POST":
                handler.drain_or_close()
                _error(handler, 405, "Use POST to ask for a token", {"Allow": "POST"})
            else:
                self._token(handler)
        elif match:
            handler.drain_or_close()
            if method != "GET":
                _error(handler, 405, "Use GET to read a data set log", {"Allow": "GET"})
            else:
                self._log(handler, match.group(1))
        else:
            handler.drain_or_close()
            _error(handler, 404, f"No REST resource at {path}")

    def _throttled(self, handler: Handler) -> bool:
        if not self.core.take("rest_throttle"):
            return False
        self.core.event(f"REST {handler.url_path}: answered 429 (fault rest-throttle)")
        _error(handler, 429, "Too many requests for this REST application", self.core.faults.retry_headers())
        return True

    # Token --------------------------------------------------------------------------------------
    def _token(self, handler: Handler) -> None:
        core = self.core
        body = handler.read_small_body(64 * 1024)
        if self._throttled(handler):
            return
        pair = f"{core.rest_key}:{core.rest_secret}".encode()
        expected = b"Basic " + base64.b64encode(pair)
        given = handler.headers.get("Authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            handler.reply_json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
            return
        form = dict(parse_qsl((body or b"").decode("utf-8", "replace"), keep_blank_values=True))
        grant = form.get("grant_type")
        if not grant:
            handler.reply_json(400, {"error": "invalid_request", "error_description": "grant_type is required"})
        elif grant != "client_credentials":
            description = f"grant_type {grant} is not supported here; use client_credentials"
            handler.reply_json(400, {"error": "unsupported_grant_type", "error_description": description})
        else:
            core.slow()
            token = self.tokens.issue(core.token_seconds)
            lifetime = int(core.token_seconds)
            handler.reply_json(200, {"access_token": token, "token_type": "bearer", "expires_in": lifetime})

    # Log ----------------------------------------------------------------------------------------
    def _log(self, handler: Handler, uid: str) -> None:
        core = self.core
        authorization = handler.headers.get("Authorization", "")
        token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
        if not token or not self.tokens.valid(token):
            _error(handler, 401, "The bearer token is missing, unknown or expired")
            return
        if self._throttled(handler):
            return
        if core.faults.rest_forbidden:
            _error(handler, 403, f"The REST application's user lacks the entitlement {ENTITLEMENT}")
            return
        query = handler.query
        params, problem = _parameters(query)
        if problem:
            _error(handler, 400, problem)
            return
        dataset = core.find(uid)
        core.slow()
        if dataset is None:
            _error(handler, 404, f"No data set has the id {uid}")
            return
        if core.log_locked(time.monotonic()):
            _error(handler, 423, "The data integration is still processing; read the log once processing is complete")
            return
        level, offset, limit, fields = params["level"], params["offset"], params["limit"], params["fields"]
        entries = dataset.log.page(level, offset, limit)
        answer: dict[str, Any] = {"results": [entry.as_json(fields) for entry in entries]}
        if offset + len(entries) < dataset.log.count(level):
            kept = [(name, value) for name, value in query if name not in ("offset", "limit")]
            following = urlencode([("offset", offset + len(entries)), ("limit", limit), *kept])
            answer["paging"] = {"nextPage": f"{LOG_PREFIX}{uid}?{following}"}
        handler.reply_json(200, answer)


def _parameters(query: list[tuple[str, str]]) -> tuple[dict[str, Any], str]:
    """(level, offset, limit, fields) from the query, or an explanation of what is wrong."""
    given = dict(query)
    level = parse_level(given.get("level", "Error"))
    if level is None:
        return {}, f"level must be Error, Warning, Information or Debug, not '{given['level']}'"
    numbers: dict[str, int] = {}
    for name, default, lowest in (("offset", 0, 0), ("limit", PAGE_LIMIT, 1)):
        text = given.get(name, str(default))
        if not text.isdigit() or int(text) < lowest:
            return {}, f"{name} must be a whole number of at least {lowest}, not '{text}'"
        numbers[name] = int(text)
    fields = tuple(name.strip() for name in given.get("fields", ",".join(FIELDS)).split(",") if name.strip())
    unknown = [name for name in fields if name not in FIELDS]
    if unknown or not fields:
        return {}, f"fields must name some of {', '.join(FIELDS)}; unknown: {', '.join(unknown) or '(none given)'}"
    limit = min(numbers["limit"], PAGE_LIMIT)
    return {"level": level, "offset": numbers["offset"], "limit": limit, "fields": fields}, ""


def _error(handler: Handler, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    handler.reply_json(status, {"status": status, "message": message}, headers=headers)
