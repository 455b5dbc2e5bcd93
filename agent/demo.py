"""`feed-agent demo`: the whole product in under a minute, with no configuration and no network.

It starts the Learn simulator on a free port, writes a users, a courses and a memberships file into
a watched folder *out of order* (memberships first, written slowly, as a real SIS export would be),
runs the real watcher and pipeline on them, and narrates each step for a newcomer. One membership
names a user Learn does not have, so the memberships end ERRORS and their email shows the named record
and Learn's reason, read from the record log over REST.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.feeds import ORDER_EXPLANATION
from agent.records import FileOutcome
from agent.settings import AgentSettings, Config, EmailSettings, LearnTargetSettings, RouteSettings, Secret

DEMO_MARKER = ".feed-agent-demo"
USERNAME, PASSWORD = "demo-integration", "demo-password"
REST_KEY, REST_SECRET = "demo-rest-application", "demo-rest-secret"
UNKNOWN_PERSON = "P9999"  # the one membership whose user Learn does not know: the ERRORS email names it

PEOPLE = """external_person_key|data_source_key|user_id|firstname|lastname|email|institution_role
P1001|SIS.DEMO|ada.lovelace|Ada|Lovelace|ada.lovelace@example.edu|Student
P1002|SIS.DEMO|alan.turing|Alan|Turing|alan.turing@example.edu|Student
P1003|SIS.DEMO|grace.hopper|Grace|Hopper|grace.hopper@example.edu|Faculty
P1004|SIS.DEMO|edsger.dijkstra|Edsger|Dijkstra|edsger.dijkstra@example.edu|Student
"""
COURSES = """external_course_key|data_source_key|course_id|course_name|available_ind
MATH101-2026FA|SIS.DEMO|MATH101-2026FA|Calculus I|Y
CS201-2026FA|SIS.DEMO|CS201-2026FA|Algorithms|Y
"""
MEMBERSHIPS = """external_course_key|external_person_key|data_source_key|role
MATH101-2026FA|P1001|SIS.DEMO|Student
MATH101-2026FA|P1002|SIS.DEMO|Student
MATH101-2026FA|P1003|SIS.DEMO|Instructor
CS201-2026FA|P1004|SIS.DEMO|Student
CS201-2026FA|P1003|SIS.DEMO|Instructor
CS201-2026FA|P9999|SIS.DEMO|Student
"""
EXPECTED = {"users.txt": "SUCCESS", "courses.txt": "SUCCESS", "enrollments.txt": "ERRORS"}


def _prepare(folder: Path) -> Path:
    """A fresh demo folder; refuses to wipe a folder the demo did not create."""
    if folder.exists() and any(folder.iterdir()):
        if not (folder / DEMO_MARKER).exists():
            raise SystemExit(f"feed-agent demo: {folder} exists and was not made by the demo; use --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARKER).write_text("made by feed-agent demo; safe to delete\n", encoding="utf-8")
    return folder


def demo_config(folder: Path, learn_url: str) -> Config:
    """A configuration built in code: one route, the simulator as target, emails to the outbox."""
    target = LearnTargetSettings(
        name="learn-simulator",
        url=learn_url,
        integration="BBLEARN",
        username=Secret(USERNAME),
        password=Secret(PASSWORD),
        poll_initial_seconds=0.3,
        poll_max_seconds=1.0,
        timeout_minutes=2.0,
        rest_key=Secret(REST_KEY),
        rest_secret=Secret(REST_SECRET),
        log_wait_minutes=1.0,
    )
    route = RouteSettings(name="sis", watch=folder / "drop", target=target.name)
    agent = AgentSettings(
        work_dir=folder / "var",
        settle_seconds=1.0,
        batch_window_seconds=2.0,
        observer="native",
        rescan_seconds=5.0,
    )
    email = EmailSettings(transport="file", from_addr="feed-agent@demo.example.edu", to=("sis-admins@example.edu",))
    return Config(path=None, agent=agent, routes=(route,), targets={target.name: target}, email=email)


def _write_slowly(path: Path, text: str, pieces: int = 4, pause: float = 0.5) -> None:
    """An SIS export writes a large file over time; readiness must wait for the last write."""
    lines = text.splitlines(keepends=True)
    step = max(1, len(lines) // pieces)
    with path.open("w", encoding="utf-8") as handle:
        for start in range(0, len(lines), step):
            handle.write("".join(lines[start : start + step]))
            handle.flush()
            time.sleep(pause)


def run_demo(folder: Path | None = None) -> int:
    from agent.daemon import Agent
    from agent.simulator import LearnSimulator

    root = _prepare((folder or Path("demo-run")).resolve())
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger().setLevel(logging.WARNING)  # the narration below replaces the log lines
    say = _printer()
    say("feed-agent demo: an SIS drops flat files; feed-agent sends them to Blackboard Learn in the right order.")
    with LearnSimulator(
        username=USERNAME, password=PASSWORD, rows_per_second=4.0, rest_key=REST_KEY, rest_secret=REST_SECRET
    ) as sim:
        say(f"1. Started a Learn simulator at {sim.url} (it rejects memberships for unknown users or courses,")
        say("   like a real Learn).")
        config = demo_config(root, sim.url)
        drop = config.routes[0].watch
        drop.mkdir(parents=True, exist_ok=True)
        agent = Agent(config, narrate=say)
        say(f"2. Watching {drop} (work folder {root}).")
        runner = threading.Thread(target=agent.watch, name="demo-agent", daemon=True)
        runner.start()
        try:
            say("3. The SIS writes its exports out of order: memberships first (slowly), then courses, then")
            say("   users (written elsewhere and renamed in, as many exports do).")
            _write_slowly(drop / "enrollments.txt", MEMBERSHIPS)
            (drop / "courses.txt").write_text(COURSES, encoding="utf-8")
            staging = root / "staging"
            staging.mkdir(exist_ok=True)
            (staging / "users.txt").write_text(PEOPLE, encoding="utf-8")
            (staging / "users.txt").rename(drop / "users.txt")
            say("4. Each file is ready once it has not changed for 1 s; the batch starts 2 s after the last")
            say("   arrival. feed-agent reads each header to know what the file is:")
            deadline = time.monotonic() + 50
            while time.monotonic() < deadline and sum(len(b.files) for b in agent.batches) < 3:
                time.sleep(0.2)
        finally:
            agent.stop.set()
            agent.wake.set()
            runner.join(timeout=15)
            agent.close()
    files = [f for batch in agent.batches for f in batch.files]
    say("")
    say(f"Why this order: {ORDER_EXPLANATION}.")
    say("")
    say("Result:")
    for outcome in files:
        code = outcome.receipt.reference if outcome.receipt else "-"
        progress = outcome.progress
        counts = f"{progress.completed} completed, {progress.errors} errors" if progress else ""
        say(f"  {outcome.status.value:<8} {outcome.name:<16} {outcome.object or '-':<11} reference {code}  {counts}")
        say(f"           archived as {outcome.final_path}")
        record = outcome.record_log
        if record is not None:
            for entry in record.first:
                say(f"           Learn says: {entry.message}")
            say(f"           record log saved as {record.csv_path} (and attached to the email)")
    outbox = sorted(config.agent.outbox_dir.glob("*.eml"))
    say("")
    say(f"Reports (one email per file and a summary) were written to {config.agent.outbox_dir}:")
    for path in outbox:
        say(f"  {path.name}")
        say(f"      subject: {_subject(path)}")
    say("")
    say("Next: ./install.sh wrote conf/agent.ini; point [target:learn] at your Learn server, put the password")
    say("in .env, run 'feed-agent check', then 'feed-agent watch' (or 'feed-agent run' from cron).")
    ok = {f.name: f.status.value for f in files} == EXPECTED and _names_the_unknown_person(files)
    if ok:
        say(f"enrollments.txt is ERRORS on purpose: one membership names {UNKNOWN_PERSON}, a user Learn does not")
        say("have. Its email names that record and the reason, read from Learn's record log over REST.")
    else:
        say("The demo did not complete as expected; see the messages above.")
    return 0 if ok else 1


def _names_the_unknown_person(files: list[FileOutcome]) -> bool:
    return any(
        f.record_log is not None and any(UNKNOWN_PERSON in entry.message for entry in f.record_log.first) for f in files
    )


def _subject(eml: Path) -> str:
    from email import message_from_bytes, policy

    return str(message_from_bytes(eml.read_bytes(), policy=policy.default)["Subject"])


def _printer() -> Callable[[str], None]:
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            print(line, flush=True)

    return say
