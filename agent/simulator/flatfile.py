"""The flat-file endpoints: upload (`.../endpoint/{slug}/{operation}`) and `.../dataSetStatus/{uid}`.

Shapes follow `shared/reference/learn-snapshot-flatfile.md` §1 and §4 and the status sample of
`shared/seeds/003_…` (one element per line, indented by four spaces, children in alphabetical
order), so line-oriented clients such as Blackboard's own bash script (grep '<completedCount>')
work. Invented where the reference is silent, and kept plain:
- unknown dataSetUid: 404 with a plain-text sentence; a trailing slash on any path: 404;
- an upload with an empty body: 400; without Content-Length or chunking: 411;
- bad credentials: 401 with a Tomcat-style HTML error page and `WWW-Authenticate: Basic
  realm="Blackboard Learn"`. A search of public code, pages and issues found no capture of what
  Learn's flat-file endpoint answers on bad credentials, so both the page and the realm are guesses;
  clients should look at the status code only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime
from xml.sax.saxutils import escape

from agent.simulator.core import SimulatorCore
from agent.simulator.datasets import DataSet
from agent.simulator.httpd import Handler
from agent.simulator.objects import OPERATIONS, REQUIRED

PATH_PREFIX = "/webapps/bb-data-integration-flatfile-"
DATA_INTEGRATION_TYPE = "blackboard.platform.dataintegration.DataIntegration"
SUCCESS_SENTENCE = "Success: Feed File Uploaded.  Use the reference code {uid} to track these records in the logs."
REALM = "Blackboard Learn"

_PATH = re.compile(r"^/webapps/bb-data-integration-flatfile-([^/]+)/endpoint/([^/]+)/([^/]+)$")
_STACK_TRACE = (
    "java.lang.IllegalStateException: simulated failure (fault mode fail-uploads)\n"
    "\tat blackboard.platform.dataintegration.impl.FlatFileEndpoint.store(FlatFileEndpoint.java:212)\n"
)
_NO_CODE_PAGE = (
    "<html><head><title>Blackboard Learn</title></head><body><h1>Processing error</h1>"
    "<p>The feed could not be queued (simulated fault mode no-code).</p></body></html>"
)
_UNAUTHORIZED_PAGE = """<!doctype html><html lang="en"><head><title>HTTP Status 401 – Unauthorized</title></head>
<body><h1>HTTP Status 401 – Unauthorized</h1><hr class="line" />
<p><b>Type</b> Status Report</p>
<p><b>Message</b> Unauthorized</p>
<p><b>Description</b> The request has not been applied because it lacks valid authentication credentials for the
target resource.</p><hr class="line" /></body></html>
"""
_SIGN_IN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head>
<body onload="document.forms[0].submit()">
<noscript><p>Your session has expired. Sign in to continue to Blackboard Learn.</p></noscript>
<form method="post" action="/idp/profile/SAML2/Redirect/SSO?execution=e1s1">
<input type="hidden" name="csrf_token" value="{nonce}"/>
<input type="hidden" name="RelayState" value="ss:mem:{nonce}"/>
<label>Username <input type="text" name="j_username"></label>
<label>Password <input type="password" name="j_password"></label>
<button type="submit" name="_eventId_proceed">Sign in</button>
</form></body></html>
"""


