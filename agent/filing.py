"""Filing a decided file away: archive/ when delivered, failed/ with its reason when not.

Each move is followed by its journal entry; a crash between the two leaves the journal saying the
file is still in processing/ while it is already in its folder. A restart then finds it there (by
the names the move tries, and its size and checksum) instead of losing it or moving something else.

A folder that refuses the file (permissions, a full disk) does not undo the decision: the file stays
in processing/ (journaled finished, `outcome.not_moved` says why, so its report says so) and `watch`
moves it later with back-off (`agent.unmoved`), without asking the destination again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

from agent import archive, failpoints
from agent.batchitem import BatchItem
from agent.clock import utcnow
from agent.errors import os_error_message
from agent.journal import Journal
from agent.records import Status
from agent.settings import AgentSettings
from agent.wording import next_step

log = logging.getLogger(__name__)


def file_away(journal: Journal, folders: AgentSettings, item: BatchItem, *, delivered: bool, keep: bool) -> None:
    """Move the file to its folder (a `post --keep` file stays put) and journal where it is now."""
    outcome = item.outcome
    when = outcome.finished_at or utcnow()
    if keep:
        outcome.final_path = item.path
    elif delivered:
        outcome.final_path = _moved(
            item,
            lambda: archive.archive(item.path, folders.archive_dir, name=outcome.name, when=when),
            "archive-renamed",
            folders.archive_dir,
            archive.archive_names(outcome.name, when),
        )
    else:
        # Moving an UNCONFIRMED file straight back could send it twice: its reason file says how to check.
        advice = next_step(outcome) if outcome.status is Status.UNCONFIRMED else None
        outcome.final_path = _moved(
            item,
            lambda: archive.fail(
                item.path, folders.failed_dir, name=outcome.name, reason=outcome.message, when=when, advice=advice
            ),
            "fail-renamed",
            folders.failed_dir,
            archive.claim_names(outcome.name),
        )
        if outcome.final_path is not None and not outcome.not_moved:
            archive.ensure_reason(outcome.final_path, outcome.message, when, advice)
    if outcome.not_moved:
        return  # decided and journaled (finished): it waits in processing/ for a later move
    if keep:
        pass
    elif delivered:
        log.info("archived: %s -> %s", outcome.name, outcome.final_path)
    else:
        log.warning("%s: %s -> %s: %s", outcome.status.value.lower(), outcome.name, outcome.final_path, outcome.message)
    if delivered:
        journal.archived(item.file_id, outcome.final_path)
        failpoints.hit("archive-journaled")
    else:
        journal.ended_unsent(item.file_id, outcome.status, outcome.message, outcome.final_path, when)
        failpoints.hit("fail-journaled")


def _moved(item: BatchItem, move: Callable[[], Path], point: str, folder: Path, names: Iterator[str]) -> Path | None:
    """Do the move, or (the file is gone from processing/) find where an interrupted run put it."""
    if item.path.exists():
        try:
            moved = move()
        except FileNotFoundError:
            pass  # gone meanwhile: look for it below
        except OSError as exc:  # the folder refuses it: the decision stands, the move waits
            item.move_error, item.outcome.not_moved = exc, os_error_message(exc)
            log.error("not moved: %s stays in %s: %s", item.outcome.name, item.path.parent, item.outcome.not_moved)
            return item.path
        else:
            failpoints.hit(point)
            return moved
    found = archive.find_moved(folder, names, size=item.record.size, sha256=item.outcome.sha256)
    if found is None:
        log.warning("%s: no longer in %s and not found in %s", item.outcome.name, item.path.parent, folder)
    return found
