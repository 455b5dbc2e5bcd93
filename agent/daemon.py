"""The long-running agent (`watch`), burst mode for cron (`run`), the manual `post`, `status` and `check`.

The loop is deliberately single-threaded for delivery: one file at a time, each waiting for its
terminal status, so no membership ever races its users. The watcher's threads only observe.
A failing step never ends it: it becomes a failure episode (`agent.troubles`: `recovery` at start,
`route:NAME` for a batch that left files in processing/ (only that route waits), `drop:PATH`,
`archive`, `failed`), logged once per attempt, retried with back-off and emailed once when it starts
and once when it clears; only a signal stops the loop.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from agent import archive, guard, interrupts, unmoved
from agent.batching import batch_due
from agent.claims import Found, Taken
from agent.clock import SYSTEM_CLOCK, Clock
from agent.completions import JobFollowUp, configured_base_url
from agent.errors import AgentError, AlreadyRunning, ConfigError, FolderError, StopRequested
from agent.journal import Journal
from agent.notify import EmailReporter
from agent.pipeline import Pipeline
from agent.receiver import Receiver
from agent.records import BatchOutcome, FileOutcome, Reporter
from agent.recovery import RecoveryIncomplete, recover
from agent.retry import RetryPolicy
from agent.settings import Config, RouteSettings
from agent.spool import describe, spool_state
from agent.strays import Strays
from agent.troubles import Troubles
from agent.watcher import Candidate, FolderWatcher
from agent.wording_troubles import trouble_title
from agent.worklock import WorkFolderLock

log = logging.getLogger(__name__)

LOOP_SECONDS = 0.25  # the loop's turn while a failure episode is open or recovery/moves wait
MIN_PAUSE = 0.005  # a deadline just reached: let the clock pass it rather than spin
HOUSEKEEPING_SECONDS = 60.0
RECENT_BATCHES = 100
RECENT_FILES = 20_000  # and no more files in them than this (one batch of 200,000 files stays whole)
WATCH_FILES = 200  # `watch` (months of batches, memory plateau) keeps fewer: narration needs no more
# Failure episodes (agent.troubles): finishing what is in processing/, and the loop's own turn.
RECOVERY, LOOP, HOUSEKEEPING = "recovery", "loop", "housekeeping"
MOVES = (unmoved.ARCHIVE, unmoved.FAILED)


class Agent:
    """Watcher + pipeline + journal for one configuration; used by `watch`, `run` and `demo`."""

    def __init__(
        self,
        config: Config,
        *,
        reporter: Reporter | None = None,
        narrate: Callable[[str], None] | None = None,
        stop: threading.Event | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        archive.prepare_folders(config.agent)
        self.lock = WorkFolderLock(config.agent.work_dir)
        self.config = config
        self.stop = stop or threading.Event()
        self.wake = threading.Event()
        try:
            self.journal = Journal(config.agent.journal_path)
        except BaseException:
            self.lock.release()  # an unusable journal must not leave the work folder locked
            raise
        self.clock = clock
        # Our own reporter also owns the mail spool, sent again at start and by housekeeping.
        self.email: EmailReporter | None = None
        if reporter is None:
            self.email = reporter = EmailReporter(config, self.journal)
        self.reporter: Reporter = reporter
        self.strays = Strays(config, self.journal, reporter, clock.now)
        self.narrate: Callable[[str], None] = narrate or (lambda _line: None)
        self.follow_up = JobFollowUp(
            config, self.journal, self.reporter, base_url=configured_base_url(config.webhook), clock=clock
        )
        self.receiver: Receiver | None = None
        self.pipeline = Pipeline(
            config, self.journal, self.reporter, stop=self.stop, narrate=narrate, follow_up=self.follow_up
        )
        self.routes = {route.name: route for route in config.routes}
        self.watcher = FolderWatcher(
            {route.name: route.watch for route in config.routes},
            settle_seconds=config.agent.settle_seconds,
            rescan_seconds=config.agent.rescan_seconds,
            observer=config.agent.observer,
            ready_suffix=config.agent.ready_suffix,
            ignore=config.agent.ignore,
            on_unsupported=self._unsupported,
            on_change=self.wake.set,
        )
        self.housekeeping_seconds = HOUSEKEEPING_SECONDS
        settings = config.agent
        policy = RetryPolicy(attempts=2**31, first_delay=settings.retry_first_seconds, cap=settings.retry_max_seconds)
        self.troubles = Troubles(self.journal, self.reporter, policy=policy, clock=clock)
        watched = {f"drop:{route.watch}" for route in config.routes}
        for episode in self.troubles.open_episodes():  # a drop folder no route watches any more
            if episode.key.startswith("drop:") and episode.key not in watched:
                self.troubles.forget(episode.key)
        self._recovery_due = True  # nothing new is taken before what is in processing/ is finished
        self._left: set[str] = set()  # routes whose failed batch left files in processing/ (`route:NAME`)
        self._moves_due = True  # decided files whose folder refused them (agent.unmoved)
        # Recent batches only (a daemon runs for months); `all_ok` keeps the verdict for `run`.
        self.batches: deque[BatchOutcome] = deque(maxlen=RECENT_BATCHES)
        self.watching = False
        self.all_ok = True
        self.attention: list[str] = []  # what `run` says on stderr: one line per thing to look at
        self._seen: set[Path] = set()

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        self.watcher.stop()
        self.pipeline.close()
        self.journal.close()
        self.lock.release()

    # -- modes ---------------------------------------------------------------------------------

    def run_once(self, route_name: str | None = None) -> bool:
        """Recover, then process every file present now (once it has settled), route by route.

        A file still being written is waited for (bounded: a file whose ready marker never comes is
        left for the next run). Like `watch`, it sends waiting reports first and MISSING alerts."""
        self._deliver_reports(force=True)
        self._move_waiting()
        self._attempt(RECOVERY, self._recover)
        routes = [self.config.route(route_name)] if route_name else list(self.routes.values())
        readable = [route for route in routes if self._folder_readable(route)]
        self.watcher.scan()
        self.watcher.wait_until_settled(timeout=2 * self.config.agent.settle_seconds + 30)
        if self.stop.is_set():  # a signal while files settled: take nothing new
            raise StopRequested()
        for route in readable if not self._recovery_due else []:
            if route.name not in self._left:  # a route that left files behind takes nothing new
                self._run_batch(route, [c for c in self.watcher.pending(route.name) if c.ready])
        self._missing_alerts()  # cron installs have no daemon to do it
        self._prune_archive()
        self.follow_up.check_deadlines()  # the dead-man's switch works without watch
        for episode in self.troubles.open_episodes(failed_here=True):  # each emailed once, across runs too
            self.attention.append(f"{trouble_title(episode.key)}: {episode.problem}")
            self.all_ok = False
        return self.all_ok

    def _folder_readable(self, route: RouteSettings) -> bool:
        """A missing or unreadable drop folder (an unmounted share) is a failed night, not a quiet one."""
        folder = route.watch
        if folder.is_dir() and os.access(folder, os.R_OK | os.X_OK):
            return True
        problem = "is missing" if not folder.exists() else "is not a readable folder"
        line = (
            f"route {route.name}: the watched folder {folder} {problem} (an unmounted share?); "
            "nothing was taken from it: mount or create it, or fix its permissions"
        )
        log.error("%s", line)
        self.attention.append(line)
        self.all_ok = False
        return False

    def watch(self) -> None:
        """Run until `stop` is set: batches as files settle, alerts, retention. A step that fails is
        an episode of `agent.troubles` (retried with back-off, emailed once); it never ends the loop."""
        self.watching = True
        for route in self.routes.values():
            log.info("watching %s for route %s -> target %s", route.watch, route.name, route.target)
        self.serve_webhook()
        try:
            self._attempt(HOUSEKEEPING, lambda: self._deliver_reports(force=True))
            self._attempt(LOOP, self._turn)  # recovery first; a failure there never stops `watch`
            self.watcher.start()
            for route in self.routes.values():
                log.info("route %s uses the %s observer", route.name, self.watcher.observer_kind(route.name))
            self._loop()
        except Exception as exc:
            if not self.stop.is_set():
                raise
            log.info("stopped during a step (%s); it resumes on the next start", type(exc).__name__)

    def _loop(self) -> None:
        next_housekeeping = 0.0
        while not self.stop.is_set():
            if self.troubles.due(LOOP):
                self._attempt(LOOP, self._turn)  # a bug in the loop itself: retried with back-off too
            if self.clock.monotonic() >= next_housekeeping and self.troubles.due(HOUSEKEEPING):
                self._attempt(HOUSEKEEPING, self._housekeeping)
                next_housekeeping = self.clock.monotonic() + self.housekeeping_seconds
            self.wake.wait(self._until_next(next_housekeeping))
            self.wake.clear()

    def _until_next(self, next_housekeeping: float) -> float:
        """Seconds the loop may sleep: healthy, until a route's batch is due or housekeeping (a file
        arriving or becoming ready, or a stop, sets `wake`), so a batch goes at its deadline, not a
        tick later; while a step is being retried (agent.troubles) or recovery, a route's left files or
        moves wait, LOOP_SECONDS."""
        if self.troubles.retrying() or self._recovery_due or self._moves_due or self._left:
            return LOOP_SECONDS
        due = (batch_due(self.watcher.pending(route.name), self.config.agent) for route in self.routes.values())
        return max(MIN_PAUSE, min(next_housekeeping, *due) - self.clock.monotonic())

    def _turn(self) -> None:
        """Moves that wait, then what is in processing/ (nothing new is taken before it), then new batches."""
        self._move_waiting()
        if self._recovery_due and self.troubles.due(RECOVERY):
            self._attempt(RECOVERY, self._recover)
        if not self._recovery_due:
            self._tick()

    def _attempt(self, key: str, step: Callable[[], object], *, folder: Path | None = None) -> bool:
        """Run one step; its failure is one attempt of the episode `key` (logged in one line, paused,
        emailed once), its success ends that episode. A stop request ends the step as it came."""
        try:
            step()
        except Exception as exc:
            if self.stop.is_set():
                raise
            self.troubles.failed(key, exc, folder=folder or self.config.agent.work_dir)
            return False
        self.troubles.cleared(key)
        return True

    def _move_waiting(self) -> None:
        """Decided files whose folder refused them (`agent.unmoved`): moved with back-off, one episode
        per folder; never sent, polled or reported again."""
        if not self._moves_due or not any(self.troubles.due(key) for key in MOVES):
            return
        for key, records in unmoved.waiting(self.journal).items():
            if not records:
                self.troubles.cleared(key)
            elif self.troubles.due(key):
                folder = unmoved.folder_of(key, self.config.agent)
                move = partial(unmoved.move_waiting, self.journal, self.config.agent, records)
                self._attempt(key, move, folder=folder)
        self._moves_due = any(self.troubles.failing(key) for key in MOVES)

    def serve_webhook(self) -> None:
        """Start the job-notification receiver when [webhook] listen is set (its own thread)."""
        settings = self.config.webhook
        if not settings.enabled or self.receiver is not None:
            return
        try:
            self.receiver = Receiver(settings.address, self.follow_up.settle).start()
        except OSError as exc:
            raise AgentError(
                f"[webhook] listen: cannot listen on {settings.listen} ({exc.strerror or exc}); another program "
                "may use that port, or the address is not this machine's"
            ) from None
        self.follow_up.base_url = settings.public_url or self.receiver.url

    # -- internals -----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish what is in processing/ (at start, before anything new is taken). A route whose
        batch cannot be finished now becomes its own episode (`route:NAME`); the others go on."""
        try:
            self._record(recover(self.pipeline, self.journal, self.routes))
        except RecoveryIncomplete as exc:
            self._record(exc.outcomes)
            for name, cause in exc.causes.items():
                self._left.add(name)
                self.troubles.failed(f"route:{name}", cause)
        for episode in self.troubles.open_episodes():  # a route an earlier process left: finished now
            if episode.key.startswith("route:") and episode.key.removeprefix("route:") not in self._left:
                self.troubles.cleared(episode.key)
        self._recovery_due = False

    def _recover_route(self, route: RouteSettings) -> None:
        """What a failed batch of `route` left in processing/, again, in order, before its new files."""
        try:
            self._record(recover(self.pipeline, self.journal, self.routes, only=route.name))
        except RecoveryIncomplete as exc:
            self._record(exc.outcomes)
            raise
        self._left.discard(route.name)

    def _tick(self) -> None:
        now = self.clock.monotonic()
        for route in self.routes.values():
            if route.name in self._left:  # its left files first, on their back-off; other routes go on
                if self.troubles.due(f"route:{route.name}"):
                    self._attempt(f"route:{route.name}", partial(self._recover_route, route))
                if route.name in self._left:
                    continue
            pending = self.watcher.pending(route.name)
            for candidate in pending:
                if candidate.path not in self._seen:
                    self._seen.add(candidate.path)
                    log.info("arrival: %s (route %s)", candidate.path.name, route.name)
                    self.narrate(f"  arrived: {candidate.path.name}")
            if not pending:
                self.troubles.rest(f"drop:{route.watch}")  # the refused files are gone: nothing to retry
            if now >= batch_due(pending, self.config.agent):
                self._run_batch(route, [c for c in pending if c.ready])
            if self.stop.is_set():
                return

    def _run_batch(self, route: RouteSettings, ready: list[Candidate]) -> None:
        if not ready:
            return
        drop = f"drop:{route.watch}"
        if not self.troubles.due(drop):
            return  # the drop folder refused the last claim: its pause is not over
        if not self.troubles.failing(drop):  # once per file, not once per retry
            self.narrate(f"  batch of {len(ready)} on route {route.name}: " + ", ".join(c.path.name for c in ready))
            for candidate in ready:
                log.info("ready: %s", candidate.path.name)
        taken: list[Taken] = []
        found = [Found(c.path, c.arrived_at) for c in ready]
        if not self._attempt(drop, lambda: taken.append(self.pipeline.take(route, found)), folder=route.watch):
            self._left.add(route.name)  # claims that went through before the refusal are finished first
            return
        for candidate in ready:
            if candidate.marker is not None:
                candidate.marker.unlink(missing_ok=True)
            self._seen.discard(candidate.path)
        self.watcher.take(c.path for c in ready)
        batch = taken[0]
        self._left.add(route.name)  # until the batch is through: if it is not, its route retries it
        key = f"route:{route.name}"
        if self._attempt(
            key, lambda: self._record([self.pipeline.process(route, batch.file_ids, batch_id=batch.batch_id)])
        ):
            self._left.discard(route.name)
        gc.collect()  # the batch's reference cycles (messages, responses) go now, not when the collector's
        # thresholds happen to trigger: `watch` then stays at 53 MB instead of 61 (bench/memory_bench.py)

    def _record(self, batches: list[BatchOutcome]) -> None:
        self.batches.extend(batches)
        limit = WATCH_FILES if self.watching else RECENT_FILES
        while len(self.batches) > 1 and sum(len(b.files) for b in self.batches) > limit:
            self.batches.popleft()  # a daemon runs for months: the outcomes it keeps are bounded
        self.all_ok = self.all_ok and all(batch.ok for batch in batches)
        refused = {unmoved.ARCHIVE if f.receipt else unmoved.FAILED: f for b in batches for f in b.files if f.not_moved}
        told = self.config.email.per_file != "no"  # its own report said so: no second email for the start
        for key, outcome in refused.items():
            folder = unmoved.folder_of(key, self.config.agent)
            self.troubles.failed(key, FolderError(f"{outcome.name}: {outcome.not_moved}"), folder=folder, told=told)
            self._moves_due = True

    def _unsupported(self, route_name: str, path: Path, reason: str) -> None:
        """Symlinks, folders and special files are never followed or sent (`agent.strays`: moved
        aside, a folder left in place, each with a REJECTED email); `run` then exits 1."""
        line = self.strays.found(self.routes[route_name], path, reason)
        if line is not None:
            self.attention.append(line)
            self.all_ok = False

    def _housekeeping(self) -> None:
        self._deliver_reports()
        self._missing_alerts()
        self.follow_up.check_deadlines()
        self._prune_archive()

    def _deliver_reports(self, *, force: bool = False) -> None:
        if self.email is not None:
            self.email.deliver_waiting(force=force)

    def _prune_archive(self) -> None:
        """Archived files and held key lists age out together (each prune logs what it deleted)."""
        days, now = self.config.agent.archive_retention_days, self.clock.now()
        archive.prune_archive(self.config.agent.archive_dir, days, now)
        removed = guard.prune_held_lists(self.config.agent.keysets_dir, days, now)
        if removed:
            log.info("retention: deleted %d held key list(s) older than %g days", len(removed), days)

    def _missing_alerts(self) -> None:
        """The SIS export silently stopped: no file on a route for `expect_every_hours`.

        Both the silence's start and the alert live in the journal, so `run` (a new process every
        night) and `watch` alike alert once per silence."""
        for route in self.routes.values():
            if not route.expect_every_hours:
                continue
            last = self.journal.last_arrival(route.name)
            since = last or self._watched_since(route.name)
            hours = (self.clock.now() - since).total_seconds() / 3600
            if hours < route.expect_every_hours:
                continue
            key = f"missing_alerted:{route.name}"
            if self.journal.get_meta(key) == since.isoformat():
                continue
            self.journal.set_meta(key, since.isoformat())
            line = f"route {route.name}: no file arrived for {hours:.1f} hours (missing-file alert sent)"
            log.warning("missing: %s", line)
            self.attention.append(line)
            self.all_ok = False
            self.reporter.missing(route.name, route.watch, route.expect_every_hours, last)

    def _watched_since(self, route_name: str) -> datetime:
        """When the agent first looked at a route that never had a file (kept across runs)."""
        key = f"watched_since:{route_name}"
        known = self.journal.get_meta(key)
        if known:
            return datetime.fromisoformat(known)
        now = self.clock.now()
        self.journal.set_meta(key, now.isoformat())
        return now


