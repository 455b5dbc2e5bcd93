"""The words of the guards (`agent.guard`): why a Learn file was held, and what an unusual store looks like.

A part of `agent.wording` (the words of every report), apart only to keep each module small.
"""

from __future__ import annotations

from pathlib import Path


def round_usual(value: float) -> int:
    """A usual size as a person says it: 24,000 rather than 23,987 (two significant digits)."""
    if value < 100:
        return round(value)
    digits = len(str(int(value))) - 2
    return int(round(value, -digits))


def feed_words(operation: str, slug: str, sources: str) -> str:
    """`refresh of person`, `refreshlegacy of person for data source key(s) SIS_A`."""
    within = f" for data source key(s) {sources}" if sources else ""
    return f"{operation} of {slug}{within}"


def refresh_empty_reason(operation: str) -> str:
    return (
        f"Held by the refresh guard: it has no rows, and a {operation} with no rows would disable every "
        "record the integration owns."
    )


def refresh_shrunk_reason(rows: int, previous: int, feed: str, limit: float, operation: str) -> str:
    shrink = 100 - rows * 100 / previous
    return (
        f"Held by the refresh guard: it has {rows:,} rows, {shrink:.0f}% fewer than the {previous:,} rows of "
        f"the last accepted {feed} (limit: {limit:g}%). A {operation} disables everything missing from the file."
    )


def refresh_disabled_reason(
    disabled: int, baseline: int, added: int, feed: str, limit: float, sample: list[str], saved: Path
) -> str:
    percent = disabled * 100 / baseline if baseline else 0.0
    return (
        f"Held by the refresh guard: it would disable {disabled:,} of the {baseline:,} records of the last "
        f"delivered {feed} ({percent:.1f}%; limit: {limit:g}%), because their keys are missing from this "
        f"file (it adds {added:,} new ones). The first {len(sample)}: {', '.join(sample)}. "
        f"All {disabled:,} are in the attached CSV (also saved as {saved})."
    )


def delete_guard_reason(rows: int, slug: str, limit: int, sample: list[str], saved: Path | None) -> str:
    listed = ""
    if sample:
        listed = f" The first {len(sample)}: {', '.join(sample)}. All are in the attached CSV (also saved as {saved})."
    return (
        f"Held by the delete guard: it would delete {rows:,} {slug} records, more than "
        f"delete_guard_rows ({limit:,}) allows.{listed}"
    )


def store_notice(rows: int, usual: float, deliveries: int) -> str:
    """The store anomaly notice: '3,120 rows; usually about 24,000'."""
    return (
        f"{rows:,} rows; usually about {round_usual(usual):,} (the median of the last {deliveries} "
        "deliveries). It was sent: check that the SIS export is complete."
    )


def force_hint(command: str) -> str:
    """The end of a guard's reason: the one line that sends the held file anyway (it ends the line)."""
    return f" If the file is right as it is, send it anyway with: {command}"
