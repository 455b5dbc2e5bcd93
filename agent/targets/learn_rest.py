"""Learn's public REST API, for one thing: the SIS data set log that says why each record failed.

Protocol facts are in `shared/reference/learn-rest-logs.md`. The choices that matter:
- OAuth2 client credentials with the REST application's key and secret (not the flat-file
  integration's); the token is reused until shortly before it expires, and a 401 gets one fresh
  token, never a loop (a wrong secret must not hammer Learn);
- the log is read page by page (`paging.nextPage`) and handed on entry by entry, so a data set
  with 200,000 entries never sits in memory whole;
- 423 Locked (the integration is still processing) is waited out with back-off up to
  `log_wait_minutes`; 429 honours `Retry-After`; network trouble and 5xx are retried by the one
  `RetryPolicy`; 401/403/404 are final and explained in plain words;
- `nextPage` is followed on our own Learn host only, so a bearer token never leaves for another.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import StopRequested, TargetError
from agent.logdigest import line_of
from agent.records import LogEntry
from agent.retry import RetryPolicy, parse_retry_after, retrying
from agent.settings import LearnTargetSettings
from agent.targets.http import new_session, read_start, root_cause, start, without_credentials

log = logging.getLogger(__name__)

REST_PREFIX = "/learn/api/public/v1"
TOKEN_PATH = f"{REST_PREFIX}/oauth2/token"
LOG_PATH = f"{REST_PREFIX}/logs/sis/dataSets/"
ENTITLEMENT = "system.dataintegrations.log.VIEW"
ENTITLEMENT_LABEL = "Administrator Panel (Data Integration) > SIS Integrations > Logs"
REST_SCREEN = "System Admin → Integrations → REST API Integrations"
PAGE_LIMIT = 100
TOKEN_MARGIN = 60.0  # seconds before expiry when a token is no longer reused
REST_RETRY = RetryPolicy(attempts=5, first_delay=1.0, cap=60.0)
LOCKED_BACKOFF = RetryPolicy(attempts=1, first_delay=5.0, cap=60.0)  # only its delays are used
CHECK_UID = "0" * 32  # a data set that cannot exist: 404 means "ready"
LEVELS = {"error": "Error", "warning": "Warning"}


class LogLocked(TargetError):
    """423: Learn is still processing this integration's data sets; the log can be read later."""


class UnknownDataSet(TargetError):
    """404 for a data set's log: Learn knows no data set with that reference code."""


