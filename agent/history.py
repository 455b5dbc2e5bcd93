"""Feed history: what each feed delivered lately, from the journal.

Why: a refresh that would disable 15 % of the campus, or a store a quarter of its usual size, is
obvious next to the feed's last deliveries. `feed-agent history` prints them per feed (a table and a
text sparkline); the batch summary shows each of its feeds' last 14 deliveries as a small chart
(`agent.reports` lays it out). A feed is a route's object and operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from agent.journal import Journal
from agent.journal_schema import ACCEPTED_STATUSES, FileRecord
from agent.printable import printable
from agent.records import BatchOutcome, FeedHistory, FeedPoint
from agent.wording import format_count

CHART_DELIVERIES = 14
SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int | None]) -> str:
    """Eight heights scaled to the largest value; `·` for a delivery without a row count."""
    top = max((v for v in values if v is not None), default=0)
    if top <= 0:
        return "".join("·" if v is None else SPARKS[0] for v in values)
    return "".join("·" if v is None else SPARKS[min(7, v * 8 // (top + 1))] for v in values)


def _point(record: FileRecord, current: bool) -> FeedPoint:
    return FeedPoint(
        file_id=record.id,
        when=record.finished_at or record.updated_at,
        rows=record.rows,
        status=record.status or record.state,
        disabled=record.disabled_keys,
        added=record.added_keys,
        current=current,
    )


def batch_history(journal: Journal, batch: BatchOutcome, limit: int = CHART_DELIVERIES) -> list[FeedHistory]:
    """The last `limit` deliveries of each feed in the batch, oldest first; the batch's own file is
    among them (marked current) even when it was held or failed, so the chart shows what was refused."""
    ours = {f.file_id for f in batch.files if f.file_id is not None}
    feeds = sorted({(f.object, f.operation) for f in batch.files if f.object and f.operation})
    histories = []
    for slug, operation in feeds:
        delivered = journal.deliveries(route=batch.route, slug=slug, operation=operation, limit=limit)
        points = [_point(record, record.id in ours) for record in reversed(delivered)]
        refused = [  # held or failed: not among the deliveries, charted after them
            outcome.file_id
            for outcome in batch.files
            if (outcome.object, outcome.operation) == (slug, operation)
            and outcome.file_id is not None
            and outcome.status.value not in ACCEPTED_STATUSES
        ]
        # Only the last `limit` points are charted: a burst of thousands reads `limit` records, not all.
        points += [_point(journal.file(file_id), True) for file_id in refused[-limit:]]
        histories.append(FeedHistory(batch.route, slug, operation, tuple(points[-limit:])))
    return histories


def history_report(
    journal: Journal,
    *,
    route: str | None = None,
    slug: str | None = None,
    days: float = 30,
    now: datetime | None = None,
) -> str:
    """`feed-agent history`: per feed, a sparkline of its row counts and a table of its deliveries."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    records = list(reversed(journal.deliveries(route=route, slug=slug, since=since)))
    feeds: dict[tuple[str, str, str], list[FileRecord]] = {}
    for record in records:
        feeds.setdefault((record.route, record.object or "-", record.operation or "-"), []).append(record)
    period = f"the last {days:g} day(s)"
    if not feeds:
        return f"No deliveries in {period}" + (f" on route {route}" if route else "") + "."
    lines: list[str] = []
    for (feed_route, feed_object, operation), delivered in sorted(feeds.items()):
        rows = [r.rows for r in delivered]
        lines += [
            f"{feed_route}: {feed_object}/{operation}: {len(delivered)} deliveries in {period}",
            f"  rows {sparkline(rows)}  {format_count(rows[0])} → {format_count(rows[-1])}",
            *_table(delivered),
            "",
        ]
    return "\n".join(lines).rstrip()


def _table(delivered: list[FileRecord]) -> list[str]:
    header = ("FINISHED (UTC)", "ROWS", "COMPLETED", "WARNINGS", "ERRORS", "DISABLED", "ADDED", "STATUS", "FILE")
    body = [
        (
            r.finished_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M") if r.finished_at else "-",
            *(format_count(v) for v in (r.rows, r.completed, r.warnings, r.errors, r.disabled_keys, r.added_keys)),
            r.status or "-",
            printable(r.name),
        )
        for r in delivered
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
    right = range(1, 7)  # numbers line up on the right
    return [
        "  " + "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()
        for row in (header, *body)
    ]


# -- the summary's chart: bars built from HTML tables (agent.reports and the summary templates) -------

BAR_MAX_PX = 40
BAR_MIN_PX = 2
PAST_COLOUR = "#8c959f"


@dataclass(frozen=True)
class Bar:
    height: int  # pixels, BAR_MIN_PX to BAR_MAX_PX, scaled to the feed's largest delivery
    colour: str
    current: bool  # this batch's file: marked "today"
    title: str  # "2026-12-06 02:10 UTC: 24,000 rows, SUCCESS" (a tooltip where mail clients show one)


@dataclass(frozen=True)
class Chart:
    feed: str  # "person/refresh"
    bars: tuple[Bar, ...]
    spark: str  # the same deliveries as a text sparkline, for the plain-text part
    caption: str  # "last 14 deliveries: 396 to 404 rows; today 100"


def chart(history: FeedHistory, colour_of: dict[str, str]) -> Chart:
    """One feed's bars; `colour_of` maps a status to its badge colour (today's bar only)."""
    values = [p.rows for p in history.points]
    top = max((v for v in values if v), default=0)
    bars = []
    for point in history.points:
        height = BAR_MIN_PX if not point.rows or not top else max(BAR_MIN_PX, round(BAR_MAX_PX * point.rows / top))
        when = point.when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if point.when else "-"
        bars.append(
            Bar(
                height=height,
                colour=colour_of.get(point.status, "#0969da") if point.current else PAST_COLOUR,
                current=point.current,
                title=f"{when}: {format_count(point.rows)} rows, {point.status}",
            )
        )
    past = [p.rows for p in history.points if not p.current and p.rows is not None]
    today = [format_count(p.rows) for p in history.points if p.current]
    caption = f"last {len(history.points)} deliveries"
    if past:
        caption += f": {format_count(min(past))} to {format_count(max(past))} rows before"
    if today:
        caption += f"; today {', '.join(today)} (marked)"
    return Chart(f"{history.object}/{history.operation}", tuple(bars), sparkline(values), caption)