# ------------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True)
class RunVerdict:
    """What `feed-agent run` ends with: the exit status, and one line per thing that needs a look
    (printed on stderr even with --quiet, so cron mails exactly the bad nights)."""

    ok: bool
    attention: list[str] = field(default_factory=list)


STOPPED_RUN = (
    "stopped by a signal before the end; files left in processing/ are taken up by the next run "
    "(an upload that was cut short is sent again, one with a reference code is followed, never re-sent)"
)


def run_once(config: Config, route_name: str | None = None) -> RunVerdict:
    """`feed-agent run`: ok when every file completed without record errors and no report waits."""
    if not config.routes:
        raise_no_routes(config)
    try:
        agent = Agent(config)
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return RunVerdict(False, [exc.message])
    stopped: list[str] = []
    try:
        with interrupts.stop_on_signals(agent.stop, wake=agent.wake.set):  # as `watch`: an upload is abandoned
            ok = agent.run_once(route_name)
    except StopRequested:
        ok, stopped = False, [STOPPED_RUN]
        log.warning("%s", STOPPED_RUN)
    finally:
        agent.close()
    files = [f for b in agent.batches for f in b.files]
    attention = [*agent.attention, *stopped, *(_file_line(f) for f in files if not f.status.ok)]
    waiting = spool_state(config)
    if waiting.waiting:
        ok = False
        error = agent.email.spool.last_error if agent.email is not None else None
        attention += [
            line + (f" (last attempt: {error})" if error else "") + "; they are sent again at the next run"
            for line in describe(waiting)[:1]
        ]
    log.info("run finished: %d file(s), %s", len(files), "all completed" if ok else "some need attention")
    return RunVerdict(ok, attention)


def _file_line(outcome: FileOutcome) -> str:
    where = f" (now {outcome.final_path})" if outcome.final_path else ""
    why = f": {outcome.message}" if outcome.message else ""
    return f"{outcome.name} {outcome.status.value}{why}{where}"


def raise_no_routes(config: Config) -> None:

    raise ConfigError(f"{config.path}: no [route:NAME] section; add one with a watch folder and a target")


def watch(config: Config) -> bool:
    """`feed-agent watch`: until SIGTERM/SIGINT; a second signal forces the stop.

    False when it could not start because another agent holds the work folder."""
    if not config.routes:
        raise_no_routes(config)
    stop = threading.Event()
    try:
        agent = Agent(config, stop=stop)
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return False
    try:
        with interrupts.stop_on_signals(stop, wake=agent.wake.set):  # an upload under way is abandoned
            agent.watch()
    except Exception as exc:
        if not stop.is_set():
            raise
        log.info("stopped during a step (%s); it resumes on the next start", type(exc).__name__)
    finally:
        agent.close()
        log.info("stopped")
    return True
