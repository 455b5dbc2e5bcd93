"""S3 object names: key templates (`{date:%Y%m%d}_{name}`), the folder prefix, and vendor naming rules.

Pure functions, shared by the S3 and job targets, the configuration loader (which validates a
template when the INI is read) and `inspect` (which warns about a name Handshake would ignore).
"""

from __future__ import annotations

import string
from datetime import datetime, timezone
from pathlib import PurePosixPath

from agent.records import Submission

KEY_FIELDS = ("name", "stem", "suffix", "object", "date")
DEFAULT_DATE_FORMAT = "%Y%m%d"
HANDSHAKE_IGNORED_WORDS = ("test", "sample")


class _UtcDate:
    """`{date}` / `{date:%Y-%m-%d}` in a key template: strftime on the UTC time of the upload.

    UTC so that the same file sent from servers in different time zones (or across a DST change)
    gets the same, predictable name.
    """

    def __init__(self, moment: datetime) -> None:
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
        self.moment = aware.astimezone(timezone.utc)

    def __format__(self, spec: str) -> str:
        return self.moment.strftime(spec or DEFAULT_DATE_FORMAT)


def template_fields(template: str) -> list[str]:
    """The field names a template uses; ValueError (in plain words) for an unknown or malformed one."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        example = "{date:%Y%m%d}_{name}"
        raise ValueError(f"'{template}' is not a valid template ({exc}); use e.g. {example}") from None
    names = [field for _, field, _, _ in parsed if field is not None]
    allowed = ", ".join("{" + f + "}" for f in KEY_FIELDS)
    for field in names:
        if field not in KEY_FIELDS:
            shown = "{}" if field == "" else "{" + field + "}"
            raise ValueError(f"'{template}' uses {shown}, which is not a known field; allowed: {allowed}")
    return names


def render_template(template: str, submission: Submission, now: datetime) -> str:
    """Fill a key (or job) template for one file.

    Fields: `{name}` the arrival name (`users.csv`), `{stem}` (`users`), `{suffix}` (`.csv`, with
    the dot, so `{stem}{suffix}` is the name), `{object}` (Learn slug, empty here) and `{date:FMT}`
    (strftime, UTC; plain `{date}` is `%Y%m%d`). Raises ValueError with a fix-it message.
    """
    template_fields(template)
    path = PurePosixPath(submission.name)
    values = {
        "name": submission.name,
        "stem": path.stem,
        "suffix": path.suffix,
        "object": submission.object or "",
        "date": _UtcDate(now),
    }
    try:
        rendered = template.format_map(values)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"'{template}' cannot be filled in for {submission.name}: {exc}") from None
    if not rendered.strip("/"):
        raise ValueError(f"'{template}' gives an empty name for {submission.name}")
    return rendered


def normalized_prefix(prefix: str) -> str:
    """The folder part of every key: no leading '/', exactly one trailing '/' (or empty).

    Vendors hand out a folder (`importer-production-uni/`, `production/warehouse/`); admins often
    drop the trailing slash, which would otherwise glue the folder and the file name together and
    land outside the folder the keys may write to.
    """
    cleaned = prefix.strip().lstrip("/")
    return cleaned if not cleaned or cleaned.endswith("/") else cleaned + "/"


def handshake_name_warning(name: str) -> str | None:
    """Handshake never processes a file automatically when its name contains "test" or "sample"."""
    lowered = name.lower()
    for word in HANDSHAKE_IGNORED_WORDS:
        if word in lowered:
            return (
                f"'{name}' contains \"{word}\": Handshake never processes files whose name contains "
                '"test" or "sample" automatically; rename the file (or the key template) '
                "if it is real data"
            )
    return None
