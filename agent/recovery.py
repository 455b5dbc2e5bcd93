"""After a crash or a stop: finish what was interrupted, before anything new is taken.

Recovery works batch by batch, from the journal: every batch of the service whose summary was not
yet sent is taken up again whole, with all its files, wherever each one stands (`FileState`):

- claiming: the claim is finished (the file is in the drop folder, or already renamed into
  processing/ and found there by name); one that vanished is dropped from the batch;
- claimed / submitting: nothing reached the destination (the last byte of an upload is journaled
  before it goes out), so it is inspected and sent, in the batch's dependency order;
- sent: the whole body went out and the answer was never read: UNCONFIRMED, to failed/, never
  re-sent, its dependents held;
- submitted: it has a receipt: followed again, never re-sent;
- finished: its end is decided: the move to archive/ or failed/ is done (or found done);
- archived / failed / rejected / held / unconfirmed: only its report, if that was not yet taken.

Then the batch's summary goes out, once. So the order holds across the restart, nothing is sent
twice, and every file and batch is reported exactly once (`reported_at`).

Each batch is recovered on its own (and the pipeline isolates each file): one that cannot be finished
now (a folder that refuses a file, a full disk) never stops the others; recovery then ends with
`RecoveryIncomplete`, carrying what it did finish, and the daemon tries again with back-off.
A decided and reported file whose folder refused it is not recovered here: `agent.unmoved` moves it.

Only the service's own batches and files are adopted (`Owner.SERVICE`): a file a manual `post` took
belongs to that post, alive or dead; `status` shows a dead one as interrupted and only `post` resumes
it (issue 14.2: a `watch` restart posted an admin's file a second time).
"""

from __future__ import annotations

import logging

from agent.claims import settle_claim
from agent.errors import BatchIncomplete, JournalError, StopRequested, describe
from agent.journal import Journal
from agent.journal_schema import FileRecord, FileState, Owner
from agent.pipeline import Pipeline
from agent.records import BatchOutcome
from agent.settings import RouteSettings

log = logging.getLogger(__name__)


class RecoveryIncomplete(BatchIncomplete):
    """Some batches could not be finished now; `outcomes` are those that were, `causes` what stopped
    the others, by route."""

    def __init__(self, outcomes: list[BatchOutcome], causes: dict[str, BaseException]) -> None:
        problems = "; ".join(f"route {name}: {describe(exc)}" for name, exc in causes.items())
        super().__init__(f"{len(causes)} route(s) could not be finished yet: {problems}")
        self.outcomes = outcomes
        self.causes = causes


def recover(
    pipeline: Pipeline, journal: Journal, routes: dict[str, RouteSettings], *, only: str | None = None
) -> list[BatchOutcome]:
    """Take every unfinished batch of the journal to its end (and its report); returns the outcomes.
    `only`: the batches of that route alone (a route that left files behind; the others go on).

    Raises RecoveryIncomplete (after trying every batch) when some could not be finished."""
    outcomes: list[BatchOutcome] = []
    causes: dict[str, BaseException] = {}  # a bug's traceback is shown once, by the failure episode
    for batch in journal.unreported_batches():
        if only is not None and batch.route != only:
            continue
        route = routes.get(batch.route)
        records = journal.batch_files(batch.id)
        if route is None:
            _route_gone(journal, batch.id, batch.route, records)
            continue
        try:
            file_ids = _resumable(pipeline, journal, records)
            if any(journal.file(file_id).in_flight for file_id in file_ids):
                log.info("recovering: batch %d of route %s (%d files)", batch.id, route.name, len(file_ids))
            outcomes.append(pipeline.process(route, file_ids, batch_id=batch.id))
        except (StopRequested, JournalError):
            raise  # a stop, or a journal that cannot be written: no other batch can go on either
        except Exception as exc:  # isolated: the next batch is still recovered
            log.warning("not recovered yet: batch %d of route %s: %s", batch.id, route.name, describe(exc))
            causes.setdefault(route.name, exc)
    outcomes.extend(_unbatched(pipeline, journal, routes, only))
    if causes:
        raise RecoveryIncomplete(outcomes, causes) from next(iter(causes.values()))
    return outcomes


def _resumable(pipeline: Pipeline, journal: Journal, records: list[FileRecord]) -> list[int]:
    """The batch's files, claims finished; files that vanished before their claim are left out."""
    file_ids = []
    processing = pipeline.config.agent.processing_dir
    for record in records:
        if record.state is FileState.CLAIMING:
            if settle_claim(journal, processing, record) is None:
                continue
        elif record.claimed_at is None:
            continue
        if record.in_flight:
            log.info(
                "recovering: %s (%s, %s)",
                record.name,
                record.state.value,
                f"reference {record.reference}" if record.reference else "no receipt",
            )
        file_ids.append(record.id)
    return file_ids


def _route_gone(journal: Journal, batch_id: int, route: str, records: list[FileRecord]) -> None:
    for record in records:
        if record.in_flight:
            journal.abandoned(record.id, f"route {route} no longer exists; file left in {record.current_path}")
            log.warning(
                "not recovered: %s: route %s no longer exists (left in %s)", record.name, route, record.current_path
            )
        journal.file_reported(record.id)
    journal.finish_batch(batch_id, "FAILED", 0)
    journal.batch_reported(batch_id)


def _unbatched(
    pipeline: Pipeline, journal: Journal, routes: dict[str, RouteSettings], only: str | None = None
) -> list[BatchOutcome]:
    """Files in flight in no open batch (journals written before batches were planned): one batch per route."""
    open_batches = {batch.id for batch in journal.unreported_batches()}
    pending: dict[str, list[int]] = {}
    for record in journal.in_flight(owners=(Owner.SERVICE,)):  # a manual post's file is the post's
        if record.batch_id in open_batches or (only is not None and record.route != only):
            continue  # its batch could not be finished just now (or is another route's): taken up later
        if record.state is FileState.FINISHED and record.reported_at is not None:
            continue  # decided and reported; its folder refused it: `agent.unmoved` moves it
        if record.route not in routes:
            journal.abandoned(record.id, f"route {record.route} no longer exists; file left in {record.current_path}")
            continue
        if record.state is FileState.CLAIMING:
            journal.abandoned(
                record.id,
                "interrupted before the claim finished; the file, if still in the drop folder, is taken again",
            )
            continue
        pending.setdefault(record.route, []).append(record.id)
    return [
        pipeline.process(routes[name], file_ids, batch_id=journal.start_batch(name))
        for name, file_ids in pending.items()
    ]
