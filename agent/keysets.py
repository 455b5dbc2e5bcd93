"""Record keys of a flat file, and which keys of one file are missing from another, in bounded memory.

Why this module: a `refresh` disables every record that is missing from the file, so the question
before sending one is "which records present last time are absent now?". Row counts cannot answer
it (15 % of the people swapped for others keeps the count). Files reach millions of rows, so keys are
never held as one Python set: each file's keys are spread over `BUCKETS` bucket files by CRC-32 (a
*key set*: one folder), and the buckets are compared one at a time, with C-speed set operations on a
small share of the keys. The key set of a delivered refresh is kept, so the next comparison reads
only the new file. Keys are read with one compiled pattern per block of whole lines (no Python work
per field).

A composite key (a membership's course and person) is its columns joined by `SEPARATOR`, which no
text export contains; `key_fields` splits it again for the admin's CSV.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agent.decoding import open_decoded
from agent.feeds import BOM, FEED_TYPES, choose_delimiter

BLOCK_SIZE = 4 * 1024 * 1024
BUCKETS = 64
SAMPLE_SIZE = 50  # keys named in the email body; the CSV has them all
SORT_IN_MEMORY = 500_000  # disabled keys sorted in one list (about 35 MB); more are merged from files
SEPARATOR = b"\x1f"  # ASCII unit separator: joins the columns of a composite key
DATA_SOURCE_COLUMN = "data_source_key"


@dataclass(frozen=True)
class KeyLayout:
    """Where a file's key columns are: its delimiter and the indexes of the key columns."""

    delimiter: bytes
    columns: tuple[str, ...]  # the key column names, for the CSV header
    indexes: tuple[int, ...]
    data_source_index: int | None
    width: int  # columns in the header: only the last one can end in a "\\r" (CRLF lines)

    def pattern(self, indexes: tuple[int, ...]) -> re.Pattern[bytes]:
        """ "\\n" + a line, capturing the fields at `indexes` (ascending); blocks start with "\\n".

        A "\\r" is excluded only from the last column's value (a smaller class scans faster)."""
        sep = re.escape(self.delimiter)
        skip = b"[^" + sep + b"\\n]*"
        parts = [b"\\n"]
        position = 0
        for number, index in enumerate(indexes):
            gap = index - position
            if number:
                parts.append((b"(?:" + sep + skip + b")") * (gap - 1) + sep if gap > 1 else sep)
            else:
                parts.append((b"(?:" + skip + sep + b"){" + str(gap).encode() + b"}") if gap else b"")
            parts.append(b"([^" + sep + (b"\\r\\n]*)" if index == self.width - 1 else b"\\n]*)"))
            position = index
        return re.compile(b"".join(parts))


@contextmanager
def utf8_text(path: Path, declared: str, scratch: Path) -> Iterator[Path]:
    """The file as UTF-8 bytes: the file itself, or a UTF-8 copy of a UTF-16 or Latin-1 one in `scratch`.

    Why a copy: the keys are read by byte patterns and compared as UTF-8 bytes, so a UTF-16 file
    (two bytes a character) yields no key layout at all and a Latin-1 "é" (one byte) would show as
    "\ufffd" in the CSV and the email, and never match the same key written as UTF-8. Decoding as
    Learn reads the bytes (`agent.decoding`: the byte-order mark first, then the route's encoding)
    and writing it out once keeps the fast byte path for every encoding. The copy is removed after
    use; UTF-8 files (nearly all) are read in place."""
    with path.open("rb") as handle:
        decoded = open_decoded(handle.read(BLOCK_SIZE), handle, declared)
        if decoded is None:
            yield path
            return
        scratch.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="utf8-", suffix=".txt", dir=scratch)
        copy = Path(name)
        try:
            with open(fd, "wb") as out:
                out.write(decoded.first)
                size = os.fstat(handle.fileno()).st_size
                while (piece := decoded.read(BLOCK_SIZE)) or (handle.tell() < size and decoded.problem is None):
                    out.write(piece)  # empty when a read ended inside a character: the next one completes it
            yield copy
        finally:
            copy.unlink(missing_ok=True)


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
    return KeyLayout(delimiter.encode(), tuple(order), tuple(columns.index(k) for k in order), dsk, len(columns))


def _blocks(path: Path) -> Iterator[memoryview]:
    """ "\\n" + whole lines, past the header, in blocks of about BLOCK_SIZE (without their last "\\n").

    One buffer, filled in place (`readinto`): no copy of the file's bytes in Python. A block is only
    valid until the next one is read, so callers take what they need from it at once."""
    buffer = bytearray(BLOCK_SIZE + 1)
    buffer[0] = 0x0A  # every block starts with "\n": line-anchored patterns start with a literal
    filled, header = 1, True
    with path.open("rb", buffering=0) as handle:
        while True:
            if filled == len(buffer):  # a line longer than the buffer: a bigger one (never resized in place)
                buffer = buffer + bytearray(len(buffer))
            view = memoryview(buffer)
            read = handle.readinto(view[filled:])
            if not read:
                break
            end = filled + read
            if header:  # drop the header line once it is whole
                cut = buffer.find(b"\n", 1, end)
                if cut < 0:
                    filled = end
                    continue
                buffer[1 : end - cut] = buffer[cut + 1 : end]
                end, header = end - cut, False
            cut = buffer.rfind(b"\n", 1, end)
            if cut > 0:
                yield view[:cut]
                buffer[1 : end - cut] = buffer[cut + 1 : end]
                end = end - cut
            filled = end
        if filled > 1 and not header:
            yield memoryview(buffer)[:filled]


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


