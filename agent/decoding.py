"""How Learn will read a file's bytes, and a reader that hands the inspection UTF-8 whatever they are.

Learn reads a flat file with a byte-order mark as the Unicode encoding that mark names (UTF-8,
UTF-16LE, UTF-16BE) and a file without one as ISO-8859-1. feed-agent sends every file as it is,
byte for byte, so what it must check is what Learn will read:

- UTF-16 with its byte-order mark: Learn reads it right, so it is inspected by decoding it.
- A route with `encoding = latin-1`: the SIS writes ISO-8859-1 on purpose, and Learn reads a file
  without a mark exactly so. It is checked as ISO-8859-1: bytes 0x80-0x9F are control characters
  there (Windows-1252 puts curly quotes, dashes and the euro sign on them), and a file whose
  non-ASCII bytes all form valid UTF-8 is UTF-8 declared wrongly (Learn would store "JosÃ©").
- Everything else stays UTF-8 and is checked by the fast byte scan (`agent.linescan`).

Why a transcoding reader: the header detection and the row scan work on UTF-8 bytes at C speed;
feeding them the decoded text re-encoded as UTF-8 keeps one set of checks for every encoding.
"""

from __future__ import annotations

import codecs
from typing import BinaryIO

UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
UTF8_BOM = b"\xef\xbb\xbf"
ROUTE_ENCODINGS = ("utf-8", "latin-1")  # what a route may declare for its BOM-less files
_NOT_C1 = bytes(b for b in range(256) if not 0x80 <= b < 0xA0)  # deleting these leaves the C1 controls


class DecodedSource:
    """A binary reader over `handle` that returns the file's text as UTF-8, minus any byte-order mark.

    `first` is the transcoded start of the file (from the block the caller already read); `read`
    continues from there. A decoding failure ends the text early and is kept in `problem`.
    """

    def __init__(self, label: str, first: bytes, handle: BinaryIO, *, bom: bool) -> None:
        self.label = label  # what Learn reads it as: utf-16-le, utf-16-be or latin-1
        self.bom = bom
        self.problem: str | None = None
        self._handle = handle
        self._decoder = codecs.getincrementaldecoder("utf-16" if bom else "latin-1")("strict")
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")  # latin-1: is it UTF-8 in fact?
        self._utf8_valid, self._non_ascii = True, False
        self._consumed = 0  # raw bytes decoded so far (for the byte offset of a problem)
        self._lines = 1  # line number at the start of the next raw piece (latin-1 only)
        self._control: tuple[int, bytes] | None = None  # (line, byte) of the first C1 control byte
        self.first = self._transcode(first, final=False)

    def read(self, size: int = -1) -> bytes:
        if self.problem is not None:
            return b""
        raw = self._handle.read(size if size and size > 0 else -1)
        return self._transcode(raw, final=not raw)

    def finish(self) -> None:
        """After the last read, judge a Latin-1 file: UTF-8 in disguise first, then Windows-1252 bytes."""
        if self.label != "latin-1" or self.problem is not None:
            return
        if self._non_ascii and self._utf8_valid:
            self.problem = (
                "the route says encoding = latin-1, but the file is UTF-8 text (its accented letters are "
                "UTF-8 byte pairs): Learn would store 'é' as 'Ã©'; remove encoding = latin-1 from the route "
                "(the file is then sent as UTF-8) or export the file as Latin-1"
            )
        elif self._control is not None:
            line, byte = self._control
            shown = byte.decode("cp1252", errors="replace")
            hint = f" ('{shown}' in Windows-1252)" if shown.isprintable() and shown != "\ufffd" else ""
            self.problem = (
                f"line {line} has the byte 0x{byte.hex().upper()}{hint}, which is a control character in "
                "Latin-1 (ISO-8859-1), the encoding the route declares: the file is Windows-1252, not Latin-1; "
                "export it as UTF-8 (and remove encoding = latin-1) or as true Latin-1"
            )

    def _transcode(self, raw: bytes, *, final: bool) -> bytes:
        if self.problem is not None:
            return b""
        if self.label == "latin-1":
            self._check_latin1(raw, final)
        try:
            text = self._decoder.decode(raw, final)
        except UnicodeDecodeError as exc:
            self.problem = (
                f"the file starts with a UTF-16 byte-order mark but is not valid {self.label.upper()} "
                f"(near byte {self._consumed + exc.start}); export it again as UTF-16 or as UTF-8"
            )
            return b""
        self._consumed += len(raw)
        return text.encode("utf-8")  # the utf-16 decoder has dropped the byte-order mark

    def _check_latin1(self, raw: bytes, final: bool) -> None:
        """Track UTF-8 validity and the first C1 control byte (with its line) for `finish`."""
        plain = raw.isascii()
        self._non_ascii = self._non_ascii or not plain
        if self._non_ascii and self._utf8_valid:  # from the first non-ASCII byte on, every byte counts
            try:
                self._utf8.decode(raw, final)
            except UnicodeDecodeError:
                self._utf8_valid = False
        if not plain and self._control is None:
            controls = raw.translate(None, _NOT_C1)
            if controls:
                at = raw.find(controls[:1])
                self._control = (self._lines + raw.count(b"\n", 0, at), controls[:1])
        self._lines += raw.count(b"\n")


def open_decoded(first: bytes, handle: BinaryIO, declared: str = "utf-8") -> DecodedSource | None:
    """The decoding reader this file needs, or None when it is read as UTF-8 (the fast byte path).

    A byte-order mark decides first, as in Learn: UTF-16 is decoded; a UTF-8 mark stays UTF-8 even
    on a Latin-1 route. Without a mark, a route's `encoding = latin-1` is honoured.
    """
    if first.startswith(UTF32_BOMS):
        return None  # refused by the inspection: Learn does not read UTF-32
    for mark, label in UTF16_BOMS.items():
        if first.startswith(mark):
            return DecodedSource(label, first, handle, bom=True)
    if declared == "latin-1" and not first.startswith(UTF8_BOM):
        return DecodedSource("latin-1", first, handle, bom=False)
    return None
