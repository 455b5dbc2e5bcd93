"""The INI file (plus `.env`) turned into the frozen, validated settings of `agent.settings`.

Why so strict: the agent runs unattended for months, so a typo must fail loudly at start, in words
that name the file, the section and the key, and say what is allowed. Secrets are only ever read
from the environment (or the `.env` file) through `${NAME}`. Defaults are not written here: they are
read from the settings dataclasses, so each one exists once.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from agent.decoding import ROUTE_ENCODINGS
from agent.errors import ConfigError
from agent.feeds import FEED_TYPES, LEARN_DELIMITERS
from agent.ini import IniFile, Section
from agent.settings import (
    ADD_BOM,
    LOG_LEVELS,
    OBSERVERS,
    ON_FAILURE,
    OPERATIONS,
    PER_FILE,
    SECURITY,
    TARGET_TYPES,
    TRANSPORTS,
    AgentSettings,
    Config,
    EmailSettings,
    HeartbeatSettings,
    JobTargetSettings,
    LearnTargetSettings,
    RouteSettings,
    S3TargetSettings,
    Secret,
    TargetSettings,
    WebhookSettings,
    default,
)
from agent.targets.s3keys import template_fields

CONFIG_ENV_VAR = "FEED_AGENT_CONFIG"
DEFAULT_WORK_DIR = "../var"  # relative to the INI file's folder
DEFAULT_ENV_FILE = "../.env"


def _defaults(settings_class: type[Any]) -> dict[str, Any]:
    """Every field default of a settings dataclass, by name."""
    return {item.name: default(settings_class, item.name) for item in fields(settings_class) if _has_default(item)}


def _has_default(item: Field[Any]) -> bool:
    return item.default is not MISSING or item.default_factory is not MISSING


# ----------------------------------------------------------------------------------------------
# Loading


def default_config_path() -> Path:
    """`$FEED_AGENT_CONFIG`, else `conf/agent.ini` of this install, else `/etc/feed-agent`."""
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    beside_code = Path(__file__).resolve().parent.parent / "conf" / "agent.ini"
    if beside_code.exists():
        return beside_code
    system = Path("/etc/feed-agent/agent.ini")
    return system if system.exists() else beside_code


AGENT_KEYS = (
    "work_dir",
    "settle_seconds",
    "batch_window_seconds",
    "batch_max_wait_seconds",
    "observer",
    "rescan_seconds",
    "ready_suffix",
    "ignore",
    "archive_retention_days",
    "env_file",
    "retry_first_seconds",
    "retry_max_seconds",
)
ROUTE_KEYS = ("watch", "target", "operation", "object", "on_failure", "expect_every_hours", "encoding")
LEARN_KEYS = (
    "type",
    "url",
    "integration",
    "username",
    "password",
    "verify_tls",
    "poll_initial_seconds",
    "poll_max_seconds",
    "timeout_minutes",
    "long_run_minutes",
    "refresh_guard_percent",
    "delete_guard_rows",
    "store_warn_percent",
    "add_bom",
    "read_timeout_seconds",
    "delimiter",
    "rest_key",
    "rest_secret",
    "rest_url",
    "log_level",
    "log_wait_minutes",
)
S3_KEYS = (
    "type",
    "bucket",
    "prefix",
    "region",
    "key",
    "access_key_id",
    "secret_access_key",
    "endpoint_url",
    "verify_tls",
    "multipart_threshold_mb",
)
JOB_KEYS = (*S3_KEYS, "job_url", "job", "api_key", "notify_email", "notify_webhook", "notify_within_hours")
EMAIL_KEYS = (
    "transport",
    "host",
    "port",
    "security",
    "username",
    "password",
    "from",
    "to",
    "per_file",
    "summary",
    "templates_dir",
    "timeout_seconds",
    "verify_tls",
    "max_message_mb",
    "give_up_hours",
    "outbox_retention_days",
)
HEARTBEAT_KEYS = ("url",)
WEBHOOK_KEYS = ("listen", "public_url")


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate the configuration; raise ConfigError with a fix-it message."""
    config_path = Path(path) if path is not None else default_config_path()
    loader = IniFile(config_path, environ)
    _check_sections(loader)

    agent_raw = loader.section("agent", AGENT_KEYS)
    loader.load_env(agent_raw.path("env_file", DEFAULT_ENV_FILE), explicit=agent_raw.has("env_file"))
    agent = _agent(agent_raw)
    targets = {name: _target(loader, name) for name in _named(loader, "target")}
    routes = tuple(_route(loader, name, targets) for name in _named(loader, "route"))
    _check_route_folders(loader, routes)
    email = _email(loader.section("email", EMAIL_KEYS))
    heartbeat = HeartbeatSettings(url=loader.section("heartbeat", HEARTBEAT_KEYS).url("url", required=False))
    webhook = _webhook(loader.section("webhook", WEBHOOK_KEYS))
    _check_static_webhooks(loader, targets, webhook)
    return Config(
        path=config_path,
        agent=agent,
        routes=routes,
        targets=targets,
        email=email,
        heartbeat=heartbeat,
        webhook=webhook,
    )


