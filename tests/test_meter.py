"""The upload meter: redrawn in place a few times a second with rate and time left, one final line."""

from __future__ import annotations

import io

from agent.meter import UploadMeter, terminal_meter
from tests.support.clock import FakeClock

MB = 1024 * 1024


def test_the_line_shows_bytes_rate_and_time_left_and_ends_with_one_uploaded_line() -> None:
    stream, clock = io.StringIO(), FakeClock()
    meter = UploadMeter(stream, clock=clock)
    meter(1 * MB, 300 * MB)  # the first piece: nothing measured yet
    clock.advance(0.1)
    meter(2 * MB, 300 * MB)  # too soon to redraw
    clock.advance(4.9)
    meter(10 * MB, 300 * MB)
    clock.advance(140.0)
    meter(300 * MB, 300 * MB)
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 3
    assert frames[0].startswith("  uploading: 1.0 MB of 300.0 MB (0%), measuring speed")
    assert frames[1].rstrip() == "  uploading: 10.0 MB of 300.0 MB (3%), 2.0 MB/s, about 2 min 25 s left"
    assert frames[2].endswith("\n") and frames[2].rstrip() == "  uploaded: 300.0 MB in 2 min 25 s (2.1 MB/s)"


def test_a_shorter_line_wipes_the_longer_one_before_it() -> None:
    stream, clock = io.StringIO(), FakeClock()
    meter = UploadMeter(stream, clock=clock)
    meter(1, 10 * MB)
    clock.advance(1.0)
    meter(5 * MB, 10 * MB)
    first, second = stream.getvalue().split("\r")[1:]
    assert len(second) >= len(first)


def test_no_meter_when_the_output_is_not_a_terminal() -> None:
    assert terminal_meter(io.StringIO()) is None
