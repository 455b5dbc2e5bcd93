"""After a job is queued (AlumnIQ): its own notification URL, its end, and the dead-man's switch.

AlumnIQ runs a queued job 30-60 minutes later, retries failures, and tells the end only to the
`notifyWebhook` it was given. So before the job call the pipeline asks :meth:`JobFollowUp.link_for`
for a URL with a fresh random token (its digest journaled first, so a notification that races the
job call's answer still finds its job); the receiver hands every POST to :meth:`settle`, which
matches by token alone, settles the job once, keeps the raw body, and sends the SUCCESS/FAILED
report. :meth:`check_deadlines` (from `watch`'s housekeeping and at the end of `run`) sends one
NOT NOTIFIED alert per job that stayed silent past `notify_within_hours`; a notification that comes
later still settles the job and its report says it is the follow-up.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from agent.callbacks import job_link, new_token, read_verdict, token_digest
from agent.clock import SYSTEM_CLOCK, Clock
from agent.journal import Journal
from agent.journal_schema import JobRecord, JobState
from agent.records import JobNotice, Receipt, Reporter, Status
from agent.settings import Config, JobTargetSettings, WebhookSettings, default

log = logging.getLogger(__name__)


def configured_base_url(webhook: WebhookSettings) -> str | None:
    """The base of the job URLs when no receiver runs in this process (`run`, `post`): public_url or listen.

    None when off, or when listen asks for any free port (0) and no public_url says where that will be.
    """
    if not webhook.enabled:
        return None
    if webhook.public_url:
        return webhook.public_url
    return None if webhook.address[1] == 0 else f"http://{webhook.listen}"


class JobFollowUp:
    """Links, settlement and deadlines of queued jobs for one configuration (thread-safe: the journal is)."""

    def __init__(
        self,
        config: Config,
        journal: Journal,
        reporter: Reporter,
        *,
        base_url: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.journal = journal
        self.reporter = reporter
        self.base_url = base_url  # None: [webhook] is off, jobs get no URL of ours
        self.clock = clock

    def link_for(self, file_id: int) -> str | None:
        """A new notification URL for the job about to be queued for this file (None when off)."""
        if self.base_url is None:
            return None
        token = new_token()
        self.journal.job_expected(file_id, token_digest(token))
        return job_link(self.base_url, token)

    def queued(self, file_id: int, target: str, receipt: Receipt) -> None:
        """The job call answered with a job id: the deadline starts now."""
        now = self.clock.now()
        self.journal.job_queued(file_id, receipt.reference, now, now + timedelta(hours=self._hours(target)))

    def settle(self, token: str, raw: bytes) -> bool:
        """A notification POSTed to a job's URL: True when it ended an open job (then reported)."""
        verdict = read_verdict(raw)
        record = self.journal.job_settled(
            token_digest(token), succeeded=verdict.succeeded, message=verdict.message, payload=raw, at=self.clock.now()
        )
        if record is None:
            log.warning("webhook: refused a notification for an unknown or already settled job")
            return False
        status = Status.SUCCESS if record.state is JobState.SUCCEEDED else Status.FAILED
        log.info("job %s for %s: AlumnIQ reports %s: %s", record.job_id, record.name, status.value, verdict.message)
        self.reporter.job_finished(self._notice(record, status))
        return True

    def check_deadlines(self) -> int:
        """Alert once for each queued job past its deadline with no notification; the number alerted."""
        now = self.clock.now()
        alerted = 0
        for record in self.journal.jobs_overdue(now):
            if not self.journal.job_alerted(record.id, now):
                continue  # another process (run beside watch) sent it
            log.warning(
                "not notified: job %s for %s, queued at %s, no word from AlumnIQ by %s",
                record.job_id,
                record.name,
                _utc(record.queued_at),
                _utc(record.notify_by),
            )
            self.reporter.job_not_notified(self._notice(record, None))
            alerted += 1
        return alerted

    def _hours(self, target: str) -> float:
        settings = self.config.targets.get(target)
        if isinstance(settings, JobTargetSettings):
            return settings.notify_within_hours
        hours: float = default(JobTargetSettings, "notify_within_hours")
        return hours

    def _notice(self, record: JobRecord, status: Status | None) -> JobNotice:
        drop = next((str(r.watch) for r in self.config.routes if r.name == record.route), None)
        return JobNotice(
            name=record.name,
            route=record.route,
            target=record.target,
            job_id=record.job_id or "(not known yet)",
            queued_at=record.queued_at,
            notify_by=record.notify_by,
            status=status,
            message=record.message or "",
            finished_at=record.notified_at,
            late=status is not None and record.alerted_at is not None,
            location=record.location,
            drop_folder=drop,
        )


def _utc(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"
