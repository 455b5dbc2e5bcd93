"""The settings the rest of the agent reads: frozen dataclasses, each default written once, here.

Loading them from the INI file and `.env` is `agent.config`'s job; everything else imports only
these types, so reading a setting never drags in the parser. Secrets are wrapped in
:class:`Secret`, so a stray `repr`, log line or traceback shows `***` instead of a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

OPERATIONS = ("store", "refresh", "refreshlegacy", "delete")
OBSERVERS = ("auto", "native", "polling")
ON_FAILURE = ("hold", "continue")
TARGET_TYPES = ("learn", "s3", "job")
TRANSPORTS = ("smtp", "file", "none")
SECURITY = ("starttls", "ssl", "none")
PER_FILE = ("yes", "no", "problems")  # problems: only files that did not end SUCCESS get their own email
ADD_BOM = ("auto", "yes", "no")
LOG_LEVELS = ("error", "warning")


class Secret:
    """A credential that never shows itself by accident.

    `str()` and `repr()` give `***`; only :meth:`reveal` returns the value, so every place that
    really sends a secret over the wire is easy to find with grep.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class AgentSettings:
    work_dir: Path
    settle_seconds: float = 10.0
    batch_window_seconds: float = 30.0
    batch_max_wait_seconds: float = 300.0
    observer: str = "auto"
    rescan_seconds: float = 60.0
    ready_suffix: str = ""
    ignore: tuple[str, ...] = (".*", "*.tmp", "*.part", "~*")
    archive_retention_days: float = 0.0
    env_file: Path | None = None
    # A step that keeps failing (a folder that cannot be written, a full disk) waits this long after
    # its first failure, twice as long after each next one, at most retry_max_seconds.
    retry_first_seconds: float = 5.0
    retry_max_seconds: float = 300.0

    @property
    def processing_dir(self) -> Path:
        return self.work_dir / "processing"

    @property
    def archive_dir(self) -> Path:
        return self.work_dir / "archive"

    @property
    def failed_dir(self) -> Path:
        return self.work_dir / "failed"

    @property
    def outbox_dir(self) -> Path:
        return self.work_dir / "outbox"

    @property
    def keysets_dir(self) -> Path:
        """The guards' state: each refresh feed's last key set, pending ones, held files' key lists."""
        return self.work_dir / "keysets"

    @property
    def journal_path(self) -> Path:
        return self.work_dir / "journal.sqlite3"


@dataclass(frozen=True)
class RouteSettings:
    name: str
    watch: Path
    target: str
    operation: str = "store"
    object: str | None = None
    on_failure: str = "hold"
    expect_every_hours: float | None = None
    encoding: str = "utf-8"  # how Learn should read files without a byte-order mark: utf-8 | latin-1


@dataclass(frozen=True)
class LearnTargetSettings:
    name: str
    url: str
    integration: str
    username: Secret
    password: Secret
    verify_tls: bool | str = True
    poll_initial_seconds: float = 5.0
    poll_max_seconds: float = 60.0
    timeout_minutes: float = 120.0
    long_run_minutes: float = 30.0
    refresh_guard_percent: float = 10.0
    delete_guard_rows: int = 100  # a delete file with more rows is held for an admin to confirm
    store_warn_percent: float = 50.0  # a store below this share of the feed's usual size is flagged
    add_bom: str = "auto"
    read_timeout_seconds: float = 300.0  # for Learn's answer to an upload; then the file is UNCONFIRMED
    delimiter: str = "pipe"  # the integration's "Feed File Delimiter" in Learn (pipe is Learn's default)
    rest_key: Secret = field(default_factory=lambda: Secret(""))  # REST application: record-level log
    rest_secret: Secret = field(default_factory=lambda: Secret(""))
    rest_url: str = ""  # empty: the target's url
    log_level: str = "warning"  # error | warning: the lowest level of log entries fetched
    log_wait_minutes: float = 10.0  # how long a 423 Locked log is waited out
    type: str = "learn"

    @property
    def rest_enabled(self) -> bool:
        """Record details are fetched only when both REST credentials are configured."""
        return bool(self.rest_key) and bool(self.rest_secret)


