"""`feed-agent post`: one file by hand, owned by the process that posts it, and plain words when stopped.

Why a module of its own: a manual post is not a small batch of the service, it is an admin's file.
- **It owns its file.** Its journal rows carry `Owner.POST` (the file was moved into processing/) or
  `Owner.POST_KEEP` (`--keep`: left where the admin put it) and the pid of the post. The service's
  recovery never adopts such a row, even after the post died (issue 14.2: a `watch` restart posted an
  admin's file a second time, and `run` archived a `--keep` file).
- **Only `post` resumes it.** `post FILE` again, for a file whose earlier post is no longer running
  (`agent.processes`), takes the same journal row over instead of starting afresh: a file with a
  receipt is followed to its end by polling and never sent again; a file whose whole body went out
  with no answer ends UNCONFIRMED (never re-sent); a file not yet sent is sent. FILE may name the
  file where it is now (processing/, shown by `status`) or where the admin had it.
- **`--keep` is refused inside a watched folder**: the service would send the file a second time once
  the post left it there.
- **Stopped (Ctrl-C, SIGTERM)**: the upload under way is abandoned (`agent.interrupts`) or the polling
  ends, and the admin is told the state the file was left in and the one command that goes on from
  there; an unsent file goes back where the admin had it. The exit status is 1.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agent import archive, processes
from agent.advice import post_command, resume_post_command
from agent.batchitem import BatchContext
from agent.claims import settle_claim
from agent.clock import utcnow
from agent.completions import JobFollowUp, configured_base_url
from agent.errors import AgentError, StopRequested
from agent.journal import Journal
from agent.journal_schema import FileRecord, FileState, Owner
from agent.notify import EmailReporter
from agent.pipeline import Narrator, Pipeline
from agent.records import FileOutcome, UploadProgress
from agent.settings import Config, RouteSettings
from agent.wording_posts import (
    new_file_not_sent,
    post_owner_running,
    post_stopped,
    post_withdrawn_reason,
    resuming_post,
)

NOT_SENT_STATES = (FileState.CLAIMING, FileState.CLAIMED, FileState.SUBMITTING)


class PostInterrupted(StopRequested):
    """A `post` stopped by a signal; the message says where the file is and what to run next."""


class _Post:
    """One `post` command: which journal row it works on, and the pipeline that takes it to its end."""

    def __init__(self, config: Config, journal: Journal, pipeline: Pipeline, echo: Narrator) -> None:
        self.config, self.journal, self.pipeline, self.echo = config, journal, pipeline, echo
        self.processing = config.agent.processing_dir

    def take(self, route: RouteSettings, path: Path, keep: bool) -> tuple[RouteSettings, int, Owner]:
        """The row to work on: an interrupted post of this file (resumed), else a new claim or adoption."""
        earlier = self.journal.manual_in_flight(path)
        if earlier is not None:
            resumed = self._resume(earlier, path)
            if resumed is not None:
                return resumed
        if not path.is_file():
            raise AgentError(f"{path}: no such file")
        if path.is_relative_to(self.processing.absolute()):
            raise AgentError(
                f"{path} is in processing/: the service is handling it (see `feed-agent status`); nothing was done"
            )
        if keep:
            self._refuse_watched(path)
            return route, self.pipeline.adopt(route, path), Owner.POST_KEEP
        file_id = self.pipeline.claim(route, path, owner=Owner.POST)
        if file_id is None:
            raise AgentError(f"{path}: the file vanished before it could be taken (did the service take it?)")
        return route, file_id, Owner.POST

    def _resume(self, earlier: FileRecord, path: Path) -> tuple[RouteSettings, int, Owner] | None:
        if processes.is_feed_agent(earlier.owner_pid, started_by=earlier.updated_at):
            raise AgentError(post_owner_running(earlier))
        route = next((r for r in self.config.routes if r.name == earlier.route), None)
        if route is None:
            raise AgentError(
                f"{earlier.name} was posted through route {earlier.route}, which the configuration no longer has"
            )
        if earlier.state is FileState.CLAIMING and not self._claim_settled(earlier):
            self.journal.abandoned(earlier.id, "the post was interrupted before it took the file")
            return None  # never taken (or gone): a fresh post of the file, if it is there
        self.journal.resumed_by(earlier.id, os.getpid())
        self.echo(resuming_post(earlier, path))
        if earlier.current_path != str(path) and path.is_file():  # a new export where the old one was
            self.echo(new_file_not_sent(path))
        return route, earlier.id, earlier.owner

    def _claim_settled(self, earlier: FileRecord) -> bool:
        """A post that died around the move: the claim is finished where the file is (its folder or processing/)."""
        return earlier.owner is Owner.POST and settle_claim(self.journal, self.processing, earlier) is not None

    def _refuse_watched(self, path: Path) -> None:
        for route in self.config.routes:
            if path.is_relative_to(route.watch.absolute()):
                raise AgentError(
                    f"{path} is in the watched folder of route {route.name}: with --keep the file would stay "
                    "there and the service would send it a second time. Move it out of that folder first, or "
                    "post it without --keep (then it is archived like any other)"
                )

    def stopped(self, file_id: int) -> PostInterrupted:
        """Where a stop left the file, in words; an unsent file goes back where the admin had it."""
        record = self.journal.file(file_id)
        keep = record.owner is Owner.POST_KEEP
        kind = self.config.targets[record.target].type
        if record.state in NOT_SENT_STATES:
            where = self._withdraw(record)
            command = post_command(self.config.path, where, route=record.route, operation=record.operation, keep=keep)
        else:
            where = Path(record.current_path or "")
            command = resume_post_command(self.config.path, where, route=record.route, keep=keep)
        return PostInterrupted(post_stopped(record, where, command, kind))

    def _withdraw(self, record: FileRecord) -> Path:
        """Nothing was sent: the row ends, the file returns to where the admin had it (if that is free)."""
        current = Path(record.current_path or "")
        where = current
        if record.owner is Owner.POST and record.source_path and current.exists():
            try:
                where = archive.put_back(current, Path(record.source_path))
            except OSError:  # the place is taken or gone: failed/, with a reason file, as any unsent file
                reason = "the post was stopped before the file was sent; its old place was taken"
                where = archive.fail(
                    current, self.config.agent.failed_dir, name=record.name, reason=reason, when=utcnow()
                )
        self.journal.withdrawn(record.id, where, post_withdrawn_reason(where))
        self.journal.file_reported(record.id)  # told on the terminal; no email for a file never sent
        return where


def post_file(
    config: Config,
    path: Path,
    *,
    object_slug: str | None = None,
    operation: str | None = None,
    route_name: str | None = None,
    keep: bool = False,
    force: bool = False,
    echo: Narrator = print,
    upload_progress: UploadProgress | None = None,
    stop: threading.Event | None = None,
) -> FileOutcome:
    """`feed-agent post`: one file by hand, narrated; archived unless `keep`; `upload_progress` hears
    the upload's bytes (the CLI's meter on a terminal); `stop` set by a signal ends it (PostInterrupted).
    """
    route = config.route(route_name)
    absolute = Path(os.path.abspath(path))  # the journal matches a resumed post by its paths
    archive.prepare_folders(config.agent)
    stop = stop or threading.Event()
    with Journal(config.agent.journal_path) as journal:
        reporter = EmailReporter(config, journal)
        reporter.deliver_waiting(force=True)  # reports an earlier run could not send go first
        follow_up = JobFollowUp(config, journal, reporter, base_url=configured_base_url(config.webhook))
        pipeline = Pipeline(
            config,
            journal,
            reporter,
            stop=stop,
            narrate=echo,
            upload_progress=upload_progress,
            follow_up=follow_up,
        )
        post = _Post(config, journal, pipeline, echo)
        try:
            if stop.is_set():
                raise AgentError("stopped before the file was taken; nothing was done")
            route, file_id, owner = post.take(route, absolute, keep)
            echo(f"posting {absolute.name} via route {route.name} to target {route.target}")
            keep = owner is Owner.POST_KEEP
            context = BatchContext(force=force, keep=keep, object_override=object_slug, operation_override=operation)
            try:
                batch = pipeline.process(route, [file_id], context)
            except StopRequested:
                raise post.stopped(file_id) from None
        finally:
            pipeline.close()
    if not batch.files:  # every path through the pipeline ends the file; say so plainly if one ever did not
        raise AgentError(f"{absolute.name}: the post ended without an outcome; see `feed-agent status`")
    return _tell(batch.files[0], echo)


def _tell(outcome: FileOutcome, echo: Narrator) -> FileOutcome:
    counts = outcome.progress
    echo(f"result: {outcome.status.value}" + (f" — reference {outcome.receipt.reference}" if outcome.receipt else ""))
    if counts is not None:
        echo(
            f"counts: completed {counts.completed}, warnings {counts.warnings}, errors {counts.errors}, "
            f"queued {counts.queued}"
        )
    if outcome.message:
        echo(f"reason: {outcome.message}")
    echo(f"file: {outcome.final_path}")
    return outcome
