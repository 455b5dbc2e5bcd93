"""Delivers rendered reports: SMTP (STARTTLS / implicit TLS / plain), an `.eml` outbox, or nowhere.

Why the file outbox is the default: a fresh install must work before anyone has asked IT for a mail
relay; the `.eml` files open in any mail client and can be re-sent by hand. SMTP retries temporary
trouble (4xx replies, dropped or refused connections) a few times with a growing pause, and gives up
at once on what will not fix itself (5xx, a rejected login, a certificate that does not verify).

Every error is a :class:`MailError` in plain words that say what to change; server replies are
scrubbed of the SMTP username and password, which are revealed only on the wire (`login`).
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import math
import os
import re
import secrets
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

from agent.clock import SYSTEM_CLOCK, Clock
from agent.errors import MailError, MailUnconfirmed
from agent.mailpolicy import MESSAGE_POLICY, SMTP_POLICY
from agent.records import CheckResult
from agent.render import RenderedEmail
from agent.retry import RetryPolicy, retrying
from agent.settings import EmailSettings
from agent.wording import SUBJECT_PREFIX

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%dT%H%M%S.%f"  # the first 22 characters of an outbox name (outbox_name)
PRUNE_EVERY_SECONDS = 3600.0  # outbox retention runs at most this often (a listing of a big folder)
MAIL_RETRY = RetryPolicy(attempts=3, first_delay=2.0, factor=5.0, cap=10.0)  # pauses of 2 s, then 10 s
_sequence = itertools.count(1)
_sequence_lock = threading.Lock()


def build_message(rendered: RenderedEmail, settings: EmailSettings) -> EmailMessage:
    """A multipart/alternative UTF-8 message (text first, HTML preferred by clients that can), with any
    attachments after it (then the whole message is multipart/mixed)."""
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["Subject"] = rendered.subject
    message["From"] = settings.from_addr
    message["To"] = ", ".join(settings.to) if settings.to else "undisclosed-recipients:;"
    message["Date"] = email.utils.format_datetime(datetime.now(timezone.utc))
    domain = email.utils.parseaddr(settings.from_addr)[1].rpartition("@")[2] or "feed-agent.invalid"
    message["Message-ID"] = email.utils.make_msgid(idstring="feed-agent", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to a robot
    message["X-Mailer"] = "feed-agent"
    message.set_content(rendered.text, charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    for attachment in rendered.attachments:
        maintype, _, subtype = attachment.mimetype.partition("/")
        params = {"charset": "utf-8"} if maintype == "text" else None  # our CSVs: a reader must not guess ASCII
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename, params=params
        )
    return message


def _slug(text: str, limit: int = 60) -> str:
    text = text.removeprefix(SUBJECT_PREFIX)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "message"


def outbox_name(subject: str, now: datetime | None = None) -> str:
    """`20261122T070005.123456Z-000001-3fa2c1-errors-courses-txt-course-store.eml`.

    Sorts by creation time (then by a per-process counter); the random part keeps two processes
    writing in the same microsecond apart.
    """
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    with _sequence_lock:
        number = next(_sequence)
    return f"{moment:%Y%m%dT%H%M%S.%f}Z-{number:06d}-{secrets.token_hex(3)}-{_slug(subject)}.eml"


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder, fsync, rename: a reader never sees half a message."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)


def written_at(name: str) -> datetime | None:
    """When a message was written, from its outbox name (mtime would change on a copy or a restore)."""
    try:
        return datetime.strptime(name[:22], STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def prune_outbox(outbox_dir: Path, retention_days: float, now: datetime) -> int:
    """Delete the file transport's messages older than `retention_days` (by the time in their name);
    returns how many. Only `.eml` files directly in the outbox: the spool's folders (unsent/, gave-up/,
    unconfirmed/) hold reports that never reached anyone and are never deleted here."""
    cutoff = now - timedelta(days=retention_days)
    removed = 0
    with os.scandir(outbox_dir) as entries:
        for entry in entries:
            written = written_at(entry.name)
            if not entry.name.endswith(".eml") or written is None or written >= cutoff:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("outbox retention: could not delete %s (%s)", entry.path, exc.strerror or exc)
                continue
            removed += 1
    return removed


def tls_context(verify: bool | str) -> ssl.SSLContext:
    """Verifying by default; a CA bundle path trusts a private CA; False turns checking off."""
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise MailError(
                f"the CA bundle {verify} (verify_tls in [email]) cannot be used: {exc}; "
                "point verify_tls at a PEM file with the certificate authority of the mail server"
            ) from None
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Mailer:
    """Sends a RenderedEmail with the configured transport (`smtp`, `file` or `none`)."""

    def __init__(
        self,
        settings: EmailSettings,
        outbox_dir: Path,
        *,
        retry: RetryPolicy = MAIL_RETRY,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.outbox_dir = outbox_dir
        self.retry = retry
        self.clock = clock
        self._next_prune = -math.inf  # the first message written prunes the outbox

    @property
    def server(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- sending --------------------------------------------------------------------------------

    def send(self, rendered: RenderedEmail) -> Path | None:
        """Deliver one message now; returns the `.eml` path for the file transport. Raises MailError.

        Reports do not come this way for SMTP: they go through the mail spool (`agent.spool`), which
        keeps them until the server accepted them. This is for `check --send-test-email`.
        """
        transport = self.settings.transport
        if transport == "none":
            return None
        message = build_message(rendered, self.settings)
        if transport == "file":
            return self.write_outbox(message)
        if transport == "smtp":
            self.require_recipients()
            self._send_with_retry(message.as_bytes(policy=SMTP_POLICY))
            return None
        raise MailError(f"unknown email transport '{transport}'; use smtp, file or none in [email]")

    def write_outbox(self, message: EmailMessage) -> Path:
        """The file transport: the `.eml` lands in the outbox whole (written aside, then renamed).

        At most once an hour, messages older than `outbox_retention_days` are deleted from the outbox
        first: a daemon writing a report per file would otherwise fill the disk over the years."""
        path = self.outbox_dir / outbox_name(str(message["Subject"]))
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            self._prune_now_and_then()
            write_atomically(path, message.as_bytes(policy=SMTP_POLICY))
        except OSError as exc:
            raise MailError(
                f"cannot write to the outbox {self.outbox_dir}: {exc.strerror or exc}; "
                "check that the agent's user may write there"
            ) from None
        return path

    def _prune_now_and_then(self) -> None:
        days = self.settings.outbox_retention_days
        if days <= 0 or self.clock.monotonic() < self._next_prune:
            return
        self._next_prune = self.clock.monotonic() + PRUNE_EVERY_SECONDS
        removed = prune_outbox(self.outbox_dir, days, self.clock.now())
        if removed:
            log.info(
                "outbox retention: deleted %d report(s) older than %g days from %s", removed, days, self.outbox_dir
            )

    def require_recipients(self) -> None:
        if not self.settings.to:
            raise MailError("no recipients: set 'to' in [email] (comma-separated addresses)")

    def _send_with_retry(self, data: bytes) -> None:
        def deliver() -> None:
            with self.session() as smtp:
                self.transmit(smtp, data)

        try:
            retrying(deliver, self.retry, what="mail delivery", clock=self.clock)
        except MailError as exc:
            if exc.retryable and self.retry.attempts > 1:
                raise MailError(f"{exc} (gave up after {self.retry.attempts} attempts)", retryable=True) from None
            raise

    def transmit(self, smtp: smtplib.SMTP, data: bytes) -> None:
        """One message over an open session: MAIL, RCPT, DATA, the body, then the final '.'.

        Done by hand rather than with `sendmail` to tell the one doubtful case apart: a server that
        never answers the final '.' raises MailUnconfirmed (it may have the message); every other
        failure means the server does not have it, so the mail spool may simply send it again.
        """
        try:
            self._envelope(smtp, data)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, reply)
            body = re.sub(rb"(?m)^\.", b"..", data)  # dot-stuffing (RFC 5321 4.5.2)
            smtp.send(body if body.endswith(b"\r\n") else body + b"\r\n")
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            details = "; ".join(
                f"{addr}: {code} {self._scrub(reply)}" for addr, (code, reply) in exc.recipients.items()
            )
            raise MailError(
                f"mail server {self.server} refused every recipient ({details}); check 'to' in [email]",
                retryable=all(400 <= c < 500 for c in codes),
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self._explain(exc, "send") from None
        try:
            smtp.send(b".\r\n")
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            raise MailUnconfirmed(
                f"mail server {self.server} did not confirm a message it received in full "
                f"({self._explain(exc, 'send').message}); it may have been delivered",
                retryable=True,
            ) from None
        if code != 250:
            raise self._explain(smtplib.SMTPDataError(code, reply), "send") from None

    def _envelope(self, smtp: smtplib.SMTP, data: bytes) -> None:
        """MAIL FROM and RCPT TO; a recipient refused among others is logged, all refused raises."""
        settings = self.settings
        options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") and any(b > 127 for b in data) else []
        code, reply = smtp.mail(settings.from_addr, options)
        if code != 250:
            raise smtplib.SMTPSenderRefused(code, reply, settings.from_addr)
        refused: dict[str, tuple[int, bytes]] = {}
        for address in settings.to:
            code, reply = smtp.rcpt(address)
            if code not in (250, 251):
                refused[address] = (code, reply)
        if len(refused) == len(settings.to):
            raise smtplib.SMTPRecipientsRefused(refused)
        if refused:
            log.warning(
                "mail server %s refused some recipients: %s",
                self.server,
                ", ".join(f"{addr} ({code})" for addr, (code, _) in refused.items()),
            )

    @contextmanager
    def session(self) -> Iterator[smtplib.SMTP]:
        """An open, secured and (if a username is set) logged-in SMTP session; always closed."""
        smtp = self._connect()
        try:
            self._secure_and_login(smtp)
            yield smtp
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        try:
            if settings.security == "ssl":
                return smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout_seconds,
                    context=tls_context(settings.verify_tls),
                )
            return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._explain(exc, "connect") from None

    def _secure_and_login(self, smtp: smtplib.SMTP) -> None:
        settings = self.settings
        phase = "ehlo"
        try:
            smtp.ehlo()
            if settings.security == "starttls":
                phase = "starttls"
                smtp.starttls(context=tls_context(settings.verify_tls))
                smtp.ehlo()
            if settings.username:
                phase = "login"
                password = settings.password.reveal() if settings.password else ""
                smtp.login(settings.username.reveal(), password)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._explain(exc, phase) from None

    # -- explaining failures -----------------------------------------------------------------------

    def _scrub(self, text: object) -> str:
        """Server replies as text, with the SMTP username and password replaced by ***."""
        value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        for secret in (self.settings.username, self.settings.password):
            if secret and len(secret.reveal()) >= 3:
                value = value.replace(secret.reveal(), "***")
        return value.strip()

    def _explain(self, exc: BaseException, phase: str) -> MailError:
        """Turn an smtplib / socket / ssl error into words an admin can act on."""
        server, settings = self.server, self.settings
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or "certificate not trusted"
            return MailError(
                f"TLS verification failed for mail server {server}: {reason}. If the server uses a private "
                "certificate authority, set verify_tls = /path/to/ca-bundle.pem in [email]; if the name does "
                "not match, set host to a name the certificate lists (verify_tls = no turns the check off, "
                "not recommended)"
            )
        if isinstance(exc, ssl.SSLError):
            return MailError(
                f"TLS handshake with mail server {server} failed ({exc.reason or exc}). With security = ssl "
                "the port must speak TLS from the start (usually 465); for port 587 use security = starttls"
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            if phase == "starttls":
                return MailError(
                    f"mail server {server} does not offer STARTTLS; use security = ssl (usually port "
                    "465), or security = none only on a trusted network"
                )
            return MailError(
                f"mail server {server} does not offer AUTH (login) here. Many servers offer it only "
                "after STARTTLS (security = starttls); if this relay needs no login, leave username "
                "and password empty in [email]"
            )
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return MailError(
                f"AUTH rejected by mail server {server} ({exc.smtp_code} "
                f"{self._scrub(exc.smtp_error)}): the username or password is wrong; check "
                "SMTP_USERNAME and SMTP_PASSWORD in .env"
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._explain_reply(exc.smtp_code, self._scrub(exc.smtp_error), phase)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return MailError(
                f"mail server {server} closed the connection unexpectedly ({self._scrub(exc)})",
                retryable=True,
            )
        if isinstance(exc, ConnectionRefusedError):
            return MailError(
                f"connection refused: nothing accepts connections on {server}; check host and port "
                "in [email] (587 for starttls, 465 for ssl, 25 for none)",
                retryable=True,
            )
        if isinstance(exc, socket.gaierror):
            return MailError(
                f"mail server name {settings.host} cannot be resolved ({exc.strerror}); check host in [email]",
                retryable=True,
            )
        if isinstance(exc, TimeoutError):
            return MailError(
                f"mail server {server} did not answer within {settings.timeout_seconds:g} s; a "
                f"firewall may block port {settings.port}",
                retryable=True,
            )
        if isinstance(exc, OSError):
            return MailError(f"cannot talk to mail server {server}: {exc.strerror or exc}", retryable=True)
        return MailError(f"mail server {server} failed: {self._scrub(exc)}")

    def _explain_reply(self, code: int, reply: str, phase: str) -> MailError:
        server = self.server
        if code == 530 and "starttls" in reply.lower():
            return MailError(f"mail server {server} requires STARTTLS ({code} {reply}); set security = starttls")
        if code == 530:
            return MailError(
                f"mail server {server} requires a login ({code} {reply}); set username and password in [email]"
            )
        if 400 <= code < 500:
            return MailError(
                f"mail server {server} answered {code} {reply} (temporary, during {phase})", retryable=True
            )
        return MailError(f"mail server {server} refused the message during {phase}: {code} {reply}")

    # -- feed-agent check ----------------------------------------------------------------------------

    def check(self, send_test: bool = False) -> list[CheckResult]:
        """Reach the mail destination with the configured settings; say precisely what is wrong."""
        transport = self.settings.transport
        if transport == "none":
            return [CheckResult("email", True, "email disabled (transport = none)")]
        results = [self._check_outbox() if transport == "file" else self._check_server()]
        if send_test and results[0].ok:
            results.append(self._send_test())
        return results

    def _check_outbox(self) -> CheckResult:
        item = f"email outbox {self.outbox_dir}"
        probe = self.outbox_dir / f".write-test-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            self.outbox_dir.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            return CheckResult(
                item,
                False,
                f"not writable: {exc.strerror or exc}; check that the agent's user may write there",
            )
        return CheckResult(item, True, "writable (transport = file: messages are saved as .eml files)")

    def _check_server(self) -> CheckResult:
        item = f"mail server {self.server}"
        try:
            with self.session():
                pass
        except MailError as exc:
            return CheckResult(item, False, str(exc))
        steps = {"starttls": "connected, STARTTLS", "ssl": "connected over TLS", "none": "connected (no TLS)"}
        detail = steps.get(self.settings.security, "connected")
        if self.settings.security != "none":
            detail += ", certificate verified" if self.settings.verify_tls else ", certificate NOT verified"
        if self.settings.username:
            detail += ", logged in"
        return CheckResult(item, True, detail)

    def _send_test(self) -> CheckResult:
        recipients = ", ".join(self.settings.to) or "(no recipients)"
        item = f"test email to {recipients}"
        host = socket.gethostname()
        text = (
            f"This is a test message from feed-agent on {host}, sent by 'feed-agent check "
            "--send-test-email'.\nIf you can read it, reports will reach you. Nothing needs doing.\n"
        )
        html = (
            f"<p>This is a test message from feed-agent on {_escape(host)}, sent by "
            "<code>feed-agent check --send-test-email</code>.</p>"
            "<p>If you can read it, reports will reach you. Nothing needs doing.</p>"
        )
        rendered = RenderedEmail(subject=f"{SUBJECT_PREFIX} Test email from {host}", text=text, html=html)
        try:
            path = self.send(rendered)
        except MailError as exc:
            return CheckResult(item, False, str(exc))
        return CheckResult(item, True, f"written to {path}" if path else "sent")


def _escape(text: str) -> str:
    import html

    return html.escape(text)
