"""The HTML emails on a phone (issue 12): rendered by the real Renderer, laid out by a real Chromium.

Why a browser: whether a table squeezes to 400 px or pushes the page sideways depends on real
layout (min-content widths of long file names, fixed cells, inline-blocks), which no HTML parse
can tell. Each email gets worst-case content: long names, long paths, 32-hex reference codes, a
300-character reason, counts in the millions, a 30-file summary with every status. The test skips
only when no Chromium is installed (Debian: apt-get install chromium).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from agent.records import BatchOutcome, FileOutcome, Progress, Receipt, Status
from agent.render import RenderedEmail, Renderer
from tests.support.chromium import Chromium, Layout, chromium, find_chromium
from tests.support.outcomes import START, outcome

CODE = "8f3c2a61d4e94b0f9a1c7e2b5d6f8a90"
DROP = Path("/mnt/sis-exports/registrar_office/nightly_student_information_system_exports/drop")
# Word-breaking characters are rare in SIS file names: underscores and dots do not let a line break.
LONG_NAME = "enrollments_fall2026_all_campuses_continuing_education_online_crosslisted_sections_full_export.txt"
REASON = (
    "Learn rejected the upload: HTTP 400 Bad Request from "
    "https://learn.example.edu/webapps/bb-data-integration-flatfile-BB5a9e4c1f07b2d4e6f/endpoint/membership/store "
    "because the header has a column 'COURSE_MEMBERSHIP_ROLE_IDENTIFIER_EXTENDED' it does not know; the "
    "integration expects EXTERNAL_COURSE_KEY|EXTERNAL_PERSON_KEY|ROLE."
)
# Gmail cuts off ("[Message clipped]") an HTML part above 102 KB: the next steps at the bottom are lost.
GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class Viewport:
    name: str
    width: int
    mobile: bool  # phone emulation: the page's meta viewport applies, as in a mail app


PHONE = Viewport("phone", 400, mobile=True)
NARROW = Viewport("narrow window", 400, mobile=False)
WIDE = [Viewport("600 px", 600, mobile=False), Viewport("desktop", 800, mobile=False)]


def _long_outcome(status: Status, index: int = 0) -> FileOutcome:
    """One file with the longest realistic values in every field the emails show."""
    name = f"{index:02d}_{LONG_NAME}" if index else LONG_NAME
    result = outcome(status, name=name)
    result.rows = 1_234_567
    result.size = 987_654_321
    result.drop_folder = DROP
    if result.final_path is not None:
        result.final_path = DROP.parent / result.final_path.parent.name / f"{Path(name).stem}.20261122T070005Z.txt"
    if result.receipt is not None:
        result.receipt = Receipt("learn", "learn", CODE)
        queued = 345_678 if status is Status.TIMED_OUT else 0
        result.progress = Progress(queued=queued, completed=1_234_000, warnings=45_678, errors=56_789)
    if status in (Status.FAILED, Status.REJECTED, Status.TIMED_OUT, Status.HELD):
        result.message = REASON
    if status is Status.HELD:
        result.held_by = f"courses_{LONG_NAME}"
    return result


def _summary() -> BatchOutcome:
    statuses = list(Status)
    batch = BatchOutcome(route="nightly_registrar_full_refresh", started_at=START)
    batch.finished_at = START + timedelta(hours=5, minutes=7, seconds=41)
    batch.files = [_long_outcome(statuses[i % len(statuses)], index=i + 1) for i in range(30)]
    batch.mail_problems = [
        f"[feed-agent] SUCCESS {LONG_NAME} — membership/store: mail server "
        "smtp-relay.registrar.example.edu:587 refused the connection (gave up after 3 attempts)"
    ]
    return batch


KINDS = [f"per-file {status.value}" for status in Status] + ["summary of 30 files", "still processing", "missing"]


@pytest.fixture(scope="module")
def emails() -> dict[str, RenderedEmail]:
    """Every kind of email, rendered once through the shipped templates."""
    renderer = Renderer()
    rendered = {f"per-file {status.value}": renderer.file_report(_long_outcome(status)) for status in Status}
    rendered["summary of 30 files"] = renderer.summary(_summary())
    running = _long_outcome(Status.SUCCESS)
    running.finished_at = None
    rendered["still processing"] = renderer.still_processing(running, 1_000_000)
    rendered["missing"] = renderer.missing("nightly_registrar_full_refresh", DROP, 26, START)
    assert list(rendered) == KINDS
    return rendered


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium found (chromium, chromium-browser, google-chrome); Debian: apt-get install chromium")
    with chromium(binary, tmp_path_factory.mktemp("chromium-profile")) as running:
        yield running


def _measure(browser: Chromium, tmp_path: Path, html: str, viewport: Viewport) -> Layout:
    page = tmp_path / "email.html"
    page.write_text(html, encoding="utf-8")
    layout = browser.measure(page, viewport.width, mobile=viewport.mobile)
    assert layout.client_width == viewport.width, f"the browser did not take a {viewport.width} px viewport"
    return layout


def _explain(kind: str, viewport: Viewport, layout: Layout) -> str:
    return (
        f"{kind} at {viewport.width} px ({viewport.name}): page is {layout.scroll_width} px wide, "
        f"{layout.outside_count} element(s) stick out, e.g.\n  " + "\n  ".join(layout.outside)
    )


@pytest.mark.parametrize("viewport", [PHONE, NARROW], ids=lambda v: v.name)
@pytest.mark.parametrize("kind", KINDS)
def test_nothing_scrolls_sideways_or_is_cut_off_at_400_px(
    browser: Chromium, emails: dict[str, RenderedEmail], tmp_path: Path, kind: str, viewport: Viewport
) -> None:
    layout = _measure(browser, tmp_path, emails[kind].html, viewport)
    assert not layout.scrolls_sideways and layout.outside_count == 0, _explain(kind, viewport, layout)
    assert layout.card_width is not None and layout.card_width >= viewport.width - 20, "the card must use the width"


@pytest.mark.parametrize("viewport", WIDE, ids=lambda v: v.name)
@pytest.mark.parametrize("kind", KINDS)
def test_wide_screens_keep_the_600_px_card(
    browser: Chromium, emails: dict[str, RenderedEmail], tmp_path: Path, kind: str, viewport: Viewport
) -> None:
    layout = _measure(browser, tmp_path, emails[kind].html, viewport)
    assert not layout.scrolls_sideways and layout.outside_count == 0, _explain(kind, viewport, layout)
    assert layout.card_width is not None
    assert layout.card_width == min(600, viewport.width - 16), "fluid below 600 px, never wider than 600 px"


@pytest.mark.parametrize("kind", KINDS)
def test_outlook_gets_a_fixed_table_and_nothing_needs_images(emails: dict[str, RenderedEmail], kind: str) -> None:
    """Outlook ignores max-width, so a 600 px table in an MSO comment holds the card; badges are text."""
    html = emails[kind].html
    assert re.search(r'<!--\[if mso\]><table role="presentation" width="600"', html)
    assert html.count("<!--[if mso]>") == html.count("<![endif]-->")
    assert "<img" not in html and "background-image" not in html
    for_other_clients = re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)
    assert "<style" not in for_other_clients, "inline styles only: some clients drop <style>"


def test_a_30_file_summary_stays_below_gmail_s_clipping_size(emails: dict[str, RenderedEmail]) -> None:
    size = len(emails["summary of 30 files"].html.encode("utf-8"))
    assert size < GMAIL_CLIP_BYTES, f"{size} bytes: Gmail would hide the end of the summary"
