"""`agent.summarylist`: a big batch's summary names at most 200 files (problems first) and attaches
the complete list as CSV, within max_message_mb."""

from __future__ import annotations

import csv
import gzip
import io

from agent.records import FileOutcome, Status
from agent.render import Renderer
from agent.summarylist import LISTED, problems_first
from tests.support.outcomes import batch, outcome


def big_batch(count: int, problems: dict[int, Status]) -> list[FileOutcome]:
    """`count` files in batch order; the positions in `problems` end with that status."""
    return [outcome(problems.get(i, Status.SUCCESS), name=f"file-{i:05d}.txt") for i in range(count)]


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def test_a_1000_file_summary_names_200_problems_first_and_attaches_every_file() -> None:
    problems = {i: Status.ERRORS for i in range(5, 1000, 50)} | {i: Status.FAILED for i in range(990, 1000)}
    files = big_batch(1_000, problems)

    rendered = Renderer().summary(batch(*files))

    text = " ".join(rendered.text.split())  # unwrapped
    named = [f.name for f in files if f.name in text]
    assert len(named) == LISTED
    assert {files[i].name for i in problems} <= set(named)  # every problem is in the body
    assert "… and 800 more files, none with problems: Every file is in the attached" in text
    assert rendered.subject.startswith("[feed-agent] Summary: 1000 files — ")
    assert "Summary: 1000 files" in rendered.html and "800 more files" in rendered.html
    assert rendered.size < 512 * 1024, rendered.size  # was about 2 KB per file, every file

    [attachment] = rendered.attachments
    assert attachment.filename == "summary-sis-20261122T070005Z.csv" and attachment.mimetype == "text/csv"
    header, *rows = csv_rows(attachment.data)
    assert header[:3] == ["status", "file", "object"] and len(rows) == 1_000
    assert sorted(row[1] for row in rows) == sorted(f.name for f in files)
    assert [row[0] for row in rows[:30]] == ["FAILED"] * 10 + ["ERRORS"] * 20  # problems first
    assert rows[0][1] == "file-00990.txt" and rows[10][1] == "file-00005.txt"  # each in batch order
    failed = rows[0]
    assert failed[header.index("what_happened")] == "Learn rejected the upload: HTTP 400 bad header"
    assert "move" in failed[header.index("what_to_do")].lower()


def test_more_problems_than_fit_say_how_many_were_left_out() -> None:
    files = big_batch(500, {i: Status.ERRORS for i in range(300)})
    report_text = " ".join(Renderer().summary(batch(*files)).text.split())  # unwrapped
    assert "… and 300 more files, 100 of them with problems: Every file is in the attached" in report_text


def test_up_to_200_files_are_all_listed_in_batch_order_without_an_attachment() -> None:
    files = big_batch(LISTED, {7: Status.FAILED})
    rendered = Renderer().summary(batch(*files))
    assert rendered.attachments == ()
    assert all(f.name in rendered.text for f in files)
    assert rendered.text.index("file-00000.txt") < rendered.text.index("file-00007.txt")
    assert "more files" not in rendered.text


def test_a_20000_file_summary_fits_the_message_limit() -> None:
    files = big_batch(20_000, {i: Status.WARNINGS for i in range(0, 20_000, 7)})
    rendered = Renderer(max_message_mb=10).summary(batch(*files))
    assert rendered.size * 4 // 3 < 10 * 1024 * 1024  # was 38 MB
    [attachment] = rendered.attachments
    assert attachment.filename.endswith(".csv.gz") and attachment.mimetype == "application/gzip"
    assert len(csv_rows(gzip.decompress(attachment.data))) == 20_001


def test_a_list_too_big_even_gzipped_keeps_the_first_rows_that_fit_and_says_so() -> None:
    files = big_batch(20_000, {i: Status.ERRORS for i in range(0, 20_000, 3)})
    rendered = Renderer(max_message_mb=0.75).summary(batch(*files))
    [attachment] = rendered.attachments
    kept = len(csv_rows(gzip.decompress(attachment.data))) - 1
    assert 0 < kept < 20_000
    text = " ".join(rendered.text.split())
    assert (
        "The list of all 20,000 files is too big for one email: the attached "
        f"summary-sis-20261122T070005Z.csv.gz holds the first {kept:,} (problems first)" in text
    )
    assert rendered.size * 4 // 3 < 0.75 * 1024 * 1024


def test_csv_cells_never_start_a_formula_or_carry_a_raw_newline() -> None:
    files = [*big_batch(LISTED, {}), outcome(Status.FAILED, name="=HYPERLINK(1)\nforged.txt")]
    [attachment] = Renderer().summary(batch(*files)).attachments
    rows = csv_rows(attachment.data)
    assert rows[1][1] == "'=HYPERLINK(1)\\nforged.txt"
    assert b"\n=" not in attachment.data


def test_problems_first_orders_by_severity_and_keeps_the_batch_order_within() -> None:
    files = [
        outcome(Status.SUCCESS, name="a"),
        outcome(Status.HELD, name="b"),
        outcome(Status.FAILED, name="c"),
        outcome(Status.HELD, name="d"),
        outcome(Status.WARNINGS, name="e"),
    ]
    assert [f.name for f in problems_first(files)] == ["c", "b", "d", "e", "a"]