def _check_sections(loader: IniFile) -> None:
    fixed = ("agent", "email", "heartbeat", "webhook")
    for name in loader.parser.sections():
        if name in fixed or re.fullmatch(r"(route|target):[A-Za-z0-9_.-]+", name):
            continue
        hint = difflib.get_close_matches(name, [*fixed, "route:NAME", "target:NAME"], n=1)
        suggestion = f"; did you mean [{hint[0]}]?" if hint else ""
        raise ConfigError(
            f"{loader.path} [{name}]: unknown section{suggestion} "
            "(allowed: [agent], [route:NAME], [target:NAME], [email], [heartbeat], [webhook])"
        )


def _named(loader: IniFile, kind: str) -> list[str]:
    return [s.split(":", 1)[1] for s in loader.parser.sections() if s.startswith(kind + ":")]


def _agent(s: Section) -> AgentSettings:
    d = _defaults(AgentSettings)
    window = s.number("batch_window_seconds", d["batch_window_seconds"], unit="seconds")
    ignore_text = s.text("ignore", ", ".join(d["ignore"]))
    max_wait = max(d["batch_max_wait_seconds"], window * 10)
    first_retry = s.number("retry_first_seconds", d["retry_first_seconds"], unit="seconds", minimum=0.01)
    return AgentSettings(
        work_dir=s.path("work_dir", DEFAULT_WORK_DIR) or s.loader.resolve(DEFAULT_WORK_DIR),
        settle_seconds=s.number("settle_seconds", d["settle_seconds"], unit="seconds"),
        batch_window_seconds=window,
        batch_max_wait_seconds=s.number("batch_max_wait_seconds", max_wait, unit="seconds"),
        observer=s.choice("observer", OBSERVERS, d["observer"]),
        rescan_seconds=s.number("rescan_seconds", d["rescan_seconds"], unit="seconds", minimum=0.1),
        ready_suffix=s.text("ready_suffix", d["ready_suffix"]),
        ignore=tuple(p.strip() for p in ignore_text.split(",") if p.strip()),
        archive_retention_days=s.number("archive_retention_days", d["archive_retention_days"], unit="days"),
        env_file=s.loader.env_file,
        retry_first_seconds=first_retry,
        retry_max_seconds=max(first_retry, s.number("retry_max_seconds", d["retry_max_seconds"], unit="seconds")),
    )


