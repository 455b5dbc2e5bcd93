"""How the watcher looks at a folder and at one file: name filter first, `lstat` only, never a link.

* **Ignored names cost no stat.** `os.scandir` yields names without stat'ing them; the name filter
  (configured `ignore` patterns, reason files, ready markers) runs first, and only the names left
  are lstat'ed. A drop folder full of junk is therefore cheap to list, which is what makes polling
  network shares every second affordable.
* **`lstat`, never `stat`.** A symlink dropped in the folder is reported, not followed, so the agent
  only ever sends files that were really put there; folders and special files are reported too,
  with a sentence an admin can act on (:func:`unsupported_reason`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from agent.printable import printable

logger = logging.getLogger(__name__)

# The daemon writes `NAME.reason.txt` beside a failed file; admins may move both back.
REASON_SUFFIX = ".reason.txt"


def skip_pattern(ignore: Sequence[str], ready_suffix: str = "") -> re.Pattern[str]:
    """One regex for every name the watcher never treats as a candidate: the `ignore` patterns
    (fnmatch syntax), reason files and, with `ready_suffix`, ready markers."""
    suffixes = [REASON_SUFFIX] + ([ready_suffix] if ready_suffix else [])
    parts = [".*" + re.escape(suffix) + r"\Z" for suffix in suffixes] + [fnmatch.translate(p) for p in ignore]
    return re.compile("|".join(f"(?:{part})" for part in parts), re.DOTALL)


@dataclass
class Listing:
    """One listing of a folder: what the readiness table needs, nothing for ignored names."""

    started: float  # monotonic, read before the listing: every lstat in it came after
    found: list[tuple[Path, os.stat_result]] = field(default_factory=list)  # lstat of each kept entry
    present: set[Path] = field(default_factory=set)  # every kept name (also those lstat could not read)
    markers: set[str] = field(default_factory=set)  # names whose ready marker exists


def list_folder(folder: Path, skip: re.Pattern[str], marker_suffix: str = "") -> Listing:
    """List `folder`, lstat'ing only names `skip` does not match.

    Raises OSError when the folder itself cannot be read; an entry that vanishes or cannot be
    stat'ed meanwhile is just left out (the next listing or an event will see it).
    """
    listing = Listing(started=time.monotonic())
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if skip.match(name) is not None:
                if marker_suffix and name.endswith(marker_suffix):
                    listing.markers.add(name[: -len(marker_suffix)])
                continue
            path = folder / name
            try:
                listing.found.append((path, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
            except OSError as exc:
                logger.debug("Cannot stat %s (%s); the next listing will retry", path, exc)
            listing.present.add(path)
    return listing


def marker_base(name: str, ready_suffix: str) -> str | None:
    """For a ready marker's name, the name of the file it marks; else None."""
    if ready_suffix and name.endswith(ready_suffix) and len(name) > len(ready_suffix):
        return name[: -len(ready_suffix)]
    return None


class Probe(NamedTuple):
    """One lstat of a known path (taken outside the watcher's lock: a stat on NFS can be slow)."""

    stat: os.stat_result | None  # None: the path is gone
    failed: bool = False  # some other error (EACCES, ESTALE): try again later
    marker_exists: bool = False


def probe_path(path: Path, marker: Path | None = None) -> Probe:
    """lstat `path` and, when given, whether its ready marker exists."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return Probe(None)
    except OSError as exc:
        logger.debug("Cannot stat %s (%s); will try again", path, exc)
        return Probe(None, failed=True)
    return Probe(st, marker_exists=marker is not None and os.path.lexists(marker))


def unsupported_reason(name: str, mode: int, folder: Path) -> str | None:
    """Why an entry cannot be delivered, in words for the admin; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    name = printable(name)
    if stat.S_ISLNK(mode):
        return (
            f"'{name}' is a symbolic link. The agent never follows links, so that it only sends "
            f"files that were really dropped in {folder}. Copy the file itself into the folder instead."
        )
    if stat.S_ISDIR(mode):
        return (
            f"'{name}' is a folder. The agent does not look inside sub-folders; put the files "
            f"themselves directly into {folder}."
        )
    if stat.S_ISFIFO(mode):
        kind = "named pipe"
    elif stat.S_ISSOCK(mode):
        kind = "socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "device"
    else:
        kind = "special file"
    return f"'{name}' is a {kind}, not a regular file, so it cannot be sent. Put a regular file into {folder} instead."
