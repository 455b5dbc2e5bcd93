"""Keep the scan's blocks in the process's heap instead of mapping fresh memory for each one.

Why: the row scan reads and joins a file in blocks of 512 KiB (agent.linescan), above glibc's
default mmap threshold (128 KiB), so with glibc's defaults freed blocks go back to the system and
new ones come as page faults of zero-filled memory. Raising glibc's mmap threshold to 32 MiB (its
maximum) and its trim threshold to 64 MiB keeps freed blocks in the heap for the next one.
Measured with 4 MiB blocks (farm-bench medians, 1 GiB): `inspect` of an ASCII file 9.1x -> 7.1x
`wc -l`, of an accented one 10.0x -> 9.1x; with 512 KiB blocks it still saves 9 % of the accented
file's time (system time 0.23 s -> 0.09 s). A top pad alone (M_TOP_PAD) did not do it.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's maximum on 64-bit systems
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def keep_freed_blocks() -> bool:
    """Raise glibc's mmap and trim thresholds; False (nothing changed) where there is no glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mapped = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    trimmed = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(mapped and trimmed)
