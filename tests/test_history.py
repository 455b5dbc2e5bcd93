"""Feed history: `feed-agent history` and the summary's chart, from real runs against the simulator."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.cli import main
from agent.history import BAR_MAX_PX, BAR_MIN_PX, PAST_COLOUR, batch_history, chart, sparkline
from agent.journal import Journal
from agent.journal_schema import FileRecord
from agent.records import BatchOutcome, FeedHistory, FeedPoint, Progress, Result, Status
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.learn import COURSE_HEADER, PEOPLE_HEADER, course_rows, person_rows, write_flatfile
from tests.support.outcomes import body, outbox_messages, outcome

NOW = datetime(2026, 12, 6, 2, 10, tzinfo=timezone.utc)


def test_sparkline_scales_to_the_largest_value() -> None:
    assert sparkline([0, 50, 100, None]) == "▁▄█·"
    assert sparkline([None, 0]) == "·▁"


def test_a_chart_scales_bars_and_marks_todays_in_its_status_colour() -> None:
    points = (
        FeedPoint(1, NOW, 400, "SUCCESS"),
        FeedPoint(2, NOW, 200, "SUCCESS"),
        FeedPoint(3, NOW, 0, "SUCCESS"),
        FeedPoint(4, NOW, 100, "HELD", current=True),
    )
    drawn = chart(FeedHistory("sis", "person", "refresh", points), {"HELD": "#5b7083"})
    assert [bar.height for bar in drawn.bars] == [BAR_MAX_PX, BAR_MAX_PX // 2, BAR_MIN_PX, BAR_MAX_PX // 4]
    assert [bar.colour for bar in drawn.bars] == [PAST_COLOUR] * 3 + ["#5b7083"]
    assert [bar.current for bar in drawn.bars] == [False, False, False, True]
    assert drawn.bars[0].title == "2026-12-06 02:10 UTC: 400 rows, SUCCESS"
    assert drawn.caption == "last 4 deliveries: 0 to 400 rows before; today 100 (marked)"
    assert drawn.feed == "person/refresh" and drawn.spark == "█▄▁▂"


def run(root: Path, ini: Path, *files: tuple[str, tuple[str, ...], list[tuple[str, ...]]]) -> int:
    for name, header, rows in files:
        write_flatfile(root / "drop" / name, header, rows)
    return main(["-c", str(ini), "run"])


def test_history_shows_each_feeds_last_deliveries_and_the_summary_charts_them(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_config(tmp_path, learn_sim.url)  # route sis: store
    for count in (396, 404, 400):
        assert run(tmp_path, ini, ("users.txt", PEOPLE_HEADER, person_rows(count))) == 0
    assert (
        run(tmp_path, ini, ("users.txt", PEOPLE_HEADER, person_rows(100)), ("c.txt", COURSE_HEADER, course_rows(5)))
        == 0
    )
    capsys.readouterr()

    assert main(["-c", str(ini), "history"]) == 0
    out = capsys.readouterr().out
    assert "sis: person/store: 4 deliveries in the last 30 day(s)" in out
    assert "  rows ███▂  396 → 100" in out
    assert "sis: course/store: 1 deliveries" in out
    table = [line for line in out.splitlines() if "users.txt" in line]
    assert len(table) == 4 and all("SUCCESS" in line for line in table)
    assert [line.split()[2] for line in table] == ["396", "404", "400", "100"]  # oldest first

    assert main(["-c", str(ini), "history", "--object", "course"]) == 0
    out = capsys.readouterr().out
    assert "course/store" in out and "person" not in out
    assert main(["-c", str(ini), "history", "--days", "0"]) == 0
    assert capsys.readouterr().out.strip() == "No deliveries in the last 0 day(s)."
    assert main(["-c", str(ini), "history", "--route", "nightly"]) == 2
    assert "there is no route 'nightly'" in capsys.readouterr().err

    summary = [m for m in outbox_messages(tmp_path / "var" / "outbox") if "Summary" in str(m["Subject"])][-1]
    html = body(summary, "html")
    assert "Feed history" in html and "<img" not in html and "<script" not in html
    bars = re.findall(r'<td width="14" height="(\d+)" bgcolor="(#[0-9a-f]{6})"', html)
    person_bars = bars[-4:]  # course/store (1 bar) comes first, then person/store (4 bars)
    assert [int(h) for h, _ in person_bars] == [39, 40, 40, 10]  # 396, 404, 400, 100 rows: 40 px for the largest
    assert [c for _, c in person_bars[:3]] == [PAST_COLOUR] * 3 and person_bars[3][1] != PAST_COLOUR
    assert html.count("&#9650;") == 2  # today's bar of each feed is marked
    text = body(summary, "plain")
    assert "Feed history" in text and re.search(r"person/store\s+███▂", text)
    assert "today 100 (marked)" in " ".join(text.split())


class _CountingJournal(Journal):
    """A real journal that counts the whole-record reads the chart makes."""

    reads = 0

    def file(self, file_id: int) -> FileRecord:
        self.reads += 1
        return super().file(file_id)


def test_a_burst_charts_the_feeds_last_deliveries_in_order_and_reads_only_the_refused_files(tmp_path: Path) -> None:
    """A batch of 12 people files, one held: the chart is the last deliveries, oldest first, then the
    held one; the journal is asked for that one record, not for every file of the burst."""
    with _CountingJournal(tmp_path / "journal.sqlite3") as journal:
        batch = BatchOutcome(route="sis", started_at=NOW)
        for n in range(12):
            file_id = journal.add_file(route="sis", target="learn", name=f"u{n}.txt", source_path=tmp_path / f"u{n}")
            journal.inspected(file_id, rows=100 + n, size=10, object="person", operation="store", sha256=None)
            status = Status.HELD if n == 5 else Status.SUCCESS
            journal.finished(file_id, Result(status, Progress(completed=100 + n), finished_at=NOW))
            batch.files.append(outcome(status, f"u{n}.txt", object="person", operation="store", file_id=file_id))

        (history,) = batch_history(journal, batch, limit=7)

    assert [point.rows for point in history.points] == [106, 107, 108, 109, 110, 111, 105]
    assert history.points[-1].status == "HELD" and all(point.current for point in history.points)
    assert journal.reads == 1
