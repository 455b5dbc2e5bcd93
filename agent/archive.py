"""Moving files between the agent's folders: claim, archive, fail, and archive retention.

Every move is a rename that never overwrites: an admin's file is worth more than our naming
scheme, so a name that is taken gets `-2`, `-3`... instead. On Linux the rename uses
``renameat2(RENAME_NOREPLACE)``, which is atomic *and* refuses to replace; where that is not
available (other systems, some network filesystems) it falls back to check-then-``rename``, whose
race only matters between two agents sharing one work folder (unsupported anyway). A plain rename
keeps the claim crash-safe: the file is in the drop folder or in processing/, never in both, so a
restart cannot send it twice. Only across filesystems (EXDEV) is the file copied, fsynced and
renamed into place before the source is removed.

Archived names carry the processing time: ``users.txt`` → ``users.20261122T101500Z.txt``. When an
admin moves an archived file back to reprocess it, the old stamp is replaced, not stacked.

Retention (``prune_archive``) is the only place the agent ever deletes a file.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from agent.hashing import sha256_of
from agent.printable import printable
from agent.settings import AgentSettings

log = logging.getLogger(__name__)

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# ".YYYYmmddTHHMMSSZ", optionally "-N" (a collision counter), then a suffix or the end of the name.
STAMP_RE = re.compile(r"\.(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<counter>\d+))?(?=\.|$)")
MAX_SUFFIX_LENGTH = 5  # "txt", "csv", "gz", "jsonl": longer dotted parts belong to the stem
MAX_SUFFIXES = 3  # "feed.csv.gz.gpg"
MAX_COLLISIONS = 10_000
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NOREPLACE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EPERM}

RenameFunction = Callable[[int, bytes, int, bytes, int], int]


def _load_renameat2() -> RenameFunction | None:
    """libc's renameat2, or None where the C library lacks it (then we check before renaming)."""
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    renameat2: RenameFunction = function
    return renameat2


_RENAMEAT2 = _load_renameat2()


# -- names ----------------------------------------------------------------------------------------


def original_name(name: str) -> str:
    """The name without any stamp the agent added: "users.20261122T101500Z-2.txt" -> "users.txt"."""
    stripped = STAMP_RE.sub("", name)
    return stripped or name


def split_name(name: str) -> tuple[str, str]:
    """(stem, suffixes): "feed.csv.gz" -> ("feed", ".csv.gz"); "README" -> ("README", "").

    Suffixes are the last (up to three) short alphanumeric parts with a letter, so "v1.5.txt"
    keeps "v1.5" in the stem and "users.2024.spring.txt" gets its stamp just before ".txt". Leading dots (a
    dotfile) stay in the stem; an odd name simply has no suffixes.
    """
    leading = len(name) - len(name.lstrip("."))
    parts = name[leading:].split(".")
    suffix_count = 0
    for part in reversed(parts[1:]):
        if suffix_count == MAX_SUFFIXES or not _looks_like_suffix(part):
            break
        suffix_count += 1
    stem_parts = parts[: len(parts) - suffix_count]
    stem = name[:leading] + ".".join(stem_parts)
    suffixes = "".join(f".{part}" for part in parts[len(parts) - suffix_count :])
    return stem, suffixes


def _looks_like_suffix(part: str) -> bool:
    return 0 < len(part) <= MAX_SUFFIX_LENGTH and part.isalnum() and any(c.isalpha() for c in part)