@dataclass(frozen=True)
class S3TargetSettings:
    name: str
    bucket: str
    access_key_id: Secret
    secret_access_key: Secret
    prefix: str = ""
    region: str = "eu-central-1"
    key: str = "{date:%Y%m%d}_{name}"
    endpoint_url: str | None = None
    verify_tls: bool | str = True
    multipart_threshold_mb: float = 8.0
    type: str = "s3"


@dataclass(frozen=True)
class JobTargetSettings:
    name: str
    bucket: str
    access_key_id: Secret
    secret_access_key: Secret
    job_url: str
    api_key: Secret
    prefix: str = ""
    region: str = "eu-central-1"
    key: str = "{name}"
    endpoint_url: str | None = None
    verify_tls: bool | str = True
    multipart_threshold_mb: float = 8.0
    job: str = "{stem}"
    notify_email: str | None = None
    notify_webhook: str | None = None
    notify_within_hours: float = 3.0  # the dead-man's switch: NOT NOTIFIED when AlumnIQ stays silent this long
    type: str = "job"


TargetSettings = LearnTargetSettings | S3TargetSettings | JobTargetSettings


@dataclass(frozen=True)
class EmailSettings:
    transport: str = "file"
    host: str = ""
    port: int = 587
    security: str = "starttls"
    username: Secret | None = None
    password: Secret | None = None
    from_addr: str = "feed-agent@localhost"
    to: tuple[str, ...] = ()
    per_file: str = "yes"  # one of PER_FILE
    summary: bool = True
    templates_dir: Path | None = None
    timeout_seconds: float = 30.0
    verify_tls: bool | str = True  # yes | no | path of a CA bundle for a private mail relay
    max_message_mb: float = 10.0  # many campus mail systems refuse bigger messages
    give_up_hours: float = 72.0  # an unsent report is retried this long, then set aside (outbox/gave-up)
    outbox_retention_days: float = 30.0  # transport = file: older .eml files in outbox/ are deleted (0 keeps)


@dataclass(frozen=True)
class HeartbeatSettings:
    url: str = ""


@dataclass(frozen=True)
class WebhookSettings:
    """Where `watch` hears job notifications (`listen`, off when empty) and the address AlumnIQ calls.

    `public_url` is what goes into each job's notifyWebhook (e.g. the campus reverse proxy); empty
    means `http://{listen}` as bound, which suits a loopback test or a server AlumnIQ reaches directly.
    """

    listen: str = ""  # host:port; port 0 picks a free one (tests)
    public_url: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def address(self) -> tuple[str, int]:
        """`listen` as (host, port); config validation guarantees the shape."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Config:
    path: Path | None
    agent: AgentSettings
    routes: tuple[RouteSettings, ...] = ()
    targets: Mapping[str, TargetSettings] = field(default_factory=dict)
    email: EmailSettings = field(default_factory=EmailSettings)
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)

    def route(self, name: str | None = None) -> RouteSettings:
        """The named route, or the first one (the usual single-route install)."""
        if not self.routes:
            raise ConfigError(f"{self.path}: no [route:NAME] section; add one that names a watch folder")
        if name is None:
            return self.routes[0]
        for route in self.routes:
            if route.name == name:
                return route
        known = ", ".join(r.name for r in self.routes)
        raise ConfigError(f"{self.path}: no route named '{name}' (routes: {known})")

    def target_for(self, route: RouteSettings) -> TargetSettings:
        return self.targets[route.target]

    def secrets(self) -> list[str]:
        """Every non-empty secret value, for redaction filters and leak tests."""
        found: list[str] = []
        for settings in (*self.targets.values(), self.email):
            for value in vars(settings).values():
                if isinstance(value, Secret) and value:
                    found.append(value.reveal())
        return found


def default(settings_class: type[Any], name: str) -> Any:
    """The default of one field of a settings dataclass (so the loader never writes it a second time)."""
    for item in fields(settings_class):
        if item.name == name:
            if item.default is not MISSING:
                return item.default
            if item.default_factory is not MISSING:
                return item.default_factory()
            break
    raise KeyError(f"{settings_class.__name__}.{name} has no default")