class LearnLogClient:
    """Reads the record-level log of data sets over Learn's REST API."""

    def __init__(
        self,
        settings: LearnTargetSettings,
        *,
        session: requests.Session | None = None,
        clock: Clock = SYSTEM_CLOCK,
        retry: RetryPolicy = REST_RETRY,
        locked: RetryPolicy = LOCKED_BACKOFF,
        timeout: tuple[float, float] = (10.0, 60.0),
    ) -> None:
        self.settings = settings
        self.session = session or new_session()
        self.clock = clock
        self.retry = retry
        self.locked = locked
        self.timeout = timeout
        parts = urlsplit(without_credentials((settings.rest_url or settings.url).rstrip("/")))
        self.base = urlunsplit(parts)
        self._origin = (parts.scheme, parts.netloc)
        self._bearer = ""
        self._expires = 0.0
        self.tokens_issued = 0

    def close(self) -> None:
        self.session.close()

    # Words -------------------------------------------------------------------------------------
    @property
    def _section(self) -> str:
        return f"[target:{self.settings.name}]"

    def _bad_client(self) -> str:
        return (
            f"Learn refused the REST application's key or secret (HTTP 401): check rest_key and rest_secret of "
            f"{self._section} (usually in .env); they are the application key and secret from the Blackboard "
            f"developer portal, not the integration's username and password"
        )

    def _forbidden(self) -> str:
        return (
            f"the REST application's Learn user lacks the entitlement {ENTITLEMENT} (HTTP 403): in Learn, "
            f"{REST_SCREEN} shows which user the application acts as; give that user's role "
            f'"{ENTITLEMENT_LABEL}"'
        )

    def _scrub(self, text: str) -> str:
        """Belt and braces: no message may carry the secret or a token, whatever a library put in it."""
        for secret in (self.settings.rest_secret.reveal(), self._bearer):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _network_problem(self, exc: requests.RequestException) -> TargetError:
        if isinstance(exc, requests.exceptions.Timeout):
            text = f"Learn's REST API at {self.base} did not answer in time ({exc.__class__.__name__})"
        else:
            text = f"could not reach Learn's REST API at {self.base}: {root_cause(exc)}"
        return TargetError(self._scrub(text), retryable=True)

    # Token -------------------------------------------------------------------------------------
    def _token(self, *, renew: bool = False) -> str:
        if renew or not self._bearer or self.clock.monotonic() >= self._expires:
            self._bearer = ""
            retrying(self._fetch_token, self.retry, what="getting a Learn REST token", clock=self.clock)
        return self._bearer

    def _fetch_token(self) -> None:
        key, secret = self.settings.rest_key.reveal(), self.settings.rest_secret.reveal()
        try:
            response = self.session.post(
                self.base + TOKEN_PATH,
                data={"grant_type": "client_credentials"},
                auth=(key, secret),
                timeout=self.timeout,
                verify=self.settings.verify_tls,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise self._network_problem(exc) from None
        with response:
            text = read_start(response)
        code = response.status_code
        if code == 200:
            answer = _json(text)
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not isinstance(token, str) or not token:
                raise TargetError("Learn's token answer had no access_token", http_status=200)
            lifetime = float(answer.get("expires_in") or 3599)
            self._bearer = token
            self._expires = self.clock.monotonic() + max(0.0, lifetime - min(TOKEN_MARGIN, lifetime / 10))
            self.tokens_issued += 1
            return
        if code in (400, 401):
            raise TargetError(self._bad_client(), http_status=code)
        raise self._unexpected(code, text, response, "a REST token")

    def _unexpected(self, code: int, text: str, response: requests.Response, what: str) -> TargetError:
        retryable = code == 429 or code >= 500
        after = parse_retry_after(response.headers.get("Retry-After")) if retryable else None
        if code == 404:
            message = f"no Learn REST API at {self.base} (HTTP 404 for {what}): check rest_url of {self._section}"
        else:
            message = f"Learn answered HTTP {code} for {what}; the answer began: {start(text)}"
        return TargetError(self._scrub(message), retryable=retryable, http_status=code, retry_after=after)

    # Log ---------------------------------------------------------------------------------------
    def log_url(self, uid: str) -> str:
        level = LEVELS.get(self.settings.log_level, "Warning")
        return f"{self.base}{LOG_PATH}{quote(uid, safe='')}?level={level}&limit={PAGE_LIMIT}"

    def _follow(self, next_page: str) -> str:
        """The next page on our own Learn host (a bearer token never goes elsewhere)."""
        parts = urlsplit(next_page)
        return urlunsplit((*self._origin, parts.path, parts.query, ""))

    def _get(self, url: str, uid: str) -> dict[str, Any]:
        """One page; a 401 gets one fresh token. Raises TargetError (LogLocked on 423)."""
        for renew in (False, True):
            try:
                response = self.session.get(
                    url,
                    headers={"Authorization": f"Bearer {self._token(renew=renew)}", "Accept": "application/json"},
                    timeout=self.timeout,
                    verify=self.settings.verify_tls,
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                raise self._network_problem(exc) from None
            with response:
                text = read_start(response, limit=16 * 1024 * 1024)
            if response.status_code != 401:
                break
        return self._page_answer(response, text, uid)

    def _page_answer(self, response: requests.Response, text: str, uid: str) -> dict[str, Any]:
        code = response.status_code
        if code == 200:
            answer = _json(text)
            if not isinstance(answer, dict) or not isinstance(answer.get("results"), list):
                raise TargetError(f"Learn's log answer for {uid} was not the expected JSON; it began: {start(text)}")
            return answer
        if code == 401:
            raise TargetError(
                f"Learn refused a freshly issued REST token (HTTP 401): check that the application is enabled "
                f"in {REST_SCREEN}",
                http_status=401,
            )
        if code == 403:
            raise TargetError(self._forbidden(), http_status=403)
        if code == 404:
            raise UnknownDataSet(f"Learn has no log for data set {uid} (HTTP 404)", http_status=404)
        if code == 423:
            raise LogLocked("Learn is still processing this integration's data sets (HTTP 423)", http_status=423)
        raise self._unexpected(code, text, response, f"the log of {uid}")

    def _page(self, url: str, uid: str, stop: threading.Event | None, patient: bool) -> dict[str, Any]:
        """One page, waiting out 423 Locked up to log_wait_minutes (not at all unless `patient`) and
        retrying 429/5xx/network."""
        wait = self.settings.log_wait_minutes * 60 if patient else 0.0
        deadline = self.clock.monotonic() + wait
        attempt = 0
        while True:
            try:
                return retrying(
                    lambda: self._get(url, uid), self.retry, what=f"reading Learn's log of {uid}", clock=self.clock
                )
            except LogLocked:
                attempt += 1
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    waited = f"for {self.settings.log_wait_minutes:g} minutes (log_wait_minutes of {self._section})"
                    raise TargetError(
                        f"Learn kept the log locked (HTTP 423: still processing this integration's data sets) "
                        f"{waited if patient else 'while the data set was still processing'}",
                        retryable=True,
                        http_status=423,
                    ) from None
                pause = min(self.locked.delay(attempt), remaining)
                log.info("Learn's log of %s is locked (423); asking again in %.1f s", uid, pause)
                if self.clock.sleep(pause, stop):
                    raise StopRequested() from None

    def entries(self, uid: str, stop: threading.Event | None = None, *, patient: bool = True) -> Iterator[LogEntry]:
        """Every entry at log_level or above, page by page, as Learn wrote them. `patient=False`
        (a data set still processing): take what the log holds now, never wait out a 423."""
        url: str | None = self.log_url(uid)
        pages = 0
        while url:
            answer = self._page(url, uid, stop, patient)
            pages += 1
            for item in answer["results"]:
                if isinstance(item, dict):
                    yield _entry(item)
            following = (answer.get("paging") or {}).get("nextPage")
            url = self._follow(following) if isinstance(following, str) and following else None
        log.debug("read %d page(s) of Learn's log of %s", pages, uid)

    # check -------------------------------------------------------------------------------------
    def probe(self) -> tuple[bool, str]:
        """Token, then the log of a data set that cannot exist: 401, 403 and 404 ("ready") told apart."""
        try:
            self._token(renew=True)
            self._get(self.log_url(CHECK_UID), CHECK_UID)
        except UnknownDataSet:
            return True, f"REST log access ready at {self.base} (token issued, entitlement {ENTITLEMENT} granted)"
        except TargetError as exc:
            return False, exc.message
        return True, f"REST log access ready at {self.base}"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _entry(item: dict[str, Any]) -> LogEntry:
    message = str(item.get("message") or "")
    return LogEntry(
        level=str(item.get("level") or ""),
        message=message,
        line=line_of(message),
        created=str(item.get("created") or ""),
        id=str(item.get("id") or ""),
    )