def _bucket_names() -> list[str]:
    return [f"{number:02d}.keys" for number in range(BUCKETS)]


def write_key_set(blocks: Iterator[list[bytes]], folder: Path) -> int:
    """Write keys as a key set: a folder of BUCKETS files, each key in the file its CRC-32 picks.

    CRC-32 rather than hash(): the buckets must be the same in the next process, so a key set kept
    from the last delivery is compared bucket by bucket without reading it again key by key.
    Returns the number of keys written (duplicates included)."""
    folder.mkdir(parents=True, exist_ok=True)
    handles = [(folder / name).open("wb") for name in _bucket_names()]
    count = 0
    try:
        mask, crc = BUCKETS - 1, zlib.crc32
        for keys in blocks:
            spread: list[list[bytes]] = [[] for _ in range(BUCKETS)]
            appenders = [bucket.append for bucket in spread]
            for code, key in zip(map(crc, keys), keys, strict=True):  # the one Python step per key
                appenders[code & mask](key)
            for handle, bucket in zip(handles, spread, strict=True):
                if bucket:
                    handle.write(b"\n".join(bucket))
                    handle.write(b"\n")
            count += len(keys)
    finally:
        for handle in handles:
            handle.close()
    return count


def is_key_set(folder: Path) -> bool:
    return all((folder / name).is_file() for name in _bucket_names())


def _read_set(path: Path) -> set[bytes]:
    keys = set(path.read_bytes().split(b"\n"))
    keys.discard(b"")
    return keys


def compare(baseline: Path, current: Path, disabled_out: Path, columns: tuple[str, ...]) -> KeyDifference:
    """Compare two key sets (folders from write_key_set): count the keys disabled and added, and
    write every disabled key, sorted, to `disabled_out` (CSV).

    Memory: one bucket of each side at a time (1/64 of the keys), and the disabled keys: sorted in
    memory up to SORT_IN_MEMORY of them, else each bucket's sorted to a file and the files merged.
    """
    result = KeyDifference()
    folder = Path(tempfile.mkdtemp(prefix="gone-", dir=disabled_out.parent))
    try:
        few: list[bytes] | None = []  # the disabled keys while there are few; None once spilled to files
        for name in _bucket_names():
            old, new = _read_set(baseline / name), _read_set(current / name)
            gone = old - new
            result.baseline += len(old)
            result.current += len(new)
            result.disabled += len(gone)
            result.added += len(new) - (len(old) - len(gone))
            del old, new
            if few is not None and result.disabled <= SORT_IN_MEMORY:
                few.extend(gone)
                continue
            if few is not None:  # too many to sort in memory: spill them, one sorted file per bucket
                _write_sorted(few, folder / "spilled")
                few = None
            _write_sorted(gone, folder / name)
        if few is not None:
            few.sort()
            _write_csv(iter([few]), disabled_out, columns)
            result.sample = few[:SAMPLE_SIZE]
        else:
            result.sample = _merge_to_csv(sorted(folder.iterdir()), disabled_out, columns)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def _write_sorted(keys: Iterable[bytes], path: Path) -> None:
    path.write_bytes(b"".join(key + b"\n" for key in sorted(keys)))


def _write_csv(blocks: Iterator[list[bytes]], destination: Path, columns: tuple[str, ...]) -> None:
    """Keys as CSV rows: as plain lines when no value needs CSV quoting (the common case, fast)."""
    with destination.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(columns)
        for keys in blocks:
            joined = b"\n".join(keys)
            if keys and not any(mark in joined for mark in (b",", b'"', b"\r", SEPARATOR)):
                out.write(joined.decode("utf-8", errors="replace") + "\n")
            else:
                writer.writerows(map(key_fields, keys))


def _merge_to_csv(sorted_paths: list[Path], destination: Path, columns: tuple[str, ...]) -> list[bytes]:
    """Merge sorted key files into one CSV; returns the first SAMPLE_SIZE keys."""
    handles = [path.open("rb") for path in sorted_paths]
    try:
        merged = (line.rstrip(b"\n") for line in heapq.merge(*handles))
        sample = list(itertools.islice(merged, SAMPLE_SIZE))
        _write_csv(itertools.chain([sample], _batched(merged)), destination, columns)
    finally:
        for handle in handles:
            handle.close()
    return sample


def _batched(keys: Iterator[bytes]) -> Iterator[list[bytes]]:
    while batch := list(itertools.islice(keys, 10_000)):
        yield batch


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