def _route(loader: IniFile, name: str, targets: Mapping[str, TargetSettings]) -> RouteSettings:
    s = loader.section(f"route:{name}", ROUTE_KEYS)
    target = s.text("target", required=True)
    if target not in targets:
        known = ", ".join(sorted(targets)) or "none defined"
        raise s.error("target", f"no [target:{target}] section (targets: {known})")
    obj = s.text("object").lower() or None
    if obj is not None and obj not in FEED_TYPES:
        hint = difflib.get_close_matches(obj, sorted(FEED_TYPES), n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        raise s.error("object", f"'{obj}' is not a Learn object type{suggestion}")
    encoding = s.choice("encoding", ROUTE_ENCODINGS, default(RouteSettings, "encoding"))
    if encoding != "utf-8" and targets[target].type != "learn":
        raise s.error("encoding", "applies to Learn targets only (S3 and job files are checked as UTF-8 CSV)")
    return RouteSettings(
        name=name,
        watch=s.path("watch") or _missing(s, "watch"),
        target=target,
        operation=s.choice("operation", OPERATIONS, default(RouteSettings, "operation")),
        object=obj,
        on_failure=s.choice("on_failure", ON_FAILURE, default(RouteSettings, "on_failure")),
        expect_every_hours=s.optional_number("expect_every_hours", unit="hours"),
        encoding=encoding,
    )


def _missing(s: Section, key: str) -> Path:
    raise s.error(key, "is required but missing or empty")


def _check_route_folders(loader: IniFile, routes: tuple[RouteSettings, ...]) -> None:
    seen: dict[Path, str] = {}
    for route in routes:
        if route.watch in seen:
            raise ConfigError(
                f"{loader.path} [route:{route.name}] watch: {route.watch} is already watched by "
                f"[route:{seen[route.watch]}]; each route needs its own folder"
            )
        seen[route.watch] = route.name


def _target(loader: IniFile, name: str) -> TargetSettings:
    section_name = f"target:{name}"
    raw_type = loader.parser[section_name].get("type", "").strip().lower()
    if raw_type not in TARGET_TYPES:
        where = f"{loader.path} [{section_name}] type"
        raise ConfigError(f"{where}: '{raw_type}' is not allowed; use one of: {', '.join(TARGET_TYPES)}")
    if raw_type == "learn":
        return _learn(loader.section(section_name, LEARN_KEYS), name)
    if raw_type == "s3":
        s = loader.section(section_name, S3_KEYS)
        return S3TargetSettings(name=name, **_s3_fields(s, S3TargetSettings))
    s = loader.section(section_name, JOB_KEYS)
    job_url = s.url("job_url", required=True)
    return JobTargetSettings(
        name=name,
        **_s3_fields(s, JobTargetSettings),
        job_url=job_url,
        job=s.text("job", default(JobTargetSettings, "job")),
        api_key=s.secret("api_key", required=True),
        notify_email=s.optional_text("notify_email"),
        notify_webhook=s.url("notify_webhook", required=False) or None,
        notify_within_hours=s.number(
            "notify_within_hours", default(JobTargetSettings, "notify_within_hours"), unit="hours", minimum=0.0001
        ),
    )


def _percent(s: Section, key: str, default: float) -> float:
    value = s.number(key, default, unit="percent")
    if value > 100:
        raise s.error(key, f"{value:g} is out of range (0 to 100)")
    return value


def _webhook(s: Section) -> WebhookSettings:
    """`listen` is host:port (port 0: any free one); `public_url` an http(s) URL without a query."""
    listen = s.text("listen")
    if listen:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise s.error("listen", f"'{listen}' is not host:port (e.g. 127.0.0.1:8787)")
    public_url = s.url("public_url", required=False).rstrip("/")
    if public_url and not listen:
        raise s.error(
            "listen", "is empty but public_url is set; set listen (e.g. 127.0.0.1:8787) to receive notifications"
        )
    if "?" in public_url or "#" in public_url:
        raise s.error("public_url", f"'{public_url}' has a query or fragment; give the base address only")
    return WebhookSettings(listen=listen, public_url=public_url)


def _check_static_webhooks(loader: IniFile, targets: Mapping[str, TargetSettings], webhook: WebhookSettings) -> None:
    """With [webhook] on, each job gets its own URL: a fixed notify_webhook would be silently ignored."""
    if not webhook.enabled:
        return
    for name, settings in targets.items():
        if isinstance(settings, JobTargetSettings) and settings.notify_webhook:
            raise ConfigError(
                f"{loader.path} [target:{name}] notify_webhook: remove it; with [webhook] listen set, "
                "feed-agent gives each job its own notification URL"
            )


def _learn(s: Section, name: str) -> LearnTargetSettings:
    d = _defaults(LearnTargetSettings)
    initial = s.number("poll_initial_seconds", d["poll_initial_seconds"], unit="seconds", minimum=0.01)
    maximum = s.number("poll_max_seconds", d["poll_max_seconds"], unit="seconds", minimum=0.01)
    if maximum < initial:
        raise s.error("poll_max_seconds", f"{maximum:g} is below poll_initial_seconds ({initial:g})")
    integration = s.text("integration", required=True)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", integration):
        raise s.error("integration", f"'{integration}' is not an integration id (e.g. BBLEARN or BB5bfc25366f037)")
    guard = _percent(s, "refresh_guard_percent", d["refresh_guard_percent"])
    return LearnTargetSettings(
        name=name,
        url=s.url("url", required=True),
        integration=integration,
        username=s.secret("username", required=True, plain_ok=True),
        password=s.secret("password", required=True),
        verify_tls=s.verify("verify_tls"),
        poll_initial_seconds=initial,
        poll_max_seconds=maximum,
        timeout_minutes=s.number("timeout_minutes", d["timeout_minutes"], unit="minutes", minimum=0.001),
        long_run_minutes=s.number("long_run_minutes", d["long_run_minutes"], unit="minutes"),
        refresh_guard_percent=guard,
        delete_guard_rows=s.integer("delete_guard_rows", d["delete_guard_rows"], low=0, high=10**9),
        store_warn_percent=_percent(s, "store_warn_percent", d["store_warn_percent"]),
        add_bom=s.choice("add_bom", ADD_BOM, d["add_bom"]),
        read_timeout_seconds=s.number("read_timeout_seconds", d["read_timeout_seconds"], unit="seconds", minimum=1.0),
        delimiter=s.choice("delimiter", tuple(LEARN_DELIMITERS), d["delimiter"]),
        **_learn_rest(s, d),
    )


def _learn_rest(s: Section, d: dict[str, Any]) -> dict[str, Any]:
    """The optional REST application that reads Learn's record-level log: both keys or neither."""
    key = s.secret("rest_key", required=False) if s.has("rest_key") else Secret("")
    secret = s.secret("rest_secret", required=False) if s.has("rest_secret") else Secret("")
    if bool(key) != bool(secret):
        missing = "rest_secret" if key else "rest_key"
        raise s.error(missing, "is empty but the other REST key is set; set both in .env (or neither)")
    return {
        "rest_key": key,
        "rest_secret": secret,
        "rest_url": s.url("rest_url", required=False) or "",
        "log_level": s.choice("log_level", LOG_LEVELS, d["log_level"]),
        "log_wait_minutes": s.number("log_wait_minutes", d["log_wait_minutes"], unit="minutes"),
    }


def _s3_fields(s: Section, settings_class: type[S3TargetSettings | JobTargetSettings]) -> dict[str, Any]:
    d = _defaults(settings_class)
    bucket = s.text("bucket", required=True)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise s.error("bucket", f"'{bucket}' is not a valid S3 bucket name (3-63 lowercase letters, digits, . or -)")
    key = s.text("key", d["key"])
    try:
        template_fields(key)
    except ValueError as exc:
        raise s.error("key", str(exc)) from None
    prefix = s.text("prefix").lstrip("/")
    return {
        "bucket": bucket,
        "prefix": prefix,
        "region": s.text("region", d["region"]),
        "key": key,
        "access_key_id": s.secret("access_key_id", required=True, plain_ok=True),
        "secret_access_key": s.secret("secret_access_key", required=True),
        "endpoint_url": s.url("endpoint_url", required=False) or None,
        "verify_tls": s.verify("verify_tls"),
        "multipart_threshold_mb": s.number(
            "multipart_threshold_mb", d["multipart_threshold_mb"], unit="MiB", minimum=5.0
        ),
    }


def _email(s: Section) -> EmailSettings:
    d = _defaults(EmailSettings)
    transport = s.choice("transport", TRANSPORTS, d["transport"])
    security = s.choice("security", SECURITY, d["security"])
    username = s.secret("username", required=False, plain_ok=True) if s.has("username") else None
    password = s.secret("password", required=False) if s.has("password") else None
    host = s.text("host")
    recipients = tuple(a.strip() for a in re.split(r"[,;]", s.text("to")) if a.strip())
    if transport == "smtp":
        if not host:
            raise s.error("host", "is required when transport = smtp")
        if not recipients:
            raise s.error("to", "is required when transport = smtp (comma-separated addresses)")
        if username and not password:
            raise s.error("password", "is empty but a username is set; set it in .env")
    for address in recipients:
        if "@" not in address:
            raise s.error("to", f"'{address}' is not an email address")
    default_port = {"ssl": 465, "starttls": d["port"], "none": 25}[security]
    return EmailSettings(
        transport=transport,
        host=host,
        port=s.integer("port", default_port, low=1, high=65535),
        security=security,
        username=username if username else None,
        password=password if password else None,
        from_addr=s.text("from", d["from_addr"]),
        to=recipients,
        per_file=_per_file(s, d["per_file"]),
        summary=s.flag("summary", d["summary"]),
        templates_dir=s.path("templates_dir"),
        timeout_seconds=s.number("timeout_seconds", d["timeout_seconds"], unit="seconds", minimum=1.0),
        verify_tls=s.verify("verify_tls"),
        max_message_mb=s.number("max_message_mb", d["max_message_mb"], unit="MB", minimum=0.1),
        give_up_hours=s.number("give_up_hours", d["give_up_hours"], unit="hours", minimum=0.01),
        outbox_retention_days=s.number("outbox_retention_days", d["outbox_retention_days"], unit="days"),
    )


def _per_file(s: Section, default_value: str) -> str:
    """`yes` / `no` (with the synonyms every flag takes), or `problems`: only files that need attention."""
    value = s.text("per_file", default_value).lower()
    if value in PER_FILE:
        return value
    if value in ("true", "on", "1"):
        return "yes"
    if value in ("false", "off", "0"):
        return "no"
    raise s.error("per_file", f"'{value}' is not allowed; use one of: {', '.join(PER_FILE)}")
