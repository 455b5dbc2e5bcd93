"""`agent.heap`: the malloc thresholds the split scan asks for, on this machine's C library.

Their effect (no fresh pages per block, a faster scan) is a performance figure, measured in
bench/inspect_bench.py and bench/upload_bench.py, not asserted here."""

from __future__ import annotations

import platform
import subprocess
import sys


def test_glibc_takes_the_thresholds_and_another_c_library_is_left_alone() -> None:
    """In a child, so this test process keeps glibc's defaults."""
    code = "from agent.heap import keep_freed_blocks; print(keep_freed_blocks())"
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert answer == str(platform.libc_ver()[0] == "glibc")
