"""How a name from outside (a dropped file's name, a message) is shown: control characters escaped.

Why: a drop folder accepts any name the filesystem does, and Linux allows every byte but `/` and
NUL. A name with a newline would forge a second log line ("… INFO archived: x\\n… ERROR …") and make
an email header invalid (the report was then never sent); an ESC sequence would repaint an admin's
terminal; a right-to-left override would show `txt.exe` as `exe.txt`; a name that is not valid
UTF-8 arrives as lone surrogates that no email or log can encode. So wherever a name is *shown*
(log lines, subjects and bodies, reason files, the summary's CSV), these characters are written as
escapes (`\\n`, `\\t`, `\\x1b`, `\\u202e`; an undecodable byte as `\\xff`), and everything else is
left as it is. The file itself keeps its real name on disk: only what people read is escaped.
"""

from __future__ import annotations

import re
import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Printable ASCII never needs a look; anything else is checked by its Unicode category.
_SUSPECT = re.compile(r"[^\x20-\x7e]")


def _escape(character: str) -> str:
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by os.fsdecode (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if unicodedata.category(character)[0] != "C":
        return character
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with control, format and undecodable characters escaped; unchanged when it has none."""
    return _SUSPECT.sub(lambda match: _escape(match.group()), text)


def printable_lines(text: str) -> str:
    """Like :func:`printable`, but newlines and tabs stay: for a whole body whose lines are ours."""
    return _SUSPECT.sub(lambda match: match.group() if match.group() in "\n\t" else _escape(match.group()), text)
