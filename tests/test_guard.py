"""The guards, through `feed-agent run` with real files against the Learn simulator.

- refresh: a file whose count is unchanged but whose people were swapped is HELD naming the keys it
  would disable (the first 50 in the email, all of them in the attached CSV); a small turnover passes;
  a refreshlegacy is compared only with the last file of the same data source key(s).
- delete: more than delete_guard_rows rows is HELD, listing what would be deleted.
- store: far below the feed's usual size is sent, with a notice in its report and the summary.
"""

from __future__ import annotations

import csv
import io
import os
import shlex
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest

from agent.advice import feed_agent_executable
from agent.cli import main
from agent.journal import Journal
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.learn import MEMBERSHIP_HEADER, PEOPLE_HEADER, membership_rows, person_rows, write_flatfile
from tests.support.outcomes import body, outbox_messages


def people(keys: list[str], source: str = "SIS") -> list[tuple[str, ...]]:
    return [(key, source, f"First {key}", f"Last {key}", key.lower(), f"{key.lower()}@example.edu") for key in keys]


def keys(prefix: str, first: int, count: int) -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(first, first + count)]


class Agent:
    """One agent's folders and configuration; `run` drops files and runs `feed-agent run` once."""

    def __init__(self, root: Path, sim: LearnSimulator, operation: str, target_extra: str = "") -> None:
        self.root, self.sim = root, sim
        self.ini = write_config(root, sim.url, operation=operation, target_extra=target_extra)

    def run(self, *files: tuple[str, tuple[str, ...], list[tuple[str, ...]]]) -> int:
        for name, header, rows in files:
            write_flatfile(self.root / "drop" / name, header, rows)
        return main(["-c", str(self.ini), "run"])

    def uploads(self) -> list[tuple[str, str, int]]:
        return [(u.slug, u.operation, u.rows) for u in self.sim.uploads_snapshot()]

    def emails(self, subject_start: str) -> list[EmailMessage]:
        outbox = self.root / "var" / "outbox"
        return [m for m in outbox_messages(outbox) if str(m["Subject"]).startswith(f"[feed-agent] {subject_start}")]

    def journal(self) -> Journal:
        return Journal(self.root / "var" / "journal.sqlite3")


def attached_csv(message: EmailMessage) -> list[list[str]]:
    [attachment] = list(message.iter_attachments())
    content = attachment.get_content()
    text = content.decode() if isinstance(content, bytes) else content
    return list(csv.reader(io.StringIO(text)))


# -- refresh -------------------------------------------------------------------------------------------


def test_an_equal_count_refresh_with_15_percent_swapped_is_held_naming_the_keys(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    agent = Agent(tmp_path, learn_sim, "refresh")
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 1, 400)))) == 0
    swapped = keys("P", 61, 340) + keys("N", 1, 60)  # 60 of 400 people (15 %) replaced by others
    assert agent.run(("users.txt", PEOPLE_HEADER, people(swapped))) == 1

    assert agent.uploads() == [("person", "refresh", 400)]  # the second one never reached Learn
    [held] = agent.emails("HELD users.txt")
    text = body(held, "plain")
    flat = " ".join(text.split())
    assert "would disable 60 of the 400 records" in flat and "15.0%; limit: 10%" in flat and "adds 60" in flat
    first_50 = ", ".join(keys("P", 1, 50))
    assert f"The first 50: {first_50}." in flat and "P00051" not in flat
    rows = attached_csv(held)
    assert rows == [["external_person_key"], *([key] for key in keys("P", 1, 60))]
    assert (tmp_path / "var" / "failed" / "users.txt").read_text().count("\n") == 401  # held whole, nothing lost
    with agent.journal() as journal:
        [record] = [r for r in journal.recent_files(10) if r.status == "HELD"]
    assert (record.disabled_keys, record.added_keys) == (60, 60)


def test_a_refresh_with_5_percent_swapped_passes_and_the_history_keeps_what_it_disabled(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    agent = Agent(tmp_path, learn_sim, "refresh")
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 1, 400)))) == 0
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 21, 380) + keys("N", 1, 20)))) == 0
    assert agent.uploads() == [("person", "refresh", 400), ("person", "refresh", 400)]
    assert agent.emails("HELD") == []
    with agent.journal() as journal:
        [latest, first] = journal.deliveries(slug="person")
    assert (latest.disabled_keys, latest.added_keys) == (20, 20)
    assert first.disabled_keys is None  # the first of its feed: nothing to compare with


def people_bytes(rows: list[tuple[str, ...]], encoding: str) -> bytes:
    """A person file as the SIS writes it in `encoding` ("utf-16" puts the byte-order mark first)."""
    return "".join("|".join(row) + "\r\n" for row in [PEOPLE_HEADER, *rows]).encode(encoding)


