"""One batch of files: claim → inspect → guard → order → submit → wait → archive → report.

Every step is written to the journal before and after it happens, so a restart knows where each
file stands: a file with a receipt is followed again (never re-sent), a file without one is sent
again. Files are sent one at a time per target and each waits for its terminal status before the
next, because Learn processes a membership file against the users and courses that exist *now*.

Where files end: delivered files (anything with a receipt, whatever Learn later said about the
records) go to `archive/`; files that never reached the destination go to `failed/` with a reason.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent import archive
from agent.clock import utcnow
from agent.errors import StopRequested, TargetError
from agent.feeds import FEED_TYPES, order_key
from agent.inspection import Inspection, inspect_csv, inspect_file, plan_order
from agent.journal import FileRecord, Journal
from agent.profiles import make_target
from agent.records import BatchOutcome, FileOutcome, Progress, Receipt, Reporter, Result, Status, Submission
from agent.settings import Config, LearnTargetSettings, RouteSettings
from agent.targets.base import Target

log = logging.getLogger("feed-agent")

Narrator = Callable[[str], None]


def sha256_of(path: Path) -> str:
    """One streaming pass in 1 MiB pieces (constant memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


@dataclass
class _Item:
    """A file moving through the batch, with what we learned about it so far."""

    record: FileRecord
    path: Path
    outcome: FileOutcome
    inspection: Inspection | None = None
    receipt: Receipt | None = None

    @property
    def rank(self) -> int:
        return order_key(self.outcome.object)


class Pipeline:
    """Runs batches for the routes of one configuration against one journal."""

    def __init__(
        self,
        config: Config,
        journal: Journal,
        reporter: Reporter,
        *,
        stop: threading.Event | None = None,
        targets: dict[str, Target] | None = None,
        narrate: Narrator | None = None,
    ) -> None:
        self.config = config
        self.journal = journal
        self.reporter = reporter
        self.stop = stop or threading.Event()
        self._targets: dict[str, Target] = dict(targets or {})
        self.narrate: Narrator = narrate or (lambda _line: None)
        self._keep = False

    # -- targets -------------------------------------------------------------------------------

    def target(self, name: str) -> Target:
        if name not in self._targets:
            self._targets[name] = make_target(self.config.targets[name])
        return self._targets[name]

    # -- claim ---------------------------------------------------------------------------------

    def claim(self, route: RouteSettings, path: Path, arrived_at: datetime | None = None) -> int | None:
        """Move a ready file from the drop folder into processing/ and journal it.

        The journal row is written first (state claiming, with the source path), so a crash between
        the two steps is visible on restart. Returns the file id, or None if the file vanished.
        """
        name = archive.original_name(path.name)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        file_id = self.journal.add_file(
            route=route.name,
            target=route.target,
            name=name,
            source_path=path,
            size=size,
            arrived_at=arrived_at or utcnow(),
        )
        try:
            claimed = archive.claim(path, self.config.agent.processing_dir)
        except FileNotFoundError:
            self.journal.update_file(file_id, state="failed", message="the file vanished before it was claimed")
            return None
        self.journal.update_file(file_id, state="claimed", current_path=claimed, claimed_at=utcnow())
        log.info("claimed: %s (route %s) -> %s", name, route.name, claimed)
        return file_id

    # -- batch ---------------------------------------------------------------------------------

    def process(
        self,
        route: RouteSettings,
        file_ids: list[int],
        *,
        force: bool = False,
        keep: bool = False,
        object_override: str | None = None,
        operation_override: str | None = None,
    ) -> BatchOutcome:
        """Take claimed (or recovered) files of one route to their end; return the batch outcome.

        `keep` (manual post) leaves the file where it is instead of archiving it.
        """
        self._keep = keep
        batch = BatchOutcome(route=route.name, started_at=utcnow())
        batch.batch_id = self.journal.start_batch(route.name)
        settings = self.config.targets[route.target]
        items = [self._item(route, file_id, batch.batch_id, operation_override) for file_id in file_ids]
        ordered = items
        try:
            for item in items:
                self._inspect_safely(route, item, object_override)
            ordered = self._order(settings.type, items)
            if settings.type == "learn" and len(ordered) > 1:
                self._narrate_order(ordered)
            blocker: _Item | None = None
            for item in ordered:
                if item.outcome.finished_at is not None:  # rejected at inspection
                    blocker = blocker or self._blocks(settings.type, route, item)
                    continue
                if blocker is not None and item.rank > blocker.rank:
                    self._hold_for(item, blocker)
                    continue
                if item.receipt is None and not force and self._guard(settings, item):
                    blocker = blocker or self._blocks(settings.type, route, item)
                    continue
                self._deliver(route, item)
                blocker = blocker or self._blocks(settings.type, route, item)
        except StopRequested:
            log.info("stop requested: files still in processing/ resume on the next start")
            raise
        finally:
            batch.files = [i.outcome for i in ordered if i.outcome.finished_at is not None]
            batch.finished_at = utcnow()
            self.journal.finish_batch(batch.batch_id, batch.overall.value, len(batch.files))
        self.reporter.batch_done(batch)
        return batch

    def _item(self, route: RouteSettings, file_id: int, batch_id: int, operation: str | None) -> _Item:
        record = self.journal.file(file_id)
        self.journal.update_file(file_id, batch_id=batch_id)
        settings = self.config.targets[route.target]
        path = Path(record.current_path or record.source_path or "")
        outcome = FileOutcome(
            name=record.name,
            route=route.name,
            target=settings.name,
            target_type=settings.type,
            status=Status.SUCCESS,
            size=record.size or 0,
            rows=record.rows,
            object=record.object,
            operation=operation or record.operation or (route.operation if settings.type == "learn" else "upload"),
            started_at=record.claimed_at or utcnow(),
            drop_folder=route.watch,
            file_id=file_id,
            sha256=record.sha256,
        )
        receipt = Receipt.from_json(record.receipt) if record.receipt else None
        outcome.receipt = receipt
        return _Item(record=record, path=path, outcome=outcome, receipt=receipt)

    def _inspect_safely(self, route: RouteSettings, item: _Item, object_override: str | None) -> None:
        """A file that breaks the inspection itself (a bug, an I/O error) is set aside, unsent, so it
        cannot block the rest of the batch."""
        try:
            self._inspect(route, item, object_override)
        except (StopRequested, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.exception("inspection of %s failed", item.outcome.name)
            self._end_unsent(
                item,
                Status.REJECTED,
                f"feed-agent could not read the file to check it ({type(exc).__name__}: {exc}). It was not sent.",
            )

    def _inspect(self, route: RouteSettings, item: _Item, object_override: str | None) -> None:
        """Pre-flight check; a file with problems is rejected here and never sent."""
        outcome = item.outcome
        if item.receipt is not None:  # recovered after upload: inspected before the crash
            return
        is_learn = outcome.target_type == "learn"
        result = inspect_file(item.path, object_override or route.object) if is_learn else inspect_csv(item.path)
        item.inspection = result
        outcome.rows, outcome.size = result.rows, result.size
        outcome.object = result.object if is_learn else None
        outcome.sha256 = outcome.sha256 or (sha256_of(item.path) if result.size else None)
        self.journal.update_file(
            outcome.file_id or 0,
            state="claimed",
            rows=result.rows,
            object=outcome.object,
            operation=outcome.operation,
            sha256=outcome.sha256,
            size=result.size,
        )
        described = f"{result.object} ({outcome.operation})" if is_learn and result.object else "csv"
        log.info("type: %s is %s, %d rows", outcome.name, described if result.ok else "not sendable", result.rows)
        if result.ok or (not is_learn and not result.problems):
            self.narrate(f"  {outcome.name}: {described}, {result.rows} rows")
            return
        reason = "; ".join(result.problems)
        self.narrate(f"  {outcome.name}: REJECTED: {reason}")
        self._end_unsent(item, Status.REJECTED, f"{reason}.")

    @staticmethod
    def _order(target_type: str, items: list[_Item]) -> list[_Item]:
        """Learn: dependency order, then oldest first, then name. Other targets: oldest first.

        "Oldest" is the file's modification time (when the SIS finished writing it), so of two
        exports of one type the newer is sent last and wins; files found in one scan have no
        meaningful arrival order of their own.
        """

        def arrival(item: _Item) -> float:
            try:
                return item.path.stat().st_mtime
            except OSError:
                return (item.record.arrived_at or item.record.claimed_at or utcnow()).timestamp()

        if target_type != "learn":
            return sorted(items, key=lambda i: (arrival(i), i.outcome.name))
        inspections = [i.inspection for i in items if i.inspection is not None]
        plan_order(inspections, {i.inspection.path: arrival(i) for i in items if i.inspection is not None})
        return sorted(items, key=lambda i: (i.rank, arrival(i), i.outcome.name))

    def _narrate_order(self, ordered: list[_Item]) -> None:
        names = " → ".join(f"{i.outcome.name} ({i.outcome.object or 'rejected'})" for i in ordered)
        self.narrate(f"  order: {names}")

    def _blocks(self, target_type: str, route: RouteSettings, item: _Item) -> _Item | None:
        """Whether this file's end holds the Learn files of later order (on_failure = hold)."""
        if target_type != "learn" or route.on_failure != "hold" or item.outcome.object is None:
            return None
        return item if item.outcome.status.blocks_dependents else None

    def _hold_for(self, item: _Item, blocker: _Item) -> None:
        waited = blocker.outcome
        family = FEED_TYPES[waited.object or "person"].family
        reason = (
            f"It depends on {waited.name} ({waited.object}), which ended {waited.status.value}; sending it "
            f"now could create records that point at missing {family}s."
        )
        item.outcome.held_by = waited.name
        self.narrate(f"  {item.outcome.name}: HELD (waits for {waited.name})")
        self._end_unsent(item, Status.HELD, reason)

    def _guard(self, settings: object, item: _Item) -> bool:
        """Refresh guard: a refresh disables everything missing from the file, so a truncated export
        would disable real users. Hold a refresh with no rows or far fewer than the last accepted one."""
        outcome = item.outcome
        if not isinstance(settings, LearnTargetSettings) or outcome.operation not in (
            "refresh",
            "refreshlegacy",
        ):
            return False
        rows = outcome.rows or 0
        previous = self.journal.last_accepted_refresh_rows(settings.name, outcome.object or "")
        floor = None if previous is None else previous * (100 - settings.refresh_guard_percent) / 100
        if rows > 0 and (floor is None or rows >= floor):
            return False
        if rows == 0:
            why = "it has no rows, and a refresh with no rows would disable every record the integration owns"
        else:
            assert previous is not None
            shrink = 100 - rows * 100 / previous
            why = (
                f"it has {rows:,} rows, {shrink:.0f}% fewer than the {previous:,} rows of the last accepted "
                f"{outcome.operation} of {outcome.object} (limit: {settings.refresh_guard_percent:g}%)"
            )
        held_path = self.config.agent.failed_dir / outcome.name
        reason = (
            f"Held by the refresh guard: {why}. A {outcome.operation} disables everything missing from the "
            f"file. If the file is complete, send it anyway with: feed-agent post {held_path} --force"
        )
        self.narrate(f"  {outcome.name}: HELD by the refresh guard")
        self._end_unsent(item, Status.HELD, reason)
        return True

    # -- deliver -------------------------------------------------------------------------------

    def _deliver(self, route: RouteSettings, item: _Item) -> None:
        outcome = item.outcome
        target = self.target(route.target)
        file_id = outcome.file_id or 0
        if item.receipt is None:
            try:
                item.receipt = self._submit(target, item)
            except (TargetError, OSError) as exc:
                message = exc.message if isinstance(exc, TargetError) else f"the file could not be read: {exc}"
                log.error("failed: %s was not accepted by %s: %s", outcome.name, target.name, message)
                self.narrate(f"  {outcome.name}: FAILED: {message}")
                self._end_unsent(item, Status.FAILED, message)
                return
        else:
            log.info(
                "resuming: %s has reference %s; following it, not re-sending",
                outcome.name,
                item.receipt.reference,
            )
            self.narrate(f"  {outcome.name}: resuming reference {item.receipt.reference} (not re-sent)")
        outcome.receipt = item.receipt
        result = self._wait(target, item)
        outcome.progress = result.progress
        self.journal.update_file(
            file_id,
            state="finished",
            status=result.status.value,
            finished_at=result.finished_at,
            message=result.message or None,
            **_counts(result.progress),
        )
        outcome.status, outcome.message, outcome.finished_at = (
            result.status,
            result.message,
            result.finished_at,
        )
        if self._keep:
            outcome.final_path = item.path
        else:
            outcome.final_path = archive.archive(
                item.path, self.config.agent.archive_dir, name=outcome.name, when=outcome.finished_at
            )
            log.info("archived: %s -> %s", outcome.name, outcome.final_path)
        self.journal.update_file(file_id, state="archived", current_path=outcome.final_path)
        self.narrate(f"  {outcome.name}: {outcome.status.value}{_count_text(result.progress)} → {outcome.final_path}")
        self.reporter.file_done(outcome)

    def _submit(self, target: Target, item: _Item) -> Receipt:
        outcome, inspection = item.outcome, item.inspection
        file_id = outcome.file_id or 0
        self.journal.update_file(file_id, state="submitting")
        submission = Submission(
            path=item.path,
            name=outcome.name,
            object=outcome.object,
            operation=outcome.operation or "store",
            rows=outcome.rows or 0,
            non_ascii=bool(inspection and inspection.non_ascii),
            has_bom=bool(inspection and inspection.bom),
        )
        receipt = target.submit(submission)
        self.journal.update_file(
            file_id,
            state="submitted",
            receipt=receipt.to_json(),
            reference=receipt.reference,
            submitted_at=receipt.submitted_at,
        )
        log.info(
            "posted: %s to %s as %s/%s, reference %s",
            outcome.name,
            target.name,
            outcome.object or "file",
            outcome.operation,
            receipt.reference,
        )
        self.narrate(f"  {outcome.name}: sent to {target.name}, reference {receipt.reference}")
        return receipt

    def _wait(self, target: Target, item: _Item) -> Result:
        outcome, receipt = item.outcome, item.receipt
        assert receipt is not None
        file_id = outcome.file_id or 0
        settings = self.config.targets[outcome.target]
        long_run = getattr(settings, "long_run_minutes", 0.0)
        last: list[tuple[int, int, int, int]] = []
        alerted = [item.record.long_run_alerted]

        def on_progress(progress: Progress) -> None:
            self.journal.update_file(file_id, **_counts(progress))
            if not last or last[-1] != progress.counts():
                last.append(progress.counts())
                log.info(
                    "status: %s %s queued %d, completed %d, warnings %d, errors %d",
                    outcome.name,
                    receipt.reference,
                    *progress.counts(),
                )
                self.narrate(
                    f"    poll: queued {progress.queued}, completed {progress.completed}, "
                    f"warnings {progress.warnings}, errors {progress.errors}"
                )
            minutes = (utcnow() - receipt.submitted_at).total_seconds() / 60
            if long_run and minutes >= long_run and not alerted[0]:
                alerted[0] = True
                self.journal.update_file(file_id, long_run_alerted=True)
                outcome.progress = progress
                self.reporter.still_processing(outcome, minutes)

        return target.wait(receipt, outcome.rows or 0, on_progress=on_progress, stop=self.stop)

    def _end_unsent(self, item: _Item, status: Status, reason: str) -> None:
        """A file that did not reach its destination: failed/ with a reason file, journal, report."""
        outcome = item.outcome
        outcome.status, outcome.message, outcome.finished_at = status, reason, utcnow()
        if self._keep:
            outcome.final_path = item.path
        else:
            outcome.final_path = archive.fail(
                item.path,
                self.config.agent.failed_dir,
                name=outcome.name,
                reason=reason,
                when=outcome.finished_at,
            )
        state = {Status.REJECTED: "rejected", Status.HELD: "held"}.get(status, "failed")
        self.journal.update_file(
            outcome.file_id or 0,
            state=state,
            status=status.value,
            message=reason,
            finished_at=outcome.finished_at,
            current_path=outcome.final_path,
        )
        log.warning("%s: %s -> %s: %s", status.value.lower(), outcome.name, outcome.final_path, reason)
        self.reporter.file_done(outcome)

    # -- recovery ------------------------------------------------------------------------------

    def recover(self) -> list[BatchOutcome]:
        """Finish what a crash or stop interrupted, before anything new is taken.

        A file with a receipt is followed again (never re-sent); a claimed file without one is sent
        again; a claim interrupted before the move leaves the file in the drop folder, where the
        watcher finds it again.
        """
        outcomes = []
        routes = {r.name: r for r in self.config.routes}
        pending: dict[str, list[int]] = {}
        for record in self.journal.in_flight():
            current = Path(record.current_path) if record.current_path else None
            if record.route not in routes:
                self.journal.update_file(
                    record.id,
                    state="failed",
                    message=f"route {record.route} no longer exists; file left in {current}",
                )
                continue
            if record.state == "claiming" or current is None or not current.exists():
                self.journal.update_file(
                    record.id,
                    state="failed",
                    message="interrupted before the claim finished; "
                    "the file (if still in the drop folder) is processed again as new",
                )
                continue
            log.info(
                "recovering: %s (%s, %s)",
                record.name,
                record.state,
                f"reference {record.reference}" if record.reference else "no receipt: sending again",
            )
            pending.setdefault(record.route, []).append(record.id)
        for route_name, file_ids in pending.items():
            outcomes.append(self.process(routes[route_name], file_ids))
        return outcomes


def _counts(progress: Progress | None) -> dict[str, int]:
    if progress is None:
        return {}
    return {
        "queued": progress.queued,
        "completed": progress.completed,
        "warnings": progress.warnings,
        "errors": progress.errors,
    }


def _count_text(progress: Progress | None) -> str:
    if progress is None:
        return ""
    return f" (completed {progress.completed}, warnings {progress.warnings}, errors {progress.errors})"
