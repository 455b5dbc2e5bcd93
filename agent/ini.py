"""Typed, strict access to an INI file and its `.env`: every error names the file, the section and the key.

Why a module of its own: `agent.config` says *which* keys exist and what they become; this module says
*how* a value is read (numbers with units, choices, flags, paths relative to the file, URLs, CA
bundles) and how `${NAME}` is filled from `.env` and the environment. A secret must come through
`${NAME}`: one written in clear in the INI is refused.
"""

from __future__ import annotations

import configparser
import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.envfile import read_env_file
from agent.errors import ConfigError
from agent.settings import Secret

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Section:
    """Typed access to one INI section that remembers which keys were read, for 'did you mean'."""

    def __init__(self, loader: IniFile, name: str, allowed: Iterable[str]) -> None:
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
        """An http(s) URL. One that carries a user name or password (`https://user:pass@host`) is
        refused without being echoed: the URL is printed by `check`, logged and shown in reports,
        so a credential inside it would leak everywhere. Credentials go in their own keys, via ${NAME}."""
        value = self.text(key, required=required)
        if value and _has_credentials(value):
            raise self.error(
                key,
                "contains a user name or password (user:password@ before the host); the value is not "
                "shown here. Remove them from the URL and put them in their own keys (e.g. username and "
                "password = ${NAME} from .env)",
            )
        if value and not re.match(r"^https?://[^/\s]+", value):
            shown = "the value" if "@" in value else f"'{value}'"  # `user:pass@host` without a scheme
            raise self.error(key, f"{shown} is not an http(s) URL (e.g. https://learn.example.edu)")
        return value.rstrip("/")


def _has_credentials(url: str) -> bool:
    """True when the authority part (between `//` and the next `/`, `?` or `#`) has a `user@`."""
    authority = re.match(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)", url.strip())
    return authority is not None and "@" in authority.group(1)


class IniFile:
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
        _refuse_continuation_lines(path)
        self.env_file: Path | None = None
        self.env_file_missing = False
        self.environ: dict[str, str] = {}
        self._base_environ = dict(os.environ if environ is None else environ)

    def load_env(self, env_file: Path | None, *, explicit: bool = False) -> None:
        """Values from `.env` first (literally: see `agent.envfile`), the real environment on top
        (systemd and cron can override).

        An `env_file` named in [agent] that does not exist is a configuration error of its own: else
        every secret would be reported as an unset variable and the admin would look in the wrong place.
        The default `../.env` may be absent (the secrets can come from the environment alone)."""
        self.env_file = env_file
        values: dict[str, str] = {}
        if env_file is not None:
            if env_file.is_file():
                values = read_env_file(env_file)
            elif explicit:
                raise ConfigError(
                    f"{self.path} [agent] env_file: {env_file} does not exist; create it from "
                    "conf/.env.example (NAME=value lines, mode 600), or remove env_file to take the "
                    "variables from the environment only"
                )
            else:
                self.env_file_missing = True
        values.update(self._base_environ)
        self.environ = values

    def env_hint(self) -> str:
        if self.env_file is None:
            return "the environment"
        if self.env_file_missing:
            return f"the environment (the env_file {self.env_file} does not exist)"
        return str(self.env_file)

    def substitute(self, section: Section, key: str, value: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in self.environ:
                raise section.error(key, f"${{{name}}} is not set; define {name} in {self.env_hint()}")
            return self.environ[name]

        return _VAR.sub(replace, value)

    def resolve(self, value: str) -> Path:
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else (self.base / path).resolve()

    def section(self, name: str, allowed: Iterable[str]) -> Section:
        return Section(self, name, allowed)


def _refuse_continuation_lines(path: Path) -> None:
    """An indented line after `key = value` is refused, naming the file, the line and the key.

    configparser would glue it to the value above (a folder named `var\nsettle_seconds = 10/outbox`
    was once created that way); no value of this file spans lines, so an indented line is always a
    mistake. The scan follows configparser's own rule: a non-comment line indented deeper than the
    key line before it continues that key (blank lines in between do not end it).
    """
    key: str | None = None
    key_indent = 0
    section = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        indent = len(line) - len(line.lstrip())
        if key is not None and indent > key_indent:
            raise ConfigError(
                f"{path} line {number}: this indented line would continue the value of '{key}' in "
                f"[{section}]; a value is one line: remove the indentation (or the line)"
            )
        if stripped.startswith("[") and stripped.endswith("]"):
            section, key = stripped[1:-1], None
            continue
        key = re.split(r"\s*[=:]", stripped, maxsplit=1)[0]
        key_indent = indent