def test_a_utf16_refresh_with_15_percent_swapped_is_held_naming_the_keys(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    """Compared key by key as Learn reads it (decoded from UTF-16), not only by its row count."""
    agent = Agent(tmp_path, learn_sim, "refresh")
    drop = tmp_path / "drop" / "users.txt"
    drop.write_bytes(people_bytes(people(keys("P", 1, 200)), "utf-16"))
    assert main(["-c", str(agent.ini), "run"]) == 0
    drop.write_bytes(people_bytes(people(keys("P", 31, 170) + keys("N", 1, 30)), "utf-16"))
    assert main(["-c", str(agent.ini), "run"]) == 1

    assert agent.uploads() == [("person", "refresh", 200)]
    [held] = agent.emails("HELD users.txt")
    flat = " ".join(body(held, "plain").split())
    assert "would disable 30 of the 200 records" in flat and "adds 30" in flat
    assert f"The first 30: {', '.join(keys('P', 1, 30))}." in flat
    assert attached_csv(held) == [["external_person_key"], *([key] for key in keys("P", 1, 30))]
    assert not list((tmp_path / "var" / "keysets" / "pending").glob("utf8-*"))  # the UTF-8 copies are gone


def test_a_latin1_key_with_an_accent_is_named_right_in_the_email_and_csv(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    agent = Agent(tmp_path, learn_sim, "refresh")
    agent.ini.write_text(
        agent.ini.read_text().replace("operation = refresh", "operation = refresh\nencoding = latin-1")
    )
    accented = ["JOSÉ-01", "ÇA-02", *keys("P", 1, 78)]
    drop = tmp_path / "drop" / "users.txt"
    drop.write_bytes(people_bytes(people(accented), "latin-1"))
    assert main(["-c", str(agent.ini), "run"]) == 0
    drop.write_bytes(people_bytes(people(accented[10:] + keys("N", 1, 10)), "latin-1"))
    assert main(["-c", str(agent.ini), "run"]) == 1

    [held] = agent.emails("HELD users.txt")
    flat = " ".join(body(held, "plain").split())
    assert "would disable 10 of the 80 records" in flat
    named = ["JOSÉ-01", *keys("P", 1, 8), "ÇA-02"]  # sorted by their UTF-8 bytes
    assert f"The first 10: {', '.join(named)}." in flat and "JOSÉ-01" in body(held, "html")
    assert attached_csv(held) == [["external_person_key"], *([key] for key in named)]


def test_membership_keys_are_the_course_and_person_pair(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    agent = Agent(tmp_path, learn_sim, "refresh")
    agent.run(("enrol.txt", MEMBERSHIP_HEADER, membership_rows(100, courses=2)))  # ERRORS: no such people yet
    assert agent.uploads() == [("membership", "refresh", 100)]  # but delivered: the baseline
    moved = [(course, person, source, role) for course, person, source, role in membership_rows(100, courses=2)]
    moved[:20] = [("C003", person, source, role) for _, person, source, role in moved[:20]]  # same people
    assert agent.run(("enrol.txt", MEMBERSHIP_HEADER, moved)) == 1
    assert len(agent.uploads()) == 1
    [held] = agent.emails("HELD enrol.txt")
    assert "C001 / P00001" in " ".join(body(held, "plain").split())
    rows = attached_csv(held)
    assert rows[0] == ["external_course_key", "external_person_key"] and len(rows) == 21


def test_a_refreshlegacy_is_compared_within_its_data_source_key_only(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    agent = Agent(tmp_path, learn_sim, "refreshlegacy")
    assert agent.run(("a.txt", PEOPLE_HEADER, people(keys("A", 1, 100), "SIS_A"))) == 0
    assert agent.run(("b.txt", PEOPLE_HEADER, people(keys("B", 1, 100), "SIS_B"))) == 0
    # Compared with SIS_B's file (the newest refreshlegacy of person), every A key would look disabled.
    assert agent.run(("a.txt", PEOPLE_HEADER, people(keys("A", 6, 95) + keys("X", 1, 5), "SIS_A"))) == 0
    assert agent.emails("HELD") == []
    assert agent.run(("b.txt", PEOPLE_HEADER, people(keys("B", 21, 80) + keys("Y", 1, 20), "SIS_B"))) == 1
    [held] = agent.emails("HELD b.txt")
    flat = " ".join(body(held, "plain").split())
    assert "would disable 20 of the 100 records of the last delivered refreshlegacy of person for data" in flat
    assert "SIS_B" in flat and "A0000" not in flat
    with agent.journal() as journal:
        records = {(r.name, r.status): r for r in journal.recent_files(10)}
    assert records[("a.txt", "SUCCESS")].data_source_keys in ("SIS_A",)


def test_when_the_archive_was_pruned_the_kept_key_set_is_the_baseline(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    agent = Agent(tmp_path, learn_sim, "refresh")
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 1, 200)))) == 0
    for archived in (tmp_path / "var" / "archive").rglob("users*"):
        archived.unlink()  # archive retention removed it
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 41, 160) + keys("N", 1, 40)))) == 1
    [held] = agent.emails("HELD users.txt")
    assert "would disable 40 of the 200 records" in " ".join(body(held, "plain").split())