def _utc(when: datetime) -> datetime:
    """A naive time could be local or UTC; guessing would misdate the archive, so refuse it."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("archive times must be timezone-aware; got a naive datetime")
    return when.astimezone(timezone.utc)


def stamp(when: datetime) -> str:
    """The archive stamp for `when`, in UTC: "20261122T101500Z"."""
    return _utc(when).strftime(STAMP_FORMAT)


def stamp_time(name: str) -> datetime | None:
    """When the agent archived a file, read from its name; None when the name carries no stamp."""
    match = STAMP_RE.search(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group("stamp"), STAMP_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:  # looks like a stamp but is not a date (month 13): not ours
        return None


def _numbered(name: str) -> Iterator[str]:
    """ "users.txt", "users-2.txt", "users-3.txt"... (claim and fail collisions)."""
    stem, suffixes = split_name(name)
    yield name
    for counter in range(2, MAX_COLLISIONS + 1):
        yield f"{stem}-{counter}{suffixes}"


def claim_names(name: str) -> Iterator[str]:
    """The names a claim (or a move to failed/) tries, in order: where a restart looks for a file
    whose move happened but was not journaled."""
    return _numbered(name)


def archive_names(name: str, when: datetime) -> Iterator[str]:
    """The names `archive` tries for a file archived at `when`, in order (see `claim_names`)."""
    return _stamped(name, when)


def find_moved(folder: Path, names: Iterator[str], *, size: int | None, sha256: str | None) -> Path | None:
    """The newest of `names` in `folder` holding the same bytes (size, then checksum when known).

    Moves take the first free name, so the search stops at the first name not taken; of the taken
    ones the last match is the latest move (an older file with the same name may sit before it)."""
    found = None
    for candidate in names:
        path = folder / candidate
        if not path.is_file():
            break
        if size is not None and path.stat().st_size != size:
            continue
        if sha256 is not None and sha256_of(path) != sha256:
            continue
        found = path
    return found


def _stamped(name: str, when: datetime) -> Iterator[str]:
    """ "users.<stamp>.txt", "users.<stamp>-2.txt"... (archive collisions)."""
    stem, suffixes = split_name(original_name(name))
    label = stamp(when)
    yield f"{stem}.{label}{suffixes}"
    for counter in range(2, MAX_COLLISIONS + 1):
        yield f"{stem}.{label}-{counter}{suffixes}"


# -- moves ----------------------------------------------------------------------------------------


def _rename_noreplace(source: Path, destination: Path) -> None:
    """Atomic rename that raises FileExistsError instead of replacing `destination`."""
    if _RENAMEAT2 is not None:
        result = _RENAMEAT2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(destination), _RENAME_NOREPLACE)
        if result == 0:
            return
        code = ctypes.get_errno()
        if code not in _NOREPLACE_UNSUPPORTED:
            raise OSError(code, os.strerror(code), str(source), None, str(destination))
    if os.path.lexists(destination):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(destination))
    os.rename(source, destination)


def make_durable(folder: Path) -> None:
    """The renames into `folder` so far reach the disk (best effort: some filesystems refuse to open
    folders). A move calls it before its caller journals the move; a batch of claims calls it once for
    all of them, so after a power loss the journal never names a file where its rename was lost."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _copy_across(source: Path, destination: Path) -> None:
    """EXDEV: copy to a temporary name beside `destination`, fsync, rename into place, drop source.

    A crash before the final rename leaves only a hidden temp file; after it, at worst the source
    still exists too (a copy cannot be atomic across filesystems).
    """
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.part")
    try:
        with open(source, "rb") as reader, open(temporary, "xb") as writer:
            shutil.copyfileobj(reader, writer, 1024 * 1024)
            writer.flush()
            os.fsync(writer.fileno())
        shutil.copystat(source, temporary)
        _rename_noreplace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    make_durable(destination.parent)
    try:
        source.unlink()
    except OSError:  # the source folder refuses (read-only): one copy only, the original stays
        destination.unlink(missing_ok=True)
        raise


