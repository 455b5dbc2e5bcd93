"""The `.env` file read literally: what is written after `NAME=` is the value, byte for byte.

Why not python-dotenv's defaults: it expands `${…}` inside values and ends an unquoted value at
` #`, so a password such as `my pass #1` or `x${HOME}y` would silently become another one, and the
agent would fail to log in at 2 am with a password nobody typed. Here the file is parsed by
python-dotenv's parser with interpolation off, and an unquoted value that a reader could take two
ways is refused, naming the file, the line and the variable (never the value):

- an unquoted value with ` #` in it (a comment, or part of the password?): quote it;
- a line that cannot be parsed at all (an unclosed quote, say): it is not skipped silently.

An unquoted value containing `${` is taken literally and a warning says so once per load (quote it
with single quotes to say that is meant). Single quotes are the plain literal form:
`SMTP_PASSWORD='my pass #1'` (only `\\'` and `\\\\` are escapes inside them).
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from agent.errors import ConfigError

log = logging.getLogger(__name__)

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?(?:'[^']+'|[^=#\s]+)\s*=[^\S\r\n]*")
_COMMENT_IN_VALUE = re.compile(r"\s#")


def read_env_file(path: Path) -> dict[str, str]:
    """NAME → value from a `.env` file, every value literal. Raises ConfigError in plain words."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{path}: the env_file cannot be read ({exc.strerror or exc}); the agent's user needs read access"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the env_file is not UTF-8 text; save it as UTF-8") from None
    # Imported here: importing python-dotenv loads its whole package (tempfile, shutil, random),
    # ~8 ms that every command without a .env to read (`inspect`, `status`) would pay at start-up.
    from dotenv.parser import parse_stream

    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        line = _first_line(binding.original.string, binding.original.line)
        if binding.error:
            raise ConfigError(
                f"{path} line {line}: cannot be read as NAME=value (an unclosed quote?); "
                "write NAME=value, or NAME='value' for a value with spaces, # or $"
            )
        if binding.key is None:
            continue  # a comment or a blank line
        if binding.value is None:
            continue  # a bare NAME without '=': python-dotenv ignores it too
        _check_unquoted(path, line, binding.key, binding.original.string)
        values[binding.key] = binding.value
    return values


def _first_line(original: str, line: int) -> int:
    """The line of the binding itself (the parser counts from the blank lines before it)."""
    return line + original[: len(original) - len(original.lstrip())].count("\n")


def _check_unquoted(path: Path, line: int, key: str, original: str) -> None:
    match = _ASSIGNMENT.match(original)
    if match is None:
        return
    raw = original[match.end() :].split("\n", 1)[0].rstrip("\r")
    if not raw or raw[0] in "'\"":
        return
    if _COMMENT_IN_VALUE.search(raw):
        raise ConfigError(
            f"{path} line {line}: the value of {key} is not quoted and contains ' #', which would cut it "
            f"there (the rest read as a comment). Quote it: {key}='…' (single quotes keep every character); "
            "a comment goes on a line of its own"
        )
    if "${" in raw:
        log.warning(
            "%s line %d: the value of %s contains ${…}; it is taken literally (no variables are expanded "
            "in .env). Write it in single quotes to say that is meant.",
            path,
            line,
            key,
        )
