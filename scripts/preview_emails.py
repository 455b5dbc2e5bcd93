#!/usr/bin/env python3
"""Render sample reports to HTML (and PNG when Chromium is installed) to look at the templates.

Why: email HTML is easy to break unseen (a table cell too wide, a colour without contrast). Run this
after editing templates/ or a `templates_dir` override, then open the files:

    .venv/bin/python scripts/preview_emails.py [--out DIR] [--templates-dir DIR]

It writes per_file_errors, summary_mixed, alert_still_processing and alert_missing as .html and .txt
(+ .png when `chromium` is on PATH). No network, no mail is sent.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.records import BatchOutcome, FileOutcome, Progress, Receipt, Status
from agent.render import RenderedEmail, Renderer

START = datetime(2026, 11, 22, 7, 0, 5, tzinfo=timezone.utc)
DROP = Path("/srv/feed-agent/drop")
ARCHIVE = Path("/srv/feed-agent/var/archive")
FAILED = Path("/srv/feed-agent/var/failed")


def _learn(
    name: str,
    status: Status,
    obj: str,
    rows: int,
    counts: tuple[int, int, int, int],
    code: str | None,
    offset_s: int,
    took_s: int,
    **extra: object,
) -> FileOutcome:
    queued, completed, warnings, errors = counts
    folder = ARCHIVE if status in (Status.SUCCESS, Status.WARNINGS, Status.ERRORS) else FAILED
    outcome = FileOutcome(
        name=name,
        route="sis",
        target="learn",
        target_type="learn",
        status=status,
        size=rows * 87 + 120,
        rows=rows,
        object=obj,
        operation="store",
        receipt=Receipt("learn", "learn", code) if code else None,
        progress=Progress(queued=queued, completed=completed, warnings=warnings, errors=errors) if code else None,
        started_at=START + timedelta(seconds=offset_s),
        finished_at=START + timedelta(seconds=offset_s + took_s),
        final_path=folder / f"{Path(name).stem}_20261122T070005Z{Path(name).suffix}",
        drop_folder=DROP,
    )
    for key, value in extra.items():
        setattr(outcome, key, value)
    return outcome


def samples() -> tuple[FileOutcome, BatchOutcome, FileOutcome]:
    errors = _learn(
        "courses_fall.txt",
        Status.ERRORS,
        "course",
        1250,
        (0, 1238, 0, 12),
        "8f3c2a61d4e94b0f9a1c7e2b5d6f8a90",
        40,
        125,
    )
    batch = BatchOutcome(route="sis", started_at=START, finished_at=START + timedelta(minutes=6, seconds=41))
    batch.files = [
        _learn("terms.txt", Status.SUCCESS, "term", 4, (0, 4, 0, 0), "1a2b3c4d5e6f", 0, 12),
        _learn("users.txt", Status.WARNINGS, "person", 18342, (0, 18330, 12, 0), "a9e4c1f07b2d4e6f", 12, 205),
        errors,
        _learn(
            "enrolments.txt",
            Status.HELD,
            "membership",
            60211,
            (0, 0, 0, 0),
            None,
            300,
            0,
            held_by="sections.txt",
            message="",
        ),
        _learn(
            "sections.txt",
            Status.FAILED,
            "course",
            980,
            (0, 0, 0, 0),
            None,
            170,
            3,
            message="Learn rejected the upload: HTTP 400, the header has a column 'COURSE_IDD' it does not know",
        ),
        _learn(
            "x<script>.txt",
            Status.REJECTED,
            "",
            0,
            (0, 0, 0, 0),
            None,
            0,
            0,
            object=None,
            message="the header matches no known feed type",
        ),
    ]
    batch.mail_problems = [
        "[feed-agent] SUCCESS terms.txt — term/store: mail server smtp.example.edu:587 "
        "refused the connection (gave up after 3 attempts)"
    ]
    running = _learn("users_full.txt", Status.SUCCESS, "person", 240000, (180000, 60000, 0, 0), "c0ffee00d15ea5e", 0, 0)
    running.finished_at = None
    return errors, batch, running


def write(out: Path, stem: str, rendered: RenderedEmail) -> Path:
    (out / f"{stem}.txt").write_text(f"Subject: {rendered.subject}\n\n{rendered.text}", encoding="utf-8")
    html = out / f"{stem}.html"
    html.write_text(rendered.html, encoding="utf-8")
    return html


def screenshot(chromium: str, html: Path) -> Path:
    png = html.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                "--window-size=900,1200",
                html.resolve().as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("var/email-preview"), help="output folder")
    parser.add_argument("--templates-dir", type=Path, default=None, help="an override folder to preview")
    parser.add_argument("--no-screenshot", action="store_true", help="skip Chromium even when installed")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(args.templates_dir)
    errors, batch, running = samples()
    pages = [
        write(args.out, "per_file_errors", renderer.file_report(errors)),
        write(args.out, "summary_mixed", renderer.summary(batch)),
        write(args.out, "alert_still_processing", renderer.still_processing(running, 42)),
        write(args.out, "alert_missing", renderer.missing("sis", DROP, 26, START - timedelta(hours=26))),
    ]
    chromium = None if args.no_screenshot else (shutil.which("chromium") or shutil.which("chromium-browser"))
    for page in pages:
        print(page)
        if chromium:
            print(screenshot(chromium, page))
    if not chromium and not args.no_screenshot:
        print("chromium not on PATH: open the .html files in a browser instead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