class FlatFileEndpoints:
    """Answers `/webapps/bb-data-integration-flatfile-{integration}/endpoint/...`."""

    def __init__(self, core: SimulatorCore) -> None:
        self.core = core

    def dispatch(self, handler: Handler, method: str) -> None:
        core = self.core
        match = _PATH.match(handler.url_path)
        if not match or match.group(1) != core.integration:
            handler.drain_or_close()
            handler.reply(404, "Not Found")
            return
        _, slug, tail = match.groups()
        if not self._authorized(handler):
            handler.drain_or_close()
            handler.reply(
                401,
                _UNAUTHORIZED_PAGE,
                content_type="text/html;charset=utf-8",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
            )
            return
        if slug == "dataSetStatus" and method in ("GET", "POST"):
            if method == "POST":
                handler.drain_or_close()
            self._status(handler, tail)
        elif slug in REQUIRED and tail in OPERATIONS:
            if method == "POST":
                self._upload(handler, slug, tail)
            else:
                handler.drain_or_close()
                handler.reply(405, "Method Not Allowed: upload with POST", headers={"Allow": "POST"})
        else:
            handler.drain_or_close()
            handler.reply(404, "Not Found")

    def _authorized(self, handler: Handler) -> bool:
        pair = f"{self.core.username}:{self.core.password}".encode()
        expected = b"Basic " + base64.b64encode(pair)
        given = handler.headers.get("Authorization", "").encode("utf-8", "replace")
        return hmac.compare_digest(given, expected)

    # Upload -------------------------------------------------------------------------------------
    def _upload(self, handler: Handler, slug: str, operation: str) -> None:
        core = self.core
        name = f"upload {slug}/{operation}"
        length = handler.headers.get("Content-Length")
        if length is None and not handler.chunked:
            handler.close_connection = True
            handler.reply(411, "Length Required")
            return
        with core.lock:
            core.upload_attempts += 1
        if core.take("throttle_uploads"):
            handler.drain_or_close()
            core.event(f"{name}: answered 429 (fault throttle-uploads)")
            handler.reply(429, "Too Many Requests", headers=core.faults.retry_headers())
            return
        checker = core.checker(slug)
        digest = hashlib.sha256()
        size = 0
        for piece in handler.body_pieces():
            digest.update(piece)
            checker.feed(piece)
            size += len(piece)
            core.read_pause(len(piece))
        checker.close()
        if size == 0:
            handler.reply(400, "Bad Request: the feed file is empty (no header and no records)")
            return
        fault = self._take_fault()
        if fault == "drop":
            handler.close_connection = True
            core.event(f"{name}: {size} bytes read, then the connection was dropped (fault drop-uploads)")
            return
        sha256, content_type = digest.hexdigest(), handler.headers.get("Content-Type", "")
        if fault == "withhold":
            upload = core.accept(
                checker,
                operation=operation,
                sha256=sha256,
                size=size,
                content_type=content_type,
                chunked=handler.chunked,
                answered=False,
            )
            core.event(f"{name}: accepted as {upload.uid}, but no answer is sent (fault withhold-answers)")
            handler.hold_unanswered(core.faults.withhold_seconds)
            return
        core.slow()
        if fault == "fail":
            core.event(f"{name}: answered 500 (fault fail-uploads)")
            handler.reply(500, _STACK_TRACE)
        elif fault == "html_page":
            core.event(f"{name}: answered 200 with a sign-in page (fault html-page)")
            page = _SIGN_IN_PAGE.format(nonce=secrets.token_hex(16))
            handler.reply(200, page, content_type="text/html;charset=UTF-8")
        elif fault == "no_code":
            core.event(f"{name}: answered 200 without a reference code (fault no-code)")
            handler.reply(200, _NO_CODE_PAGE, content_type="text/html;charset=UTF-8")
        else:
            upload = core.accept(
                checker,
                operation=operation,
                sha256=sha256,
                size=size,
                content_type=content_type,
                chunked=handler.chunked,
            )
            handler.reply(200, SUCCESS_SENTENCE.format(uid=upload.uid))

    def _take_fault(self) -> str:
        """Which fault (if any) this upload gets; counters are used up under the lock."""
        core = self.core
        for counter, fault in (("drop_uploads", "drop"), ("withhold_answers", "withhold"), ("fail_uploads", "fail")):
            if core.take(counter):
                return fault
        if core.faults.html_page:
            return "html_page"
        return "no_code" if core.faults.no_code else ""

    # Status -------------------------------------------------------------------------------------
    def _status(self, handler: Handler, uid: str) -> None:
        core = self.core
        with core.lock:
            core.status_requests += 1
        failing = core.take("status_failures")
        dataset = core.find(uid)
        core.slow()
        if failing:
            code = core.faults.status_failure_code
            reason = handler.responses.get(code, ("Error",))[0]
            headers = core.faults.retry_headers() if code in (429, 503) else {}
            handler.reply(code, f"{reason} (fault status-failures)", headers=headers)
        elif dataset is None:
            handler.reply(404, f"No data set has the reference code {uid}")
        else:
            handler.reply(200, self.status_xml(dataset), content_type="application/xml;charset=UTF-8")

    def status_xml(self, dataset: DataSet) -> str:
        """dataSetStatus as Learn writes it: one element per line, children in alphabetical order."""
        now = time.monotonic()
        info = dataset.info(now)
        core = self.core
        children = [
            f"<completedCount>{info.completed}</completedCount>",
            f'<dataIntegrationId type="{DATA_INTEGRATION_TYPE}">{escape(core.data_integration_id)}</dataIntegrationId>',
            f"<dataSetUid>{dataset.uid}</dataSetUid>",
            f"<errorCount>{info.errors}</errorCount>",
            f"<lastEntryDate>{_iso(dataset.last_entry(now))}</lastEntryDate>",
            f"<machineName>{escape(core.machine_name)}</machineName>",
            f"<queuedCount>{info.queued}</queuedCount>",
            f"<startDate>{_iso(dataset.accepted_wall)}</startDate>",
            f"<warningCount>{info.warnings}</warningCount>",
        ]
        lines = ["<dataSetStatus>", *(f"    {child}" for child in children), "</dataSetStatus>"]
        return '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + "\n".join(lines) + "\n"


def _iso(moment: datetime) -> str:
    """ISO-8601 with milliseconds and offset, like 2017-07-23T12:42:28.717-05:00."""
    return moment.astimezone().isoformat(timespec="milliseconds")
