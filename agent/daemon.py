"""The long-running agent (`watch`), burst mode for cron (`run`), the manual `post`, `status` and `check`.

The loop is deliberately single-threaded for delivery: one file at a time, each waiting for its
terminal status, so no membership ever races its users. The watcher's threads only observe.
A failing step is logged with its cause and the loop goes on; only a signal stops it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

from agent import archive
from agent.clock import SYSTEM_CLOCK, Clock
from agent.completions import JobFollowUp, configured_base_url
from agent.errors import AgentError, AlreadyRunning, ConfigError
from agent.journal import Journal
from agent.notify import EmailReporter
from agent.pipeline import Pipeline
from agent.receiver import Receiver
from agent.records import BatchOutcome, FileOutcome, Reporter
from agent.recovery import recover
from agent.retry import RetryPolicy
from agent.settings import Config, RouteSettings
from agent.spool import describe, spool_state
from agent.watcher import Candidate, FolderWatcher

log = logging.getLogger(__name__)

FAILED_STEP_PAUSE = 0.25  # after a failed step, never loop faster than this (no log storm)
MIN_PAUSE = 0.005  # a deadline just reached: let the clock pass it rather than spin
HOUSEKEEPING_SECONDS = 60.0
RECENT_BATCHES = 100
# Files a failed step left in processing/ are followed again after these pauses (as on a restart).
RECOVERY_RETRY = RetryPolicy(attempts=1_000_000, first_delay=5.0, cap=300.0)


class _WorkFolderLock:
    """One `watch`/`run` per work folder: two would each recover the other's in-flight files, and a
    file still being uploaded by one would be sent again by the other. (`post` does not recover
    anything, so it may run beside the service.) The kernel drops the lock when the process dies."""

    def __init__(self, work_dir: Path) -> None:
        self.path = work_dir / "agent.lock"
        self.handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise AlreadyRunning(
                f"another feed-agent (pid {holder}) is already watching or running on {work_dir}; "
                "nothing was done (stop it first, or let it process the files)"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()

    def release(self) -> None:
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


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
        self.lock = _WorkFolderLock(config.agent.work_dir)
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
        # Recent batches only (a daemon runs for months); `all_ok` keeps the verdict for `run`.
        self.batches: deque[BatchOutcome] = deque(maxlen=RECENT_BATCHES)
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
        self._recover()
        routes = [self.config.route(route_name)] if route_name else list(self.routes.values())
        readable = [route for route in routes if self._folder_readable(route)]
        self.watcher.scan()
        self.watcher.wait_until_settled(timeout=2 * self.config.agent.settle_seconds + 30)
        for route in readable:
            self._run_batch(route, [c for c in self.watcher.pending(route.name) if c.ready])
        self._missing_alerts()  # cron installs have no daemon to do it
        self._prune_archive()
        self.follow_up.check_deadlines()  # the dead-man's switch works without watch
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
        """Run until `stop` is set: batches as files settle, alerts, retention."""
        for route in self.routes.values():
            log.info("watching %s for route %s -> target %s", route.watch, route.name, route.target)
        self.serve_webhook()
        self._deliver_reports(force=True)
        self._recover()
        self.watcher.start()
        for route in self.routes.values():
            log.info("route %s uses the %s observer", route.name, self.watcher.observer_kind(route.name))
        next_housekeeping = 0.0
        failures, retry_at = 0, None
        while not self.stop.is_set():
            floor = MIN_PAUSE
            try:
                if retry_at is not None and self.clock.monotonic() >= retry_at:
                    # Files a failed step left in processing/: followed again (never re-sent when
                    # they have a receipt), as on a restart.
                    self._recover()
                    failures, retry_at = 0, None
                self._tick()
                if self.clock.monotonic() >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = self.clock.monotonic() + self.housekeeping_seconds
            except Exception as exc:  # one bad step must never kill the daemon
                if self.stop.is_set():
                    break
                failures += 1
                delay = RECOVERY_RETRY.delay(failures)
                log.exception("step failed (%s); files in processing/ are retried in %g s", exc, delay)
                retry_at = self.clock.monotonic() + delay
                floor = FAILED_STEP_PAUSE
            self.wake.wait(max(floor, self._until_next(next_housekeeping, retry_at)))
            self.wake.clear()

    def _until_next(self, *due: float | None) -> float:
        """Seconds until the next thing the loop must do by itself: a route's batch window closing
        (or its longest wait passing), housekeeping, a retry. Anything else (a file arriving or
        becoming ready, a stop) sets `wake`: so a batch goes at its deadline, not a tick later."""
        deadlines = [when for when in due if when is not None]
        for route in self.routes.values():
            pending = self.watcher.pending(route.name)
            if any(c.ready for c in pending):  # the same rule as _tick's
                quiet = max(c.last_change for c in pending) + self.config.agent.batch_window_seconds
                overdue = min(c.first_seen for c in pending) + self.config.agent.batch_max_wait_seconds
                deadlines.append(min(quiet, overdue))
        now = self.clock.monotonic()
        return min(deadlines, default=now + self.housekeeping_seconds) - now

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
        self._record(recover(self.pipeline, self.journal, self.routes))

    def _tick(self) -> None:
        now = self.clock.monotonic()
        for route in self.routes.values():
            pending = self.watcher.pending(route.name)
            for candidate in pending:
                if candidate.path not in self._seen:
                    self._seen.add(candidate.path)
                    log.info("arrival: %s (route %s)", candidate.path.name, route.name)
                    self.narrate(f"  arrived: {candidate.path.name}")
            if not pending or not any(c.ready for c in pending):
                continue
            quiet = now - max(c.last_change for c in pending) >= self.config.agent.batch_window_seconds
            overdue = now - min(c.first_seen for c in pending) >= self.config.agent.batch_max_wait_seconds
            if quiet or overdue:
                self._run_batch(route, [c for c in pending if c.ready])
            if self.stop.is_set():
                return

    def _run_batch(self, route: RouteSettings, ready: list[Candidate]) -> None:
        if not ready:
            return
        file_ids = []
        self.narrate(f"  batch of {len(ready)} on route {route.name}: " + ", ".join(c.path.name for c in ready))
        for candidate in ready:
            log.info("ready: %s", candidate.path.name)
            file_id = self.pipeline.claim(route, candidate.path, candidate.arrived_at)
            if candidate.marker is not None:
                candidate.marker.unlink(missing_ok=True)
            self._seen.discard(candidate.path)
            if file_id is not None:
                file_ids.append(file_id)
        self.watcher.take(c.path for c in ready)
        if file_ids:
            self._record([self.pipeline.process(route, file_ids)])

    def _record(self, batches: list[BatchOutcome]) -> None:
        self.batches.extend(batches)
        self.all_ok = self.all_ok and all(batch.ok for batch in batches)

    def _unsupported(self, route_name: str, path: Path, reason: str) -> None:
        """Symlinks, folders and special files are never followed or sent: move them aside."""
        try:
            moved = archive.fail(
                path,
                self.config.agent.failed_dir,
                name=path.name,
                reason=f"{reason}; only regular files are processed",
                when=self.clock.now(),
            )
            log.warning("rejected: %s in route %s: %s (moved to %s)", path.name, route_name, reason, moved)
        except OSError as exc:
            log.error("cannot move %s aside (%s): %s", path, reason, exc)

    def _housekeeping(self) -> None:
        self._deliver_reports()
        self._missing_alerts()
        self.follow_up.check_deadlines()
        self._prune_archive()

    def _deliver_reports(self, *, force: bool = False) -> None:
        if self.email is not None:
            self.email.deliver_waiting(force=force)

    def _prune_archive(self) -> None:
        removed = archive.prune_archive(
            self.config.agent.archive_dir, self.config.agent.archive_retention_days, self.clock.now()
        )
        if removed:
            log.info(
                "retention: removed %d archived files older than %g days",
                len(removed),
                self.config.agent.archive_retention_days,
            )

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


def run_once(config: Config, route_name: str | None = None) -> RunVerdict:
    """`feed-agent run`: ok when every file completed without record errors and no report waits."""
    if not config.routes:
        raise_no_routes(config)
    try:
        agent = Agent(config)
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return RunVerdict(False, [exc.message])
    try:
        ok = agent.run_once(route_name)
    finally:
        agent.close()
    files = [f for b in agent.batches for f in b.files]
    attention = [*agent.attention, *(_file_line(f) for f in files if not f.status.ok)]
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

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal: stopping now")
            os._exit(1)
        log.info(
            "signal %s: finishing the current step, then stopping (send again to force)",
            signal.Signals(signum).name,
        )
        stop.set()
        agent.wake.set()

    try:
        agent = Agent(config, stop=stop)
    except AlreadyRunning as exc:
        log.error("%s", exc)
        return False
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.watch()
    except Exception as exc:
        if not stop.is_set():
            raise
        log.info("stopped during a step (%s); it resumes on the next start", type(exc).__name__)
    finally:
        agent.close()
        log.info("stopped")
    return True
