"""After a crash or a stop: finish what was interrupted, before anything new is taken.

A file with a receipt is followed again (never re-sent); a claimed file without one is sent again;
a claim interrupted before the move leaves the file in the drop folder, where the watcher finds it
again. Files of one route are re-formed into one batch, so the dependency order holds across the
restart.

Only the service's own files are adopted (`Owner.SERVICE`): a file a manual `post` took belongs to that
post, alive or dead; `status` shows a dead one as interrupted and only `post` resumes it (issue 14.2:
a `watch` restart posted an admin's file a second time).
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.journal import Journal
from agent.journal_schema import FileState, Owner
from agent.pipeline import Pipeline
from agent.records import BatchOutcome
from agent.settings import RouteSettings

log = logging.getLogger(__name__)


def recover(pipeline: Pipeline, journal: Journal, routes: dict[str, RouteSettings]) -> list[BatchOutcome]:
    """Take every in-flight file of the journal to its end; one batch per route."""
    pending: dict[str, list[int]] = {}
    for record in journal.in_flight(owners=(Owner.SERVICE,)):
        current = Path(record.current_path) if record.current_path else None
        if record.route not in routes:
            journal.abandoned(record.id, f"route {record.route} no longer exists; file left in {current}")
            continue
        if record.state is FileState.CLAIMING or current is None or not current.exists():
            journal.abandoned(
                record.id,
                "interrupted before the claim finished; "
                "the file (if still in the drop folder) is processed again as new",
            )
            continue
        log.info(
            "recovering: %s (%s, %s)",
            record.name,
            record.state.value,
            f"reference {record.reference}" if record.reference else "no receipt: sending again",
        )
        pending.setdefault(record.route, []).append(record.id)
    return [pipeline.process(routes[name], file_ids) for name, file_ids in pending.items()]
