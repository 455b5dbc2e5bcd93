"""The file's SHA-256, computed from the very blocks the inspection reads, for uploads that need it first.

Why: an S3 upload is sent the digest as its integrity checksum, before its first byte, and reading
a 1 GiB export once to check it and once more to hash it doubles the disk work before that byte
goes out. So the check of such a file (a profile's `checksum_first`) opens it through a
`ContentHash`: every block it reads
is handed to a hashing thread as it is (no copy), and hashlib releases the GIL while it hashes, so
the digest is computed on the other core while the scan goes on (a file of one block or less is
hashed as it is read: there is nothing to overlap). What the inspection did not read
(it stopped at a fatal problem) is read to the end when the file is closed, so the digest is always
that of the whole file. Memory stays bounded: at most `QUEUED_BLOCKS` blocks wait for the hasher.

A Learn upload needs no digest first: it hashes what it sends (agent.targets.http.StreamedBody) and
the journal keeps that digest with SENT, which leaves its check free to split across the cores.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import queue
import threading
from pathlib import Path
from typing import BinaryIO, cast

QUEUED_BLOCKS = 2  # blocks read but not yet hashed (a scan block each); the reader waits beyond this
DRAIN_SIZE = 4 * 1024 * 1024
# A file of at most one block is hashed as it is read, on the reading thread: there is nothing to
# overlap, and starting and joining a thread per file was a tenth of the CPU of a burst of small files.
INLINE_MAX_BYTES = DRAIN_SIZE


class HashingReader(io.RawIOBase):
    """A read-only binary file whose every byte read also goes into a SHA-256, on a thread of its own."""

    def __init__(self, raw: BinaryIO, *, threaded: bool = True) -> None:
        super().__init__()
        self.raw = raw
        self.digest = hashlib.sha256()
        self.blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUED_BLOCKS)
        self.hasher: threading.Thread | None = None
        if threaded:
            self.hasher = threading.Thread(target=self._hash, name="sha256", daemon=True)
            self.hasher.start()
        self.result: str | None = None

    def _take(self, block: bytes) -> None:
        if self.hasher is None:
            self.digest.update(block)
        else:
            self.blocks.put(block)  # bytes are immutable: the hasher may read them while we go on

    def _hash(self) -> None:
        while (block := self.blocks.get()) is not None:
            self.digest.update(block)

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.raw.fileno()

    def read(self, size: int | None = -1) -> bytes:
        block = self.raw.read(-1 if size is None else size)
        if block:
            self._take(block)
        return block

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """For io.BufferedReader (the CSV check reads text through one): one copy for the hasher."""
        count = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if count:
            self._take(bytes(memoryview(buffer)[:count]))
        return int(count or 0)

    def close(self) -> None:
        """Reads what is left (so the digest covers the whole file), then closes the file."""
        if not self.raw.closed:
            whole = False
            try:
                while self.read(DRAIN_SIZE):
                    pass
                whole = True
            finally:
                if self.hasher is not None:
                    self.blocks.put(None)
                    self.hasher.join()
                self.raw.close()
                # A read that failed part way leaves no digest: half a file's hash must never pass for it.
                self.result = self.digest.hexdigest() if whole else None
        super().close()


class ContentHash:
    """Opens one file for the inspection and knows its SHA-256 once the inspection closed it."""

    def __init__(self) -> None:
        self.reader: HashingReader | None = None

    def open(self, path: Path) -> BinaryIO:
        """The inspection's opener (agent.inspection.Opener): a binary file that reads and hashes."""
        if self.reader is not None:
            raise RuntimeError("a ContentHash hashes one file, opened once")
        raw = path.open("rb")
        try:
            small = os.fstat(raw.fileno()).st_size <= INLINE_MAX_BYTES
        except OSError:
            small = False
        self.reader = HashingReader(raw, threaded=not small)
        return cast(BinaryIO, self.reader)  # the read side of BinaryIO, which is all a check uses

    def hexdigest(self) -> str | None:
        """The whole file's SHA-256 (hex), or None when it was never opened."""
        if self.reader is None:
            return None
        self.reader.close()
        return self.reader.result

    def digest_of(self, path: Path) -> str:
        """The digest from the check's own reads; a file the check could not open (or whose read
        failed part way) is read once more, on its own, so the journal always has the whole digest."""
        return self.hexdigest() or sha256_of(path)


def sha256_of(path: Path) -> str:
    """One streaming pass of a file of its own, in 1 MiB pieces (constant memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(1024 * 1024)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            digest.update(view[:count])
    return digest.hexdigest()


def base64_digest(hex_digest: str) -> str:
    """A hex SHA-256 as S3's `ChecksumSHA256` wants it (base64 of the 32 bytes)."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")