def _move(source: Path, destination: Path, *, durable: bool = True) -> None:
    """Move without ever overwriting; FileExistsError when `destination` is taken. `durable` False:
    the caller syncs the folder itself (`make_durable`) before it journals the move."""
    try:
        _rename_noreplace(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(source, destination)
        return
    if durable:
        make_durable(destination.parent)


def _move_to_first_free(source: Path, folder: Path, candidates: Iterator[str], *, durable: bool = True) -> Path:
    if not source.exists() and not source.is_symlink():
        raise FileNotFoundError(errno.ENOENT, "the file is no longer there", str(source))
    folder.mkdir(parents=True, exist_ok=True)
    for candidate in candidates:
        destination = folder / candidate
        try:
            _move(source, destination, durable=durable)
        except FileExistsError:
            continue
        return destination
    raise FileExistsError(errno.EEXIST, f"no free name left for {source.name}", str(folder))


def claim(source: Path, processing_dir: Path, *, durable: bool = True) -> Path:
    """Take a file out of the drop folder into processing/ (atomic rename); returns its new path.

    Raises FileNotFoundError when the file vanished (the SIS or an admin removed it). `durable`
    False: a batch's claims are synced together (`make_durable`), one fsync instead of one per file.
    """
    destination = _move_to_first_free(source, processing_dir, _numbered(source.name), durable=durable)
    log.debug("claimed %s -> %s", source, destination)
    return destination


def put_back(path: Path, destination: Path) -> Path:
    """Return a file to where it came from (a manual post stopped before sending it); never overwrites:
    FileExistsError when something else is there now, and the file stays where it is."""
    _move(path, destination)
    log.debug("put back %s -> %s", path, destination)
    return destination


def record_log_path(archived: Path | None, archive_dir: Path, *, name: str, when: datetime) -> Path:
    """Where Learn's record log of a file is saved: beside its archived copy, "<stem>.<STAMP>.log.csv"
    (in archive/ even when the file itself stayed in place, so the drop folder never gets a new file)."""
    if archived is not None and archived.parent == archive_dir:
        stem, _suffixes = split_name(archived.name)
        return archive_dir / f"{stem}.log.csv"
    stem, _suffixes = split_name(name)
    return archive_dir / f"{stem}.{stamp(when)}.log.csv"


def archive(path: Path, archive_dir: Path, *, name: str, when: datetime) -> Path:
    """Move a processed file to archive/ as "<stem>.<YYYYmmddTHHMMSSZ><suffixes>" (UTC)."""
    destination = _move_to_first_free(path, archive_dir, _stamped(name, when))
    log.debug("archived %s -> %s", path, destination)
    return destination


def fail(path: Path, failed_dir: Path, *, name: str, reason: str, when: datetime, advice: str | None = None) -> Path:
    """Move a file to failed/ and write "<final name>.reason.txt" beside it telling what to do
    (`advice`, when moving it back is not simply right, e.g. a file Learn may already have)."""
    _utc(when)  # refuse a naive time before anything moves
    destination = _move_to_first_free(path, failed_dir, _numbered(name))
    _write_reason(destination, reason, when, advice)
    log.debug("failed %s -> %s", path, destination)
    return destination


def failed_destination(failed_dir: Path, name: str) -> Path:
    """Where `fail` would put a file named `name` now (its first free name): for the command a held
    file's reason gives before the file is moved."""
    free = (failed_dir / candidate for candidate in _numbered(name) if not (failed_dir / candidate).exists())
    return next(free, failed_dir / name)


def ensure_reason(failed_file: Path, reason: str, when: datetime, advice: str | None = None) -> None:
    """Write the reason file of a file found in failed/ without one (a crash between the two writes)."""
    if not reason_path(failed_file).exists():
        _write_reason(failed_file, reason, when, advice)


def reason_path(failed_file: Path) -> Path:
    return failed_file.with_name(f"{failed_file.name}.reason.txt")


def _write_reason(failed_file: Path, reason: str, when: datetime, advice: str | None = None) -> None:
    """Replace any stale reason file of an earlier failure with the same name (written whole)."""
    name = printable(failed_file.name)  # a newline in the name must not forge a line of the file
    advice = advice or f"Fix the problem, then move {name} back into the drop folder to process it again."
    text = (
        f"Time: {_utc(when):%Y-%m-%d %H:%M:%S} UTC\nFile: {name}\nReason: {printable(reason)}\n\n{printable(advice)}\n"
    )
    target = reason_path(failed_file)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# -- retention ------------------------------------------------------------------------------------


def prune_archive(archive_dir: Path, retention_days: float, now: datetime) -> list[Path]:
    """Delete archived files older than `retention_days` (0 keeps forever); returns what went.

    Age comes from the stamp in the name (when the agent archived the file), not the mtime, which a
    rename keeps from the SIS export. Only regular files directly in archive_dir that carry an
    agent stamp are candidates: anything else there was put by someone else and is left alone.
    """
    if retention_days <= 0 or not archive_dir.is_dir():
        return []
    cutoff = now - timedelta(days=retention_days)
    removed: list[Path] = []
    for entry in sorted(archive_dir.iterdir()):
        archived_at = stamp_time(entry.name)
        if archived_at is None or archived_at >= cutoff:
            continue
        if entry.is_symlink() or not entry.is_file():
            continue
        try:
            entry.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("archive retention: could not delete %s (%s); check its permissions", entry, exc)
            continue
        removed.append(entry)
    if removed:
        log.info("archive retention: deleted %d file(s) older than %g days", len(removed), retention_days)
    return removed


def prepare_folders(settings: AgentSettings) -> None:
    """Create the work folders (processing/, archive/, failed/, outbox/) if they are missing."""
    for folder in (settings.processing_dir, settings.archive_dir, settings.failed_dir, settings.outbox_dir):
        folder.mkdir(parents=True, exist_ok=True)
