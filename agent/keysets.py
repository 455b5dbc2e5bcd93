"""Record keys of a flat file, and which keys of one file are missing from another, in bounded memory.

Why this module: a `refresh` disables every record that is missing from the file, so the question
before sending one is "which records present last time are absent now?". Row counts cannot answer
it (15 % of the people swapped for others keeps the count). Files reach millions of rows, so keys are
never held as one Python set: each file's keys are spread over `BUCKETS` bucket files by hash, and
the buckets are compared one at a time, with C-speed set operations on a small share of the keys.
Keys are read with one compiled pattern per block of whole lines (no Python work per field).

A composite key (a membership's course and person) is its columns joined by `SEPARATOR`, which no
text export contains; `key_fields` splits it again for the admin's CSV.
"""

from __future__ import annotations

import csv
import heapq
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.feeds import BOM, FEED_TYPES, choose_delimiter

BLOCK_SIZE = 4 * 1024 * 1024
BUCKETS = 64
SAMPLE_SIZE = 50  # keys named in the email body; the CSV has them all
SEPARATOR = b"\x1f"  # ASCII unit separator: joins the columns of a composite key
DATA_SOURCE_COLUMN = "data_source_key"


@dataclass(frozen=True)
class KeyLayout:
    """Where a file's key columns are: its delimiter and the indexes of the key columns."""

    delimiter: bytes
    columns: tuple[str, ...]  # the key column names, for the CSV header
    indexes: tuple[int, ...]
    data_source_index: int | None

    def pattern(self, indexes: tuple[int, ...]) -> re.Pattern[bytes]:
        """ "\\n" + a line, capturing the fields at `indexes` (ascending); blocks start with "\\n"."""
        sep = re.escape(self.delimiter)
        value = b"([^" + sep + b"\\r\\n]*)"
        skip = b"[^" + sep + b"\\r\\n]*"
        parts = [b"\\n"]
        position = 0
        for number, index in enumerate(indexes):
            gap = index - position
            if number:
                parts.append((b"(?:" + sep + skip + b")") * (gap - 1) + sep if gap > 1 else sep)
            else:
                parts.append((b"(?:" + skip + sep + b"){" + str(gap).encode() + b"}") if gap else b"")
            parts.append(value)
            position = index
        return re.compile(b"".join(parts))


def layout_of(path: Path, slug: str) -> KeyLayout | None:
    """The key layout from the file's header, or None when the header lacks a key column."""
    feed = FEED_TYPES.get(slug)
    if feed is None:
        return None
    with path.open("rb") as handle:
        first = handle.readline(1024 * 1024)
    header = first.removeprefix(BOM).decode("utf-8", errors="replace")
    delimiter, columns, _, _ = choose_delimiter(header, path.name)
    if any(key not in columns for key in feed.keys):
        return None
    order = sorted(feed.keys, key=columns.index)
    dsk = columns.index(DATA_SOURCE_COLUMN) if DATA_SOURCE_COLUMN in columns else None
    return KeyLayout(delimiter.encode(), tuple(order), tuple(columns.index(k) for k in order), dsk)


def _blocks(path: Path) -> Iterator[bytes]:
    """ "\\n" + whole lines, past the header, in blocks of about BLOCK_SIZE; the last one ends with "\\n"."""
    with path.open("rb") as handle:
        handle.readline(1024 * 1024)  # the header
        pending = b""
        while chunk := handle.read(BLOCK_SIZE):
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                pending += chunk
                continue
            yield b"".join((b"\n", pending, chunk[:cut]))
            pending = chunk[cut:]
        if pending:
            yield b"\n" + pending + b"\n"


def iter_key_blocks(path: Path, layout: KeyLayout) -> Iterator[list[bytes]]:
    """The file's non-empty keys, one list per block (composite keys joined by SEPARATOR)."""
    pattern = layout.pattern(layout.indexes)
    for block in _blocks(path):
        found = pattern.findall(block)
        if len(layout.indexes) > 1:
            found = [SEPARATOR.join(parts) for parts in found if all(parts)]
        yield [key for key in found if key] if b"" in found else found


def data_source_keys(path: Path, layout: KeyLayout) -> tuple[str, ...]:
    """The distinct data source keys in the file, sorted (empty when the integration supplies it)."""
    if layout.data_source_index is None:
        return ()
    pattern = layout.pattern((layout.data_source_index,))
    seen: set[bytes] = set()
    for block in _blocks(path):
        seen.update(pattern.findall(block))  # a handful of distinct values, however many rows
    seen.discard(b"")
    return tuple(sorted(value.decode("utf-8", errors="replace").strip() for value in seen))


def key_fields(key: bytes) -> list[str]:
    """A stored key as the values of its columns, for the admin."""
    return [part.decode("utf-8", errors="replace") for part in key.split(SEPARATOR)]


def key_text(key: bytes) -> str:
    """A key as one readable string (`C001 / P00012` for a composite key)."""
    return " / ".join(key_fields(key))