def test_a_refresh_learn_refused_leaves_no_key_set_behind(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    """Only an accepted refresh becomes the baseline; the keys of one that failed are dropped."""
    agent = Agent(tmp_path, learn_sim, "refresh")
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 1, 100)))) == 0
    learn_sim.faults.fail_uploads = 10  # every attempt answers 500: FAILED, never accepted
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 1, 95) + keys("N", 1, 5)))) == 1
    learn_sim.faults.fail_uploads = 0
    pending = tmp_path / "var" / "keysets" / "pending"
    assert len(list(pending.iterdir())) == 1  # its keys, compared but never a baseline
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 9, 92) + keys("N", 1, 8)))) == 0
    assert list(pending.iterdir()) == []  # the failed file's keys went with the next refresh
    with agent.journal() as journal:
        [latest, _] = journal.deliveries(slug="person")
    assert (latest.disabled_keys, latest.added_keys) == (8, 8)  # compared with the accepted one
    [kept] = list((tmp_path / "var" / "keysets" / "feeds").glob("*/*"))
    assert kept.name == str(latest.id)


def test_the_held_emails_force_command_sends_one_refresh(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The admin's copy-paste: the command in the HELD email's text part, run as printed in a shell,
    sends the swapped file once, as a refresh."""
    agent = Agent(tmp_path, learn_sim, "refresh")
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 1, 100)))) == 0
    assert agent.run(("users.txt", PEOPLE_HEADER, people(keys("P", 31, 70) + keys("N", 1, 30)))) == 1
    capsys.readouterr()
    [held] = agent.emails("HELD users.txt")
    executable = feed_agent_executable()[0]
    [command] = [line.strip() for line in body(held, "plain").splitlines() if executable in line]
    command = command[command.index(shlex.quote(executable)) :]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEED_AGENT")}
    done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert agent.uploads() == [("person", "refresh", 100), ("person", "refresh", 100)]


# -- delete --------------------------------------------------------------------------------------------


def test_a_300_row_delete_is_held_listing_what_would_go(tmp_path: Path, learn_sim: LearnSimulator) -> None:
    agent = Agent(tmp_path, learn_sim, "delete")
    assert agent.run(("gone.txt", PEOPLE_HEADER, person_rows(300))) == 1
    assert agent.uploads() == []
    [held] = agent.emails("HELD gone.txt")
    flat = " ".join(body(held, "plain").split())
    assert "would delete 300 person records, more than delete_guard_rows (100)" in flat
    assert "The first 50: P00001, P00002," in flat and "P00050." in flat
    assert len(attached_csv(held)) == 301
    assert agent.run(("gone.txt", PEOPLE_HEADER, person_rows(100))) == 0  # at the limit: sent
    assert agent.uploads() == [("person", "delete", 100)]


# -- store ---------------------------------------------------------------------------------------------


def test_a_store_at_a_quarter_of_its_usual_size_is_sent_with_a_notice(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    agent = Agent(tmp_path, learn_sim, "store")
    for count in (396, 404, 400):
        assert agent.run(("users.txt", PEOPLE_HEADER, person_rows(count))) == 0
    assert agent.emails("SUCCESS") and not any("UNUSUAL" in body(m, "plain") for m in agent.emails("SUCCESS"))
    assert agent.run(("users.txt", PEOPLE_HEADER, person_rows(100))) == 0
    assert agent.uploads()[-1] == ("person", "store", 100)  # delivered
    report = agent.emails("SUCCESS users.txt")[-1]
    expected = "100 rows; usually about 400 (the median of the last 3 deliveries)"
    assert expected in " ".join(body(report, "plain").split())
    assert expected in " ".join(body(report, "html").split())
    summary = [m for m in outbox_messages(tmp_path / "var" / "outbox") if "summary" in str(m["Subject"]).lower()][-1]
    assert expected in " ".join(body(summary, "plain").split())
    assert expected in " ".join(body(summary, "html").split())
