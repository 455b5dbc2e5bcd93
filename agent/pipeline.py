"""One batch of files: claim → inspect → guard → order → submit → wait → archive → report.

Every step is written to the journal before and after it happens, so a restart knows where each
file stands: a file with a receipt is followed again (never re-sent), a file without one is sent
again. Files are sent one at a time per target and each waits for its terminal status before the
next, because Learn processes a membership file against the users and courses that exist *now*.

What differs between destinations (how to inspect, the order, whether a failed file holds its
dependents, the refresh guard) is asked of the route's profile (`agent.profiles`), never branched on.

Where files end: delivered files (anything with a receipt, whatever Learn later said about the
records) go to `archive/`; files that never reached the destination go to `failed/` with a reason.
A file posted by hand with `--keep` stays where the admin put it.
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
from agent.completions import JobFollowUp
from agent.errors import StopRequested, TargetError
from agent.feeds import FEED_TYPES, depends_on, order_key, sort_key
from agent.guard import refresh_guard
from agent.hashing import ContentHash
from agent.inspection import Inspection
from agent.journal import Journal
from agent.journal_schema import FileRecord
from agent.profiles import TargetProfile, profile_for
from agent.records import (
    BatchOutcome,
    FileOutcome,
    Progress,
    Receipt,
    RecordLog,
    Reporter,
    Result,
    Status,
    Submission,
    UploadProgress,
)
from agent.settings import Config, RouteSettings
from agent.targets.base import RecordLogSource, Target
from agent.wording import format_time_left

log = logging.getLogger(__name__)

Narrator = Callable[[str], None]


@dataclass(frozen=True)
class BatchContext:
    """How a batch was asked for: by the watcher or cron (the defaults), or by an admin (`post`)."""

    force: bool = False  # send even if the refresh guard would hold it
    keep: bool = False  # a manual post that leaves the file where it is (no archive, no failed/)
    object_override: str | None = None  # `post --object`
    operation_override: str | None = None  # `post --operation`


AUTOMATIC = BatchContext()
RECORD_LOG_STATUSES = (Status.ERRORS, Status.WARNINGS, Status.TIMED_OUT)


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

    @property
    def file_id(self) -> int:
        return self.record.id

    def arrival(self) -> float:
        """When the SIS finished writing it (mtime): of two exports of one type, the newer goes last."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            return (self.record.arrived_at or self.record.claimed_at or utcnow()).timestamp()


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
        follow_up: JobFollowUp | None = None,
        upload_progress: UploadProgress | None = None,
    ) -> None:
        self.config = config
        self.follow_up = follow_up  # gives queued jobs their notification URL ([webhook])
        self.upload_progress = upload_progress  # `post` on a terminal: bytes, rate, time left
        self.journal = journal
        self.reporter = reporter
        self.stop = stop or threading.Event()
        self._targets: dict[str, Target] = dict(targets or {})
        self.narrate: Narrator = narrate or (lambda _line: None)

    def close(self) -> None:
        """Close every target's connections."""
        for target in self._targets.values():
            target.close()
        self._targets.clear()

    def target(self, name: str) -> Target:
        if name not in self._targets:
            settings = self.config.targets[name]
            self._targets[name] = profile_for(settings.type).make_target(settings)
        return self._targets[name]

    def profile(self, route: RouteSettings) -> TargetProfile:
        return profile_for(self.config.targets[route.target].type)

    # -- taking files ------------------------------------------------------------------------------

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
            route=route.name, target=route.target, name=name, source_path=path, size=size, arrived_at=arrived_at
        )
        try:
            claimed = archive.claim(path, self.config.agent.processing_dir)
        except FileNotFoundError:
            self.journal.abandoned(file_id, "the file vanished before it was claimed")
            return None
        self.journal.claimed(file_id, claimed)
        log.info("claimed: %s (route %s) -> %s", name, route.name, claimed)
        return file_id

    def adopt(self, route: RouteSettings, path: Path) -> int:
        """Journal a file an admin posts by hand and keeps (`post --keep`): it is not moved."""
        file_id = self.journal.add_file(
            route=route.name,
            target=route.target,
            name=archive.original_name(path.name),
            source_path=path,
            size=path.stat().st_size,
            arrived_at=utcnow(),
        )
        self.journal.claimed(file_id, path)
        return file_id

    # -- the batch ---------------------------------------------------------------------------------

    def process(self, route: RouteSettings, file_ids: list[int], context: BatchContext = AUTOMATIC) -> BatchOutcome:
        """Take claimed (or recovered) files of one route to their end; return the batch outcome."""
        batch = BatchOutcome(route=route.name, started_at=utcnow())
        batch_id = self.journal.start_batch(route.name)
        batch.batch_id = batch_id
        profile = self.profile(route)
        items = [self._item(route, profile, file_id, batch_id, context) for file_id in file_ids]
        ordered = items
        try:
            for item in items:
                self._inspect_safely(route, profile, item, context)
            ordered = sorted(items, key=lambda i: sort_key(i.outcome.object, i.arrival(), i.outcome.name))
            if profile.learn_feeds and len(ordered) > 1:
                self._narrate_order(ordered)
            self._deliver_in_order(route, profile, ordered, context)
        except StopRequested:
            log.info("stop requested: files still in processing/ resume on the next start")
            raise
        finally:
            batch.files = [i.outcome for i in ordered if i.outcome.finished_at is not None]
            batch.finished_at = utcnow()
            self.journal.finish_batch(batch_id, batch.overall.value, len(batch.files))
        self.reporter.batch_done(batch)
        return batch

    def _deliver_in_order(
        self, route: RouteSettings, profile: TargetProfile, ordered: list[_Item], context: BatchContext
    ) -> None:
        """Send each file in turn; a file that did not arrive holds only the files that depend on it
        (`feeds.DEPENDS_ON`), and a held file in turn holds its own dependents."""
        holds = profile.holds_dependents and route.on_failure == "hold"
        blockers: list[_Item] = []
        for item in ordered:
            if item.outcome.finished_at is None:  # not already rejected at inspection
                blocker = next((b for b in blockers if depends_on(item.outcome.object, b.outcome.object)), None)
                if blocker is not None:
                    self._hold_for(item, blocker)
                elif not self._guarded(item, context):
                    self._deliver(route, item, context)
            if holds and item.outcome.object and item.outcome.status.blocks_dependents:
                blockers.append(item)

    def _item(
        self, route: RouteSettings, profile: TargetProfile, file_id: int, batch_id: int, context: BatchContext
    ) -> _Item:
        record = self.journal.file(file_id)
        self.journal.joined_batch(file_id, batch_id)
        path = Path(record.current_path or record.source_path or "")
        outcome = FileOutcome(
            name=record.name,
            route=route.name,
            target=route.target,
            target_type=profile.kind,
            status=Status.SUCCESS,
            size=record.size or 0,
            rows=record.rows,
            object=record.object,
            operation=context.operation_override or record.operation or profile.operation(route),
            started_at=record.claimed_at or utcnow(),
            drop_folder=route.watch,
            file_id=file_id,
            sha256=record.sha256,
            config_path=self.config.path,
        )
        receipt = Receipt.from_json(record.receipt) if record.receipt else None
        outcome.receipt = receipt
        return _Item(record=record, path=path, outcome=outcome, receipt=receipt)

    # -- inspect -----------------------------------------------------------------------------------

    def _inspect_safely(self, route: RouteSettings, profile: TargetProfile, item: _Item, context: BatchContext) -> None:
        """A file that breaks the inspection itself (a bug, an I/O error) is set aside, unsent, so it
        cannot block the rest of the batch."""
        try:
            self._inspect(route, profile, item, context)
        except (StopRequested, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.exception("inspection of %s failed", item.outcome.name)
            self._end_unsent(
                item,
                Status.REJECTED,
                f"feed-agent could not read the file to check it ({type(exc).__name__}: {exc}). It was not sent.",
                context,
            )

    def _inspect(self, route: RouteSettings, profile: TargetProfile, item: _Item, context: BatchContext) -> None:
        """Pre-flight check; a file with problems is rejected here and never sent."""
        outcome = item.outcome
        if item.receipt is not None:  # recovered after upload: inspected before the crash
            return
        target = self.config.target_for(route)
        content = ContentHash()  # the digest comes from the inspection's own reads: one pass per file
        result = profile.inspect(item.path, context.object_override or route.object, target, opener=content.open)
        item.inspection = result
        outcome.rows, outcome.size = result.rows, result.size
        outcome.object = profile.sent_object(result)
        if result.size and not outcome.sha256:
            # A file the check could not even open (or that failed mid-read) is hashed on its own.
            outcome.sha256 = content.hexdigest() or sha256_of(item.path)
        self.journal.inspected(
            item.file_id,
            rows=result.rows,
            size=result.size,
            object=outcome.object,
            operation=outcome.operation,
            sha256=outcome.sha256,
        )
        described = f"{result.object} ({outcome.operation})" if outcome.object else "csv"
        if profile.sendable(result):
            log.info("type: %s is %s, %d rows", outcome.name, described, result.rows)
            self.narrate(f"  {outcome.name}: {described}, {result.rows} rows")
            return
        reason = "; ".join(result.problems)
        log.info("type: %s is not sendable: %s", outcome.name, reason)
        self.narrate(f"  {outcome.name}: REJECTED: {reason}")
        self._end_unsent(item, Status.REJECTED, f"{reason}.", context)

    def _narrate_order(self, ordered: list[_Item]) -> None:
        names = " → ".join(f"{i.outcome.name} ({i.outcome.object or 'rejected'})" for i in ordered)
        self.narrate(f"  order: {names}")

    # -- hold --------------------------------------------------------------------------------------

    def _hold_for(self, item: _Item, blocker: _Item) -> None:
        waited = blocker.outcome
        family = FEED_TYPES[waited.object or "person"].family
        reason = (
            f"It depends on {waited.name} ({waited.object}), which ended {waited.status.value}; sending it "
            f"now could create records that point at missing {family}s."
        )
        item.outcome.held_by = waited.name
        self.narrate(f"  {item.outcome.name}: HELD (waits for {waited.name})")
        self._end_unsent(item, Status.HELD, reason, AUTOMATIC)

    def _guarded(self, item: _Item, context: BatchContext) -> bool:
        """The refresh guard: True when the file was held (and ended) instead of sent."""
        if item.receipt is not None or context.force:
            return False
        settings = self.config.targets[item.outcome.target]
        reason = refresh_guard(self.journal, settings, item.outcome, self.config.agent.failed_dir)
        if reason is None:
            return False
        self.narrate(f"  {item.outcome.name}: HELD by the refresh guard")
        self._end_unsent(item, Status.HELD, reason, context)
        return True

    # -- deliver -----------------------------------------------------------------------------------

    def _deliver(self, route: RouteSettings, item: _Item, context: BatchContext) -> None:
        outcome = item.outcome
        target = self.target(route.target)
        if item.receipt is None:
            try:
                item.receipt = self._submit(target, item, self.profile(route))
            except (TargetError, OSError) as exc:
                message = exc.message if isinstance(exc, TargetError) else f"the file could not be read: {exc}"
                log.error("failed: %s was not accepted by %s: %s", outcome.name, target.name, message)
                self.narrate(f"  {outcome.name}: FAILED: {message}")
                self._end_unsent(item, Status.FAILED, message, context)
                return
        else:
            log.info(
                "resuming: %s has reference %s; following it, not re-sending", outcome.name, item.receipt.reference
            )
            self.narrate(f"  {outcome.name}: resuming reference {item.receipt.reference} (not re-sent)")
            if self.follow_up is not None and self.profile(route).ends_later:
                self.follow_up.queued(item.file_id, outcome.target, item.receipt)  # no-op if already recorded
        outcome.receipt = item.receipt
        result = self._wait(target, item)
        outcome.progress = result.progress
        self.journal.finished(item.file_id, result)
        outcome.status, outcome.message, outcome.finished_at = result.status, result.message, result.finished_at
        if context.keep:
            outcome.final_path = item.path
        else:
            outcome.final_path = archive.archive(
                item.path, self.config.agent.archive_dir, name=outcome.name, when=outcome.finished_at
            )
            log.info("archived: %s -> %s", outcome.name, outcome.final_path)
        self.journal.archived(item.file_id, outcome.final_path)
        self.narrate(f"  {outcome.name}: {outcome.status.value}{_count_text(result.progress)} → {outcome.final_path}")
        self._fetch_record_log(target, item)
        self.reporter.file_done(outcome)

    def _fetch_record_log(self, target: Target, item: _Item) -> None:
        """Why records failed, from the destination's record log (Learn with REST keys); a log that
        cannot be read never blocks the batch: the report says why the details are missing."""
        outcome = item.outcome
        if outcome.status not in RECORD_LOG_STATUSES or outcome.receipt is None:
            return
        if not isinstance(target, RecordLogSource) or outcome.finished_at is None:
            return
        archive_dir = self.config.agent.archive_dir
        csv_path = archive.record_log_path(outcome.final_path, archive_dir, name=outcome.name, when=outcome.finished_at)
        try:
            finished = outcome.status is not Status.TIMED_OUT
            record = target.record_log(outcome.receipt, csv_path, self.stop, finished=finished)
        except OSError as exc:
            record = RecordLog(outcome.receipt.reference, complete=False, problem=f"the log could not be saved: {exc}")
        if record is None:
            return
        outcome.record_log = record
        self.journal.record_log_saved(item.file_id, record)
        where = record.csv_path or "not saved"
        log.info("record log: %s %s entries %s → %s", outcome.name, record.total, dict(record.counts), where)
        if record.problem:
            log.warning("record log of %s incomplete: %s", outcome.name, record.problem)
        self.narrate(
            f"    record log: {record.total} entries → {where}{'; ' + record.problem if record.problem else ''}"
        )

    def _submit(self, target: Target, item: _Item, profile: TargetProfile) -> Receipt:
        outcome, inspection = item.outcome, item.inspection
        self.journal.submitting(item.file_id)
        follow_up = self.follow_up if profile.ends_later else None
        notify_url = follow_up.link_for(item.file_id) if follow_up is not None else None
        submission = Submission(
            path=item.path,
            name=outcome.name,
            object=outcome.object,
            operation=outcome.operation or "store",
            rows=outcome.rows or 0,
            non_ascii=bool(inspection and inspection.non_ascii),
            has_bom=bool(inspection and inspection.bom),
            notify_url=notify_url,
            on_sent=self.upload_progress,
            sha256=outcome.sha256,
        )
        receipt = target.submit(submission)
        self.journal.submitted(item.file_id, receipt)
        if follow_up is not None and notify_url is not None:
            follow_up.queued(item.file_id, outcome.target, receipt)
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
        settings = self.config.targets[outcome.target]
        long_run = getattr(settings, "long_run_minutes", 0.0)
        last: list[tuple[int, int, int, int]] = []
        alerted = [item.record.long_run_alerted]

        def on_progress(progress: Progress) -> None:
            self.journal.polled(item.file_id, progress)
            if not last or last[-1] != progress.counts():
                last.append(progress.counts())
                log.info(
                    "status: %s %s queued %d, completed %d, warnings %d, errors %d",
                    outcome.name,
                    receipt.reference,
                    *progress.counts(),
                )
                left = format_time_left(progress.eta_seconds)
                self.narrate(
                    f"    poll: queued {progress.queued}, completed {progress.completed}, "
                    f"warnings {progress.warnings}, errors {progress.errors}" + (f", {left}" if left else "")
                )
            minutes = (utcnow() - receipt.submitted_at).total_seconds() / 60
            if long_run and minutes >= long_run and not alerted[0]:
                alerted[0] = True
                self.journal.long_run_alerted(item.file_id)
                outcome.progress = progress
                self.reporter.still_processing(outcome, minutes)

        return target.wait(receipt, outcome.rows or 0, on_progress=on_progress, stop=self.stop)

    def _end_unsent(self, item: _Item, status: Status, reason: str, context: BatchContext) -> None:
        """A file that did not reach its destination: failed/ with a reason file, journal, report."""
        outcome = item.outcome
        outcome.status, outcome.message, outcome.finished_at = status, reason, utcnow()
        if context.keep:
            outcome.final_path = item.path
        else:
            outcome.final_path = archive.fail(
                item.path, self.config.agent.failed_dir, name=outcome.name, reason=reason, when=outcome.finished_at
            )
        self.journal.ended_unsent(item.file_id, status, reason, outcome.final_path, outcome.finished_at)
        log.warning("%s: %s -> %s: %s", status.value.lower(), outcome.name, outcome.final_path, reason)
        self.reporter.file_done(outcome)


def _count_text(progress: Progress | None) -> str:
    if progress is None:
        return ""
    return f" (completed {progress.completed}, warnings {progress.warnings}, errors {progress.errors})"
