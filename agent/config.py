"""The INI file (plus `.env`) turned into the frozen, validated settings of `agent.settings`.

Why so strict: the agent runs unattended for months, so a typo must fail loudly at start, in words
that name the file, the section and the key, and say what is allowed. Secrets are only ever read
from the environment (or the `.env` file) through `${NAME}`. Defaults are not written here: they are
read from the settings dataclasses, so each one exists once.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from agent.errors import ConfigError
from agent.feeds import FEED_TYPES
from agent.settings import (
    ADD_BOM,
    OBSERVERS,
    ON_FAILURE,
    OPERATIONS,
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


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Section:
    """Typed access to one INI section that remembers which keys were read, for 'did you mean'."""

    def __init__(self, loader: _Loader, name: str, allowed: Iterable[str]) -> None:
        self.loader = loader
        self.name = name
        self.raw: Mapping[str, str] = loader.parser[name] if loader.parser.has_section(name) else {}
        self.allowed = set(allowed)
        unknown = [k for k in self.raw if k not in self.allowed]
        for key in unknown:
            hint = difflib.get_close_matches(key, sorted(self.allowed), n=1)
            suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
            allowed_list = ", ".join(sorted(self.allowed))
            raise self.error(key, f"unknown key{suggestion} (allowed here: {allowed_list})")

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.loader.path} [{self.name}] {key}: {message}")

    def has(self, key: str) -> bool:
        return bool(self.raw.get(key, "").strip())

    def text(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self.loader.substitute(self, key, self.raw.get(key, "")).strip()
        if not value:
            if required:
                raise self.error(key, "is required but missing or empty")
            return default
        return value

    def optional_text(self, key: str) -> str | None:
        return self.text(key) or None

    def secret(self, key: str, *, required: bool, plain_ok: bool = False) -> Secret:
        """A credential; passwords and keys must come through ${NAME} (plain_ok: a user name)."""
        raw = self.raw.get(key, "").strip()
        if raw and not plain_ok and not _VAR.search(raw):
            raise self.error(
                key,
                "secrets must not be written in the INI; write ${NAME} here and NAME=value in .env",
            )
        value = self.loader.substitute(self, key, raw)
        if required and not value:
            names = _VAR.findall(raw)
            where = f"set {names[0]} in {self.loader.env_hint()}" if names else "write ${NAME} here"
            raise self.error(key, f"is empty; {where}")
        return Secret(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(key, default).lower()
        if value not in allowed:
            raise self.error(key, f"'{value}' is not allowed; use one of: {', '.join(allowed)}")
        return value

    def number(self, key: str, default: float, *, unit: str, minimum: float = 0.0) -> float:
        value = self.text(key)
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            raise self.error(key, f"'{value}' is not a number of {unit} (decimals allowed, e.g. 0.25)") from None
        if number != number or number < minimum:  # NaN or too small
            raise self.error(key, f"{value} is out of range; it must be at least {minimum:g} {unit}")
        return number

    def optional_number(self, key: str, *, unit: str) -> float | None:
        if not self.text(key):
            return None
        return self.number(key, 0.0, unit=unit, minimum=0.0)

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.text(key)
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.error(key, f"'{value}' is not a whole number") from None
        if not low <= number <= high:
            raise self.error(key, f"{number} is out of range ({low} to {high})")
        return number

    def flag(self, key: str, default: bool) -> bool:
        value = self.text(key).lower()
        if not value:
            return default
        if value in ("yes", "true", "on", "1"):
            return True
        if value in ("no", "false", "off", "0"):
            return False
        raise self.error(key, f"'{value}' is not yes or no")

    def verify(self, key: str) -> bool | str:
        """`yes`/`no`, or the path of a CA bundle to trust (for a private certificate authority)."""
        value = self.text(key)
        if not value or value.lower() in ("yes", "true", "on", "1"):
            return True
        if value.lower() in ("no", "false", "off", "0"):
            return False
        path = self.loader.resolve(value)
        if not path.is_file():
            raise self.error(key, f"'{value}' is neither yes/no nor an existing CA bundle file")
        return str(path)

    def path(self, key: str, default: str | None = None) -> Path | None:
        value = self.text(key, default or "")
        return self.loader.resolve(value) if value else None

    def url(self, key: str, *, required: bool) -> str:
        value = self.text(key, required=required)
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise self.error(key, f"'{value}' is not an http(s) URL (e.g. https://learn.example.edu)")
        return value.rstrip("/")


class _Loader:
    def __init__(self, path: Path, environ: Mapping[str, str] | None) -> None:
        self.path = path
        self.base = path.resolve().parent
        self.parser = configparser.ConfigParser(
            interpolation=None, inline_comment_prefixes=(";", "#"), strict=True, default_section="\0"
        )
        try:
            with path.open(encoding="utf-8") as handle:
                self.parser.read_file(handle)
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found (install.sh creates conf/agent.ini)") from None
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read as an INI file: {exc}") from None
        self.env_file: Path | None = None
        self.environ: dict[str, str] = {}
        self._base_environ = dict(os.environ if environ is None else environ)

    def load_env(self, env_file: Path | None) -> None:
        """Values from `.env` first, the real environment on top (systemd and cron can override)."""
        self.env_file = env_file
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
        values.update(self._base_environ)
        self.environ = values

    def env_hint(self) -> str:
        return str(self.env_file) if self.env_file else "the environment"

    def substitute(self, section: _Section, key: str, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                raise section.error(key, f"${{{name}}} is not set; define {name} in {self.env_hint()}")
            return self.environ[name]

        return _VAR.sub(replace, value)

    def resolve(self, value: str) -> Path:
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else (self.base / path).resolve()

    def section(self, name: str, allowed: Iterable[str]) -> _Section:
        return _Section(self, name, allowed)


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
)
ROUTE_KEYS = ("watch", "target", "operation", "object", "on_failure", "expect_every_hours")
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
    "add_bom",
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
JOB_KEYS = (*S3_KEYS, "job_url", "job", "api_key", "notify_email", "notify_webhook")
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
)
HEARTBEAT_KEYS = ("url",)


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read, substitute and validate the configuration; raise ConfigError with a fix-it message."""
    config_path = Path(path) if path is not None else default_config_path()
    loader = _Loader(config_path, environ)
    _check_sections(loader)

    agent_raw = loader.section("agent", AGENT_KEYS)
    loader.load_env(agent_raw.path("env_file", DEFAULT_ENV_FILE))
    agent = _agent(agent_raw)
    targets = {name: _target(loader, name) for name in _named(loader, "target")}
    routes = tuple(_route(loader, name, targets) for name in _named(loader, "route"))
    _check_route_folders(loader, routes)
    email = _email(loader.section("email", EMAIL_KEYS))
    heartbeat = HeartbeatSettings(url=loader.section("heartbeat", HEARTBEAT_KEYS).url("url", required=False))
    return Config(path=config_path, agent=agent, routes=routes, targets=targets, email=email, heartbeat=heartbeat)