def write_key_list(path: Path, layout: KeyLayout, destination: Path) -> int:
    """The file's keys as a plain list (one per line): the compact key set kept in the state folder."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with destination.open("wb") as out:
        for keys in iter_key_blocks(path, layout):
            if keys:
                out.write(b"\n".join(keys) + b"\n")
                count += len(keys)
    return count


def iter_key_list(path: Path) -> Iterator[list[bytes]]:
    """A compact key set written by write_key_list, in blocks."""
    for block in _blocks_of_list(path):
        yield [key for key in block.split(b"\n") if key]


def _blocks_of_list(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        pending = b""
        while chunk := handle.read(BLOCK_SIZE):
            cut = chunk.rfind(b"\n") + 1
            yield pending + chunk[:cut]
            pending = chunk[cut:]
        if pending:
            yield pending


@dataclass
class KeyDifference:
    """What a refresh would do, key by key, compared with the last delivered file."""

    baseline: int = 0  # distinct keys last time
    current: int = 0  # distinct keys now
    disabled: int = 0  # present last time, absent now
    added: int = 0  # absent last time, present now
    sample: list[bytes] = field(default_factory=list)  # the first SAMPLE_SIZE disabled keys, sorted

    def percent_disabled(self) -> float:
        return self.disabled * 100 / self.baseline if self.baseline else 0.0


class _Buckets:
    """Keys spread over BUCKETS files by hash, so one bucket of two files fits in memory at a time."""

    def __init__(self, folder: Path, side: str) -> None:
        self.paths = [folder / f"{side}-{number:02d}" for number in range(BUCKETS)]
        self._files = [path.open("wb") for path in self.paths]

    def add(self, keys: list[bytes]) -> None:
        spread: list[list[bytes]] = [[] for _ in range(BUCKETS)]
        appenders = [bucket.append for bucket in spread]
        mask = BUCKETS - 1
        for key in keys:  # the one Python step per key (about 0.1 µs)
            appenders[hash(key) & mask](key)
        for handle, bucket in zip(self._files, spread, strict=True):
            if bucket:
                handle.write(b"\n".join(bucket) + b"\n")

    def close(self) -> None:
        for handle in self._files:
            handle.close()


def _read_set(path: Path) -> set[bytes]:
    keys = set(path.read_bytes().split(b"\n"))
    keys.discard(b"")
    return keys


def compare(
    baseline: Iterator[list[bytes]], current: Iterator[list[bytes]], disabled_out: Path, columns: tuple[str, ...]
) -> KeyDifference:
    """Count the keys disabled and added; write every disabled key, sorted, to `disabled_out` (CSV).

    Memory: one block of keys while spreading, then one bucket of each side at a time; the sorted
    disabled keys of each bucket are merged from their files.
    """
    result = KeyDifference()
    folder = Path(tempfile.mkdtemp(prefix="keys-", dir=disabled_out.parent))
    try:
        sides = {}
        for side, source in (("old", baseline), ("new", current)):
            buckets = sides[side] = _Buckets(folder, side)
            for keys in source:
                buckets.add(keys)
            buckets.close()
        gone_paths = []
        for number, (old_path, new_path) in enumerate(zip(sides["old"].paths, sides["new"].paths, strict=True)):
            old, new = _read_set(old_path), _read_set(new_path)
            gone = old - new
            result.baseline += len(old)
            result.current += len(new)
            result.disabled += len(gone)
            result.added += len(new) - (len(old) - len(gone))
            del old, new
            gone_paths.append(folder / f"gone-{number:02d}")
            gone_paths[-1].write_bytes(b"".join(key + b"\n" for key in sorted(gone)))
        result.sample = _merge_to_csv(gone_paths, disabled_out, columns)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _merge_to_csv(sorted_paths: list[Path], destination: Path, columns: tuple[str, ...]) -> list[bytes]:
    """Merge sorted key files into one CSV; returns the first SAMPLE_SIZE keys."""
    sample: list[bytes] = []
    handles = [path.open("rb") for path in sorted_paths]
    try:
        with destination.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            for line in heapq.merge(*handles):
                key = line.rstrip(b"\n")
                if len(sample) < SAMPLE_SIZE:
                    sample.append(key)
                writer.writerow(key_fields(key))
    finally:
        for handle in handles:
            handle.close()
    return sample


def keys_csv(path: Path, layout: KeyLayout, destination: Path) -> tuple[int, list[bytes]]:
    """Every key of the file as CSV (what a delete would remove); returns the count and the first keys."""
    count = 0
    sample: list[bytes] = []
    with destination.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(layout.columns)
        for keys in iter_key_blocks(path, layout):
            writer.writerows(map(key_fields, keys))
            if len(sample) < SAMPLE_SIZE:
                sample.extend(keys[: SAMPLE_SIZE - len(sample)])
            count += len(keys)
    return count, sample
