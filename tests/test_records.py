"""Records shared by every layer (`agent.records`): receipts survive the journal, a batch's worst status."""

from __future__ import annotations

from datetime import datetime, timezone

from agent.records import BatchOutcome, FileOutcome, Receipt, Status


def test_a_receipt_round_trips_through_json() -> None:
    receipt = Receipt("learn", "learn", "ab" * 16, {"endpoint": "https://x"}, datetime(2026, 1, 2, tzinfo=timezone.utc))
    assert Receipt.from_json(receipt.to_json()) == receipt


def test_the_summary_status_is_the_worst_one() -> None:
    def file(status: Status) -> FileOutcome:
        return FileOutcome(name="f", route="r", target="t", target_type="learn", status=status)

    start = datetime(2026, 1, 2, tzinfo=timezone.utc)
    assert BatchOutcome("r", start).overall is Status.SUCCESS
    batch = BatchOutcome("r", start, files=[file(Status.WARNINGS), file(Status.FAILED), file(Status.HELD)])
    assert batch.overall is Status.FAILED and not batch.ok
    assert Status.SUCCESS.ok and not Status.WARNINGS.ok
    assert Status.HELD.blocks_dependents and not Status.ERRORS.blocks_dependents