def _check_sections(loader: _Loader) -> None:
    fixed = ("agent", "email", "heartbeat")
    for name in loader.parser.sections():
        if name in fixed or re.fullmatch(r"(route|target):[A-Za-z0-9_.-]+", name):
            continue
        hint = difflib.get_close_matches(name, [*fixed, "route:NAME", "target:NAME"], n=1)
        suggestion = f"; did you mean [{hint[0]}]?" if hint else ""
        raise ConfigError(
            f"{loader.path} [{name}]: unknown section{suggestion} "
            "(allowed: [agent], [route:NAME], [target:NAME], [email], [heartbeat])"
        )


def _named(loader: _Loader, kind: str) -> list[str]:
    return [s.split(":", 1)[1] for s in loader.parser.sections() if s.startswith(kind + ":")]


def _agent(s: _Section) -> AgentSettings:
    d = _defaults(AgentSettings)
    window = s.number("batch_window_seconds", d["batch_window_seconds"], unit="seconds")
    ignore_text = s.text("ignore", ", ".join(d["ignore"]))
    max_wait = max(d["batch_max_wait_seconds"], window * 10)
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
    )


def _route(loader: _Loader, name: str, targets: Mapping[str, TargetSettings]) -> RouteSettings:
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
    return RouteSettings(
        name=name,
        watch=s.path("watch") or _missing(s, "watch"),
        target=target,
        operation=s.choice("operation", OPERATIONS, default(RouteSettings, "operation")),
        object=obj,
        on_failure=s.choice("on_failure", ON_FAILURE, default(RouteSettings, "on_failure")),
        expect_every_hours=s.optional_number("expect_every_hours", unit="hours"),
    )


def _missing(s: _Section, key: str) -> Path:
    raise s.error(key, "is required but missing or empty")


def _check_route_folders(loader: _Loader, routes: tuple[RouteSettings, ...]) -> None:
    seen: dict[Path, str] = {}
    for route in routes:
        if route.watch in seen:
            raise ConfigError(
                f"{loader.path} [route:{route.name}] watch: {route.watch} is already watched by "
                f"[route:{seen[route.watch]}]; each route needs its own folder"
            )
        seen[route.watch] = route.name


def _target(loader: _Loader, name: str) -> TargetSettings:
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
    )


def _learn(s: _Section, name: str) -> LearnTargetSettings:
    d = _defaults(LearnTargetSettings)
    initial = s.number("poll_initial_seconds", d["poll_initial_seconds"], unit="seconds", minimum=0.01)
    maximum = s.number("poll_max_seconds", d["poll_max_seconds"], unit="seconds", minimum=0.01)
    if maximum < initial:
        raise s.error("poll_max_seconds", f"{maximum:g} is below poll_initial_seconds ({initial:g})")
    integration = s.text("integration", required=True)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", integration):
        raise s.error("integration", f"'{integration}' is not an integration id (e.g. BBLEARN or BB5bfc25366f037)")
    guard = s.number("refresh_guard_percent", d["refresh_guard_percent"], unit="percent")
    if guard > 100:
        raise s.error("refresh_guard_percent", f"{guard:g} is out of range (0 to 100)")
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
        add_bom=s.choice("add_bom", ADD_BOM, d["add_bom"]),
    )


def _s3_fields(s: _Section, settings_class: type[S3TargetSettings | JobTargetSettings]) -> dict[str, Any]:
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


def _email(s: _Section) -> EmailSettings:
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
        per_file=s.flag("per_file", d["per_file"]),
        summary=s.flag("summary", d["summary"]),
        templates_dir=s.path("templates_dir"),
        timeout_seconds=s.number("timeout_seconds", d["timeout_seconds"], unit="seconds", minimum=1.0),
        verify_tls=s.verify("verify_tls"),
    )
