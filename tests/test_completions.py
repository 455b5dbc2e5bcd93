"""Queued jobs to their real end: moto S3 with IAM, the calling-back job-API stand-in, the real receiver.

The must-show of issue 16: a job that succeeds ends in a SUCCESS report with its jobId; one that
fails in FAILED with AlumnIQ's message; one never notified in NOT NOTIFIED once its deadline passes
(an injected clock; the deadline is a fraction of an hour), with a follow-up when the notification
comes late; a forged POST or a replay changes nothing. `run` (cron) raises the switch too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from agent.callbacks import new_token
from agent.clock import utcnow
from agent.config import load_config
from agent.daemon import Agent, run_once
from agent.journal import Journal
from agent.journal_schema import JobState
from agent.settings import Config
from agent.simulator.jobapi import JobApiSimulator
from tests.support.clock import FakeClock
from tests.support.s3 import WriteOnlyBucket
from tests.support.waiting import wait_for

WAIT = 30.0
HOURS = 0.5  # notify_within_hours: a fraction of an hour, passed on the injected clock


@pytest.fixture
def write_only_prefix() -> str:
    return "production/warehouse/"


@pytest.fixture
def alumniq() -> Iterator[JobApiSimulator]:
    with JobApiSimulator(jobs=("warehouse", "donors", "gifts"), notify_seconds=0.1) as jobs:
        jobs.set_outcome("donors", "failure", "Row 12: constituent 991 has no email")
        jobs.set_outcome("gifts", "never")
        yield jobs


def job_config(
    root: Path, bucket: WriteOnlyBucket, jobs: JobApiSimulator, *, webhook: str | None = "listen = 127.0.0.1:0\n"
) -> Config:
    (root / "drop").mkdir(parents=True, exist_ok=True)
    (root / ".env").write_text(
        f"AQ_KEY={bucket.writer.access_key_id}\nAQ_SECRET={bucket.writer.secret_access_key}\n"
        f"AQ_API_KEY={jobs.api_key}\n",
        encoding="utf-8",
    )
    section = f"[webhook]\n{webhook}" if webhook else ""
    ini = root / "agent.ini"
    ini.write_text(
        f"""[agent]
