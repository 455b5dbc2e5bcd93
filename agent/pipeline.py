"""One batch of files: claim → inspect → guard → order → submit → wait → archive → report.

Every step is written to the journal before and after it happens, so a restart knows where each
file stands: a file with a receipt is followed again (never re-sent); one whose last byte went out
without an answer is UNCONFIRMED (never re-sent); one that never got that far is sent again; a
decided file is filed away; each file's report and the batch's summary go out once (see "Crash
safety" in docs/architecture.md; each step is followed by its failpoint). Files are sent one at a
time per target and each waits for its terminal status before the next, because Learn processes a
membership file against the users and courses that exist *now*.

What differs between destinations (how to inspect, the order, whether a failed file holds its
dependents, the refresh guard) is asked of the route's profile (`agent.profiles`), never branched on.

Where files end: delivered files (anything with a receipt, whatever Learn later said about the
records) go to `archive/`; files that never reached the destination go to `failed/` with a reason.
A file posted by hand with `--keep` stays where the admin put it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from agent import claims, failpoints
from agent.batchitem import AUTOMATIC, BatchContext, BatchItem, decided, isolated, once
from agent.claims import Found, Taken
from agent.clock import SYSTEM_CLOCK, utcnow
from agent.completions import JobFollowUp
from agent.errors import BatchIncomplete, DeliveryUnknown, StopRequested, TargetError, describe, foreseen
from agent.feeds import FEED_TYPES, depends_on, sort_key
from agent.filing import file_away
from agent.guard import Guards
from agent.hashing import ContentHash
from agent.history import batch_history
from agent.journal import Journal
from agent.journal_schema import TERMINAL_STATES, FileState, Owner
from agent.profiles import TargetProfile, profile_for
from agent.recordlogs import fetch_record_log
from agent.records import (
    BatchOutcome,
    FileOutcome,
    Progress,
    Receipt,
    Reporter,
    Result,
    Status,
    Submission,
    UploadProgress,
    batch_report_key,
    file_report_key,
)
from agent.settings import Config, RouteSettings
from agent.targets.base import Target
from agent.wording import count_text, format_time_left, unanswered_at_restart
from agent.writecheck import WriteCheck

log = logging.getLogger(__name__)

Narrator = Callable[[str], None]


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
        self.guards = Guards(journal, config.agent.keysets_dir, config.agent.failed_dir)
        self.writes = WriteCheck(journal, SYSTEM_CLOCK, config.agent.settle_seconds, self.stop)

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

    def take(self, route: RouteSettings, found: list[Found], owner: Owner = Owner.SERVICE) -> Taken:
        """Plan a batch of ready files in the journal, then claim each into processing/ (`agent.claims`)."""
        return claims.take(self.journal, self.config.agent.processing_dir, route, found, owner)

    def claim(self, route: RouteSettings, path: Path, owner: Owner = Owner.SERVICE) -> int | None:
        """One file as a batch of its own (`post`); the file id, or None if the file vanished."""
        taken = self.take(route, [Found(path)], owner)
        return taken.file_ids[0] if taken.file_ids else None

    def adopt(self, route: RouteSettings, path: Path) -> int:
        """Journal a file an admin posts by hand and keeps (`post --keep`): it is not moved."""
        return claims.adopt(self.journal, route, path)

    # -- the batch ---------------------------------------------------------------------------------

    def process(
        self,
        route: RouteSettings,
        file_ids: list[int],
        context: BatchContext = AUTOMATIC,
        *,
        batch_id: int | None = None,
    ) -> BatchOutcome:
        """Take a batch's files to their end, from wherever each one stands (claimed, sent, decided,
        filed away: recovery hands over a whole batch after a crash); return the batch outcome."""
        batch_id = batch_id or self._batch_of(route, file_ids)
        batch = BatchOutcome(route=route.name, started_at=self.journal.batch(batch_id).started_at, batch_id=batch_id)
        profile = self.profile(route)
        items = [self._item(route, profile, file_id, batch_id, context) for file_id in file_ids]
        ordered, stopped = items, False
        try:
            for item in items:
                if item.record.state in (FileState.CLAIMED, FileState.SUBMITTING):
                    self._inspect_safely(route, profile, item, context)
            ordered = sorted(items, key=lambda i: sort_key(i.outcome.object, i.arrival(), i.outcome.name))
            if profile.learn_feeds and len(ordered) > 1:
                self._narrate_order(ordered)
            self._deliver_in_order(route, profile, ordered, context)
        except StopRequested:
            log.info("stop requested: files still in processing/ resume on the next start")
            stopped = True  # `status` must not show a stopped batch as a SUCCESS
            raise
        finally:
            batch.files = [i.outcome for i in ordered if i.outcome.finished_at is not None]
            batch.finished_at = utcnow()
            self.journal.finish_batch(batch_id, "STOPPED" if stopped else batch.overall.value, len(batch.files))
            failpoints.hit("batch-finished")
        self._summarize(batch)
        return batch

    def _batch_of(self, route: RouteSettings, file_ids: list[int]) -> int:
        """The batch the files were planned in, or a new one (a file adopted by `post --keep`)."""
        planned = self.journal.planned_batch(file_ids)
        if planned is not None:
            return planned
        return self.journal.start_batch(route.name, self.journal.file(file_ids[0]).owner if file_ids else Owner.SERVICE)

    def _summarize(self, batch: BatchOutcome) -> None:
        """The summary, once: journaled as sent the moment the mailer took it (or when none is due)."""
        batch_id = batch.batch_id or 0
        if self.journal.batch(batch_id).reported_at is not None:
            return
        if not batch.files:  # every file vanished before its claim: nothing to tell
            self.journal.batch_reported(batch_id)
            return
        batch.report_key = batch_report_key(batch_id)
        batch.history = batch_history(self.journal, batch)  # each feed's last deliveries, for the chart
        batch.reported = once(lambda: self.journal.batch_reported(batch_id), "summary-journaled")
        self.reporter.batch_done(batch)
        batch.reported()

    def _deliver_in_order(
        self, route: RouteSettings, profile: TargetProfile, ordered: list[BatchItem], context: BatchContext
    ) -> None:
        """Take each file on from where it stands; a file that did not arrive holds only the files that
        depend on it (`feeds.DEPENDS_ON`), and a held file in turn holds its own dependents."""
        holds = profile.holds_dependents and route.on_failure == "hold"
        blockers: list[BatchItem] = []
        left: list[BatchItem] = []  # isolated: one file's error never stops the others
        errors = []
        for item in ordered:
            errors.append(isolated(item, partial(self._advance, route, item, blockers, context), left))
            if holds and item.outcome.object and item.outcome.status.blocks_dependents:
                blockers.append(item)
        if left:
            names = ", ".join(i.outcome.name for i in left)
            raise BatchIncomplete(f"{names} left in processing/, retried later") from next(e for e in errors if e)

    def _advance(self, route: RouteSettings, item: BatchItem, blockers: list[BatchItem], context: BatchContext) -> None:
        state = item.record.state
        if state in TERMINAL_STATES:  # filed away before a crash: at most its report is missing
            self._report(item)
        elif state is FileState.FINISHED:  # decided before a crash: finish the move
            file_away(self.journal, self.config.agent, item, delivered=item.receipt is not None, keep=context.keep)
            self._report(item)
        elif state is FileState.SENT:  # the last byte went out before a crash: never sent twice
            reason = unanswered_at_restart(item.outcome.name, self.profile(route).destination)
            self._end_unsent(item, Status.UNCONFIRMED, reason, context)
        elif item.outcome.finished_at is not None:  # rejected at inspection
            return
        elif item.receipt is not None:
            self._deliver(route, item, context)
        else:
            blocker = next((b for b in blockers if depends_on(item.outcome.object, b.outcome.object)), None)
            if blocker is not None:
                self._hold_for(item, blocker)
            elif not self._guarded(route, item, context):
                self._deliver(route, item, context)

    def _item(
        self, route: RouteSettings, profile: TargetProfile, file_id: int, batch_id: int, context: BatchContext
    ) -> BatchItem:
        record = self.journal.file(file_id)
        if record.batch_id != batch_id:
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
            sent_at=record.sent_at,
        )
        receipt = Receipt.from_json(record.receipt) if record.receipt else None
        outcome.receipt = receipt
        if record.state is FileState.FINISHED or record.state in TERMINAL_STATES:
            decided(outcome, record)
        return BatchItem(record=record, path=path, outcome=outcome, receipt=receipt)

    # -- inspect -----------------------------------------------------------------------------------

    def _inspect_safely(
        self, route: RouteSettings, profile: TargetProfile, item: BatchItem, context: BatchContext
    ) -> None:
        """A file that breaks the inspection itself (a bug, an I/O error) is set aside, unsent, so it
        cannot block the rest of the batch."""
        try:
            self._inspect(route, profile, item, context)
        except (StopRequested, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.error("inspection of %s failed: %s", item.outcome.name, describe(exc), exc_info=not foreseen(exc))
            self._end_unsent(
                item,
                Status.REJECTED,
                f"feed-agent could not read the file to check it ({type(exc).__name__}: {exc}). It was not sent.",
                context,
            )

    def _inspect(self, route: RouteSettings, profile: TargetProfile, item: BatchItem, context: BatchContext) -> None:
        """Pre-flight check; a file with problems is rejected here and never sent."""
        outcome = item.outcome
        if item.receipt is not None:  # recovered after upload: inspected before the crash
            return
        target = self.config.target_for(route)
        # An S3 upload needs the digest before its first byte: the check hashes its own reads. Any
        # other upload hashes what it sends (journaled with SENT), which leaves the check free to
        # split a big file's scan across the cores.
        content = ContentHash() if profile.checksum_first else None
        forced = context.object_override or route.object
        opener = content.open if content is not None else None
        result = profile.inspect(item.path, forced, target, route.encoding, opener=opener)
        item.inspection = result
        outcome.rows, outcome.size = result.rows, result.size
        outcome.object = profile.sent_object(result)
        if content is not None and result.size and not outcome.sha256:
            outcome.sha256 = content.digest_of(item.path)
        self.journal.inspected(
            item.file_id,
            rows=result.rows,
            size=result.size,
            object=outcome.object,
            operation=outcome.operation,
            sha256=outcome.sha256,
        )
        failpoints.hit("inspect-journaled")
        described = f"{result.object} ({outcome.operation})" if outcome.object else f"a file for {profile.kind}"
        if profile.sendable(result):
            log.info("type: %s is %s, %d rows: ready to send to %s", outcome.name, described, result.rows, route.target)
            self.narrate(f"  {outcome.name}: {described}, {result.rows} rows")
            return
        reason = "; ".join(result.problems)
        log.info("type: %s is REJECTED before sending to %s: %s", outcome.name, route.target, reason)
        self.narrate(f"  {outcome.name}: REJECTED: {reason}")
        self._end_unsent(item, Status.REJECTED, f"{reason}.", context)

    def _narrate_order(self, ordered: list[BatchItem]) -> None:
        names = " → ".join(f"{i.outcome.name} ({i.outcome.object or 'rejected'})" for i in ordered)
        self.narrate(f"  order: {names}")

    # -- hold --------------------------------------------------------------------------------------

    def _hold_for(self, item: BatchItem, blocker: BatchItem) -> None:
        waited = blocker.outcome
        family = FEED_TYPES[waited.object or "person"].family
        reason = (
            f"It depends on {waited.name} ({waited.object}), which ended {waited.status.value}; sending it "
            f"now could create records that point at missing {family}s."
        )
        item.outcome.held_by = waited.name
        self.narrate(f"  {item.outcome.name}: HELD (waits for {waited.name})")
        self._end_unsent(item, Status.HELD, reason, AUTOMATIC)

    def _guarded(self, route: RouteSettings, item: BatchItem, context: BatchContext) -> bool:
        """The guards (`agent.guard`): True when the file was held (and ended) instead of sent."""
        if item.receipt is not None:
            return False
        settings = self.config.targets[item.outcome.target]
        verdict = self.guards.check(
            settings, item.outcome, item.path, force=context.force, keep=context.keep, encoding=route.encoding
        )
        if verdict.held is None:
            return False
        self.narrate(f"  {item.outcome.name}: HELD by the {item.outcome.operation} guard")
        self._end_unsent(item, Status.HELD, verdict.held, context)
        return True

    # -- deliver -----------------------------------------------------------------------------------

    def _deliver(self, route: RouteSettings, item: BatchItem, context: BatchContext) -> None:
        outcome = item.outcome
        target = self.target(route.target)
        if item.receipt is None:
            if self.stop.is_set():  # a stop between two files: the next one stays claimed, unsent
                raise StopRequested()
            reinspect = partial(self._inspect_safely, route, self.profile(route), item, context)
            if not self.writes.ready_to_send(
                item, reinspect, partial(self._end_unsent, item, Status.HELD, context=context)
            ):
                return
            try:
                item.receipt = self._submit(target, item, self.profile(route))
            except DeliveryUnknown as exc:  # the whole body went out, no answer: maybe accepted
                log.error("unconfirmed: %s: %s", outcome.name, exc.message)
                self.narrate(f"  {outcome.name}: UNCONFIRMED: {exc.message}")
                self._end_unsent(item, Status.UNCONFIRMED, exc.message, context)
                return
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
        result = self.writes.after_send(item, self._wait(target, item))
        outcome.progress = result.progress
        self.journal.finished(item.file_id, result)
        failpoints.hit("result-journaled")
        outcome.status, outcome.message, outcome.finished_at = result.status, result.message, result.finished_at
        self.guards.delivered(outcome)
        file_away(self.journal, self.config.agent, item, delivered=True, keep=context.keep)
        self.narrate(f"  {outcome.name}: {outcome.status.value}{count_text(result.progress)} → {outcome.final_path}")
        fetch_record_log(self.journal, self.config.agent.archive_dir, target, item, self.stop, self.narrate)
        self._report(item)

    def _report(self, item: BatchItem) -> None:
        """The per-file report, once: journaled as sent the moment the mailer took it (the reporter
        calls `outcome.reported`) or, when no email is due, right after the reporter returns."""
        if item.record.reported_at is not None:
            return
        outcome = item.outcome
        outcome.report_key = file_report_key(item.file_id)
        outcome.reported = once(lambda: self.journal.file_reported(item.file_id), "report-journaled")
        self.reporter.file_done(outcome)
        outcome.reported()

    def _submit(self, target: Target, item: BatchItem, profile: TargetProfile) -> Receipt:
        outcome, inspection = item.outcome, item.inspection
        self.journal.submitting(item.file_id)
        failpoints.hit("submit-journaled")

        def before_last_byte(sha256: str) -> None:
            outcome.sent_at, outcome.sha256 = utcnow(), sha256
            self.journal.sent(item.file_id, outcome.sent_at, sha256)

        def refused() -> None:  # an answer that proves nothing was queued: it may go again
            outcome.sent_at = None
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
            encoding=(inspection.encoding if inspection else None) or "utf-8",
            notify_url=notify_url,
            on_sent=self.upload_progress,
            before_last_byte=before_last_byte,
            refused=refused,
            stop=self.stop,
            sha256=outcome.sha256,
        )
        try:
            receipt = target.submit(submission)
        except StopRequested:  # a signal cut the upload short: unless SENT, the file is claimable again
            if self.journal.upload_abandoned(item.file_id, "the upload was abandoned: feed-agent was stopping"):
                log.info("stopped: the upload of %s was abandoned before its end; nothing of it was sent", outcome.name)
            raise
        failpoints.hit("receipt-received")
        self.journal.submitted(item.file_id, receipt)
        failpoints.hit("receipt-journaled")
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

    def _wait(self, target: Target, item: BatchItem) -> Result:
        outcome, receipt = item.outcome, item.receipt
        assert receipt is not None
        settings = self.config.targets[outcome.target]
        long_run = getattr(settings, "long_run_minutes", 0.0)
        last: list[tuple[int, int, int, int]] = []
        alerted = [item.record.long_run_alerted]

        def on_progress(progress: Progress) -> None:
            self.journal.polled(item.file_id, progress)
            failpoints.hit("poll-journaled")
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

    def _end_unsent(self, item: BatchItem, status: Status, reason: str, context: BatchContext) -> None:
        """A file that did not reach its destination (or may have, UNCONFIRMED): decided, journaled,
        then failed/ with a reason file, journaled again, reported."""
        outcome = item.outcome
        outcome.status, outcome.message, outcome.finished_at = status, reason, utcnow()
        self.journal.decided_unsent(item.file_id, status, reason, outcome.finished_at, outcome.held_by)
        failpoints.hit("result-journaled")
        file_away(self.journal, self.config.agent, item, delivered=False, keep=context.keep)
        self._report(item)
