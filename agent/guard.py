"""The refresh guard: hold a refresh file that would disable far more than it should.

A `refresh` (or `refreshlegacy`) disables every record of the integration that is missing from the
file, so a truncated export would disable real users at 2 am. A refresh with no rows, or with far
fewer rows than the last refresh the destination accepted, is held for an admin to look at.
"""

from __future__ import annotations

from pathlib import Path

from agent.advice import post_command
from agent.journal import Journal
from agent.records import FileOutcome
from agent.settings import LearnTargetSettings, TargetSettings

REFRESH_OPERATIONS = ("refresh", "refreshlegacy")


def refresh_guard(journal: Journal, settings: TargetSettings, outcome: FileOutcome, failed_dir: Path) -> str | None:
    """Why this file must be held (the reason for the admin), or None when it may be sent."""
    if not isinstance(settings, LearnTargetSettings) or outcome.operation not in REFRESH_OPERATIONS:
        return None
    rows = outcome.rows or 0
    previous = journal.last_accepted_refresh_rows(settings.name, outcome.object or "")
    floor = None if previous is None else previous * (100 - settings.refresh_guard_percent) / 100
    if rows > 0 and (floor is None or rows >= floor):
        return None
    if rows == 0 or previous is None:
        why = "it has no rows, and a refresh with no rows would disable every record the integration owns"
    else:
        shrink = 100 - rows * 100 / previous
        why = (
            f"it has {rows:,} rows, {shrink:.0f}% fewer than the {previous:,} rows of the last accepted "
            f"{outcome.operation} of {outcome.object} (limit: {settings.refresh_guard_percent:g}%)"
        )
    command = post_command(
        outcome.config_path, failed_dir / outcome.name, route=outcome.route, operation=outcome.operation, force=True
    )
    return (
        f"Held by the refresh guard: {why}. A {outcome.operation} disables everything missing from the "
        f"file. If the file is complete, send it anyway with: {command}"
    )