work_dir = var
env_file = .env
settle_seconds = 0.2
batch_window_seconds = 0.2
rescan_seconds = 1
[route:alumniq]
watch = drop
target = alumniq
[target:alumniq]
type = job
bucket = {bucket.bucket}
region = {bucket.region}
endpoint_url = {bucket.endpoint}
prefix = {bucket.prefix}
key = {{name}}
job_url = {jobs.job_url}
api_key = ${{AQ_API_KEY}}
access_key_id = ${{AQ_KEY}}
secret_access_key = ${{AQ_SECRET}}
notify_within_hours = {HOURS}
{section}
[email]
transport = file
to = admins@example.edu
""",
        encoding="utf-8",
    )
    return load_config(ini, environ={})


def drop(config: Config, *names: str) -> None:
    for name in names:
        (config.routes[0].watch / name).write_text("constituent_id,email\n1,ada@example.edu\n", encoding="utf-8")


def emails(config: Config) -> list[EmailMessage]:
    found = []
    for path in sorted(config.agent.outbox_dir.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def subjects(config: Config) -> list[str]:
    return [str(m["Subject"]) for m in emails(config)]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def body_for(config: Config, subject: str) -> str:
    return next(text_of(m) for m in emails(config) if str(m["Subject"]) == subject)


@contextmanager
def watching(config: Config, clock: FakeClock) -> Iterator[Agent]:
    agent = Agent(config)
    agent.follow_up.clock = clock  # the deadlines run on this clock; the loop keeps the real one
    agent.housekeeping_seconds = 0.05
    thread = threading.Thread(target=agent.watch, daemon=True)
    thread.start()
    try:
        wait_for(lambda: agent.receiver is not None, "the webhook receiver", timeout=WAIT)
        yield agent
    finally:
        agent.stop.set()
        agent.wake.set()
        thread.join(timeout=WAIT)
        agent.close()
    assert not thread.is_alive()


def test_success_failure_silence_forgery_and_replay_end_to_end(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, alumniq: JobApiSimulator
) -> None:
    config = job_config(tmp_path, write_only_s3, alumniq)
    clock = FakeClock(start=utcnow())
    with watching(config, clock) as agent:
        drop(config, "warehouse.csv", "donors.csv", "gifts.csv")
        assert alumniq.wait_for_notifications(2, timeout=WAIT)
        ended = {"[feed-agent] SUCCESS warehouse.csv — job/upload", "[feed-agent] FAILED donors.csv — job/upload"}
        wait_for(lambda: ended <= set(subjects(config)), "the two job reports", timeout=WAIT)

        # The silent job's request may come after the other two were notified: wait for all three.
        wait_for(lambda: len({r.job for r in alumniq.requests}) == 3, "the three job requests", timeout=WAIT)
        by_job = {r.job: r for r in alumniq.requests}
        urls = {job: str(r.body["notifyWebhook"]) for job, r in by_job.items()}
        assert len(set(urls.values())) == 3 and all(u.startswith(agent.receiver.url + "/jobs/") for u in urls.values())
        ids = {job: r.job_id for job, r in by_job.items()}
        assert write_only_s3.read("production/warehouse/warehouse.csv").startswith(b"constituent_id")

        # Success and failure, with the jobId and AlumnIQ's message.
        assert "[feed-agent] QUEUED warehouse.csv — job/upload" in subjects(config)
        success = body_for(config, "[feed-agent] SUCCESS warehouse.csv — job/upload")
        assert f"Job id:             {ids['warehouse']}" in success
        assert "Queued at:" in success and "Finished at:" in success and "Job completed" in success
        failure = body_for(config, "[feed-agent] FAILED donors.csv — job/upload")
        assert ids["donors"] in failure and "Row 12: constituent 991 has no email" in failure
        states = {j.name: j.state for j in agent.journal.jobs()}
        assert states == {
            "warehouse.csv": JobState.SUCCEEDED,
            "donors.csv": JobState.FAILED,
            "gifts.csv": JobState.AWAITING,
        }
        raw = next(j.payload for j in agent.journal.jobs() if j.name == "donors.csv")
        assert raw is not None and json.loads(raw)["jobId"] == ids["donors"]  # kept raw

        # A replay of a settled job and a POST to a made-up token change nothing, and say nothing.
        before = (subjects(config), [(j.state, j.notified_at) for j in agent.journal.jobs()])
        winner = next(n for n in alumniq.notifications if n.job_id == ids["warehouse"])
        replay = requests.post(urls["warehouse"], json=winner.payload, timeout=10)
        forged = requests.post(
            f"{agent.receiver.url}/jobs/{new_token()}", json={"jobId": ids["gifts"], "success": True}, timeout=10
        )
        assert (replay.status_code, replay.content) == (404, b"")
        assert (forged.status_code, forged.content) == (404, b"")
        assert (subjects(config), [(j.state, j.notified_at) for j in agent.journal.jobs()]) == before

        # Silence: NOT NOTIFIED once the deadline passes, once only.
        assert not [s for s in subjects(config) if "NOT NOTIFIED" in s]
        clock.advance(HOURS * 3600 + 1)
        alert = "[feed-agent] NOT NOTIFIED gifts.csv — job/upload"
        wait_for(lambda: alert in subjects(config), "the NOT NOTIFIED alert", timeout=WAIT)
        text = body_for(config, alert)
        assert ids["gifts"] in text and "gifts.csv" in text and "Queued at:" in text
        clock.advance(3600)
        agent.follow_up.check_deadlines()
        assert subjects(config).count(alert) == 1

        # The late notification still settles the job, and says it follows the alert.
        late = requests.post(urls["gifts"], json={"status": "failed", "message": "Timed out on our side"}, timeout=10)
        assert late.status_code == 204
        late_text = body_for(config, "[feed-agent] FAILED gifts.csv — job/upload")
        assert "follow-up" in late_text and "Timed out on our side" in late_text

    tokens = [u.rsplit("/", 1)[1] for u in urls.values()]
    seen = "\n".join([*(m.as_string() for m in emails(config)), config.agent.journal_path.read_bytes().hex()])
    journal_text = config.agent.journal_path.read_bytes().decode("utf-8", "replace")
    assert not any(t in seen or t in journal_text for t in tokens)  # only digests are kept
    assert alumniq.api_key not in journal_text


def test_run_raises_the_dead_mans_switch_without_watch(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, alumniq: JobApiSimulator
) -> None:
    """`run` from cron: nobody listens, yet the silence past the deadline is reported, once."""
    # The receiver runs elsewhere (behind the proxy); this install only sends jobs from cron.
    webhook = "listen = 127.0.0.1:0\npublic_url = https://feeds.example.edu/alumniq\n"
    config = job_config(tmp_path, write_only_s3, alumniq, webhook=webhook)
    drop(config, "gifts.csv")
    assert run_once(config)  # QUEUED is not a failure for cron

    assert subjects(config) == [
        "[feed-agent] QUEUED gifts.csv — job/upload",
        "[feed-agent] Summary: 1 files — 1 QUEUED",
    ]
    with Journal(config.agent.journal_path) as journal:
        [job] = journal.jobs()
    assert job.state is JobState.AWAITING and job.job_id == alumniq.queued[0]
    assert str(alumniq.requests[0].body["notifyWebhook"]).startswith("https://feeds.example.edu/alumniq/jobs/")
    assert job.notify_by is not None
    # The next cron runs happen after the deadline (their clock says so); only the first one alerts.
    clock = FakeClock(start=job.notify_by)
    clock.advance(1)
    agent = Agent(config, clock=clock)
    try:
        assert agent.run_once()
        assert agent.run_once()
    finally:
        agent.close()
    assert subjects(config).count("[feed-agent] NOT NOTIFIED gifts.csv — job/upload") == 1


def test_without_a_webhook_the_report_says_queued_and_how_to_hear_the_end(
    tmp_path: Path, write_only_s3: WriteOnlyBucket, alumniq: JobApiSimulator
) -> None:
    config = job_config(tmp_path, write_only_s3, alumniq, webhook=None)
    drop(config, "warehouse.csv")
    assert run_once(config)

    [request] = alumniq.requests
    assert "notifyWebhook" not in request.body
    text = body_for(config, "[feed-agent] QUEUED warehouse.csv — job/upload")
    assert "SUCCESS" not in text.split("\n", 1)[0]
    assert "Nobody will be told when the job ends" in " ".join(text.split())
    assert "add a [webhook] section" in " ".join(text.split())
    with Journal(config.agent.journal_path) as journal:
        assert journal.jobs() == []


@pytest.mark.parametrize(
    ("listen", "public_url", "expected"),
    [
        ("", "", None),
        ("127.0.0.1:8787", "", "http://127.0.0.1:8787"),
        ("127.0.0.1:0", "", None),  # nobody could know where to call
        ("127.0.0.1:0", "https://feeds.example.edu/aq", "https://feeds.example.edu/aq"),
    ],
)
def test_the_job_urls_base_without_a_receiver_in_this_process(
    listen: str, public_url: str, expected: str | None
) -> None:
    from agent.completions import configured_base_url
    from agent.settings import WebhookSettings

    assert configured_base_url(WebhookSettings(listen=listen, public_url=public_url)) == expected
