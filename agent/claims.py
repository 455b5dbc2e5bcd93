"""Taking files: a batch is planned in the journal before any file moves, then each file is claimed.

Why in two steps: "the dependency order holds across a crash" needs the restart to know the whole
batch, not just the files that happened to be moved already. So the batch and every file in it are
journaled first (state claiming, with the drop-folder path); only then is every file renamed into
processing/, the folder synced once, and each file journaled as claimed. A crash anywhere in between
leaves every file of the batch either in the drop folder or in processing/ under a name derived from
its own (`archive.claim`), and `settle_claim` finds it in either place and finishes the claim, so
recovery sends the batch whole and in order instead of sending the files that were already moved.
One sync for the batch, not one per file: what matters is that every rename is on disk before the
journal names any file's new place, and a burst of 2,000 files then pays one fsync, not 2,000.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent import archive, failpoints
from agent.clock import utcnow
from agent.journal import Journal
from agent.journal_schema import FileRecord, Owner
from agent.settings import RouteSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Found:
    """A ready file in a drop folder, and when the SIS finished writing it (for the MISSING alert)."""

    path: Path
    arrived_at: datetime | None = None


@dataclass(frozen=True)
class Taken:
    """A planned batch and the files it claimed (those that vanished meanwhile are not in it)."""

    batch_id: int
    file_ids: list[int]


def take(
    journal: Journal, processing_dir: Path, route: RouteSettings, found: Sequence[Found], owner: Owner = Owner.SERVICE
) -> Taken:
    """Plan the batch (journal it with all its files and who takes them, in one transaction), then
    claim each into processing/."""
    planned: list[tuple[int, Path]] = []
    with journal.atomically():
        batch_id = journal.start_batch(route.name, owner)
        for item in found:
            try:
                size = item.path.stat().st_size
            except FileNotFoundError:
                continue
            file_id = journal.add_file(
                route=route.name,
                target=route.target,
                name=archive.original_name(item.path.name),
                source_path=item.path,
                batch_id=batch_id,
                size=size,
                arrived_at=item.arrived_at,
                owner=owner,
            )
            planned.append((file_id, item.path))
    failpoints.hit("batch-planned")
    moved: list[tuple[int, Path]] = []
    try:
        for file_id, path in planned:
            destination = _move_in(journal, processing_dir, file_id, path, durable=False)
            if destination is not None:
                moved.append((file_id, destination))
    except OSError:  # the drop folder refuses (permissions, a full disk): the files wait there
        if not moved:
            journal.unplanned(batch_id)  # nothing moved: the attempt leaves no trace
        _journal_claims(journal, processing_dir, moved)
        raise  # some moved: the batch stays planned and recovery finishes it, in order
    _journal_claims(journal, processing_dir, moved)
    return Taken(batch_id, [file_id for file_id, _ in moved])


def settle_claim(journal: Journal, processing_dir: Path, record: FileRecord) -> Path | None:
    """Finish the claim of a file journaled as claiming (recovery); its path in processing/, or None
    if it vanished.

    The rename may already have happened (a crash right after it): then the file is in processing/
    under its own name or a numbered one, and no other journaled file is there under that name.
    """
    moved = _already_moved(journal, processing_dir, record)
    if moved is None:
        moved = _move_in(journal, processing_dir, record.id, Path(record.source_path or ""), durable=True)
    if moved is not None:
        _journal_claim(journal, record.id, moved)
    return moved


def _move_in(journal: Journal, processing_dir: Path, file_id: int, source: Path, *, durable: bool) -> Path | None:
    """Rename one planned file into processing/; None (journaled as abandoned) when it vanished."""
    try:
        moved = archive.claim(source, processing_dir, durable=durable)
    except FileNotFoundError:
        journal.abandoned(file_id, "the file vanished before it was claimed")
        journal.file_reported(file_id)  # never taken: nothing to report
        log.warning("vanished: %s was no longer in %s when it was to be claimed", source.name, source.parent)
        return None
    failpoints.hit("claim-renamed")
    return moved


def _journal_claims(journal: Journal, processing_dir: Path, moved: list[tuple[int, Path]]) -> None:
    """Sync processing/ once, then journal each moved file as claimed."""
    if moved:
        archive.make_durable(processing_dir)
    for file_id, destination in moved:
        _journal_claim(journal, file_id, destination)


def _journal_claim(journal: Journal, file_id: int, moved: Path) -> None:
    size, mtime_ns = size_and_mtime(moved)
    journal.claimed(file_id, moved, size=size, mtime_ns=mtime_ns)
    failpoints.hit("claim-journaled")
    log.info("claimed: %s -> %s", moved.name, moved)


def _already_moved(journal: Journal, processing_dir: Path, record: FileRecord) -> Path | None:
    taken: set[str] | None = None
    # The claim kept the name the file had in the drop folder (a file moved back from archive/ keeps
    # its stamp): look for that name, not the original name the journal shows.
    for candidate in archive.claim_names(Path(record.source_path or record.name).name):
        path = processing_dir / candidate
        if not path.exists():
            return None  # claims take the first free name: nothing further along is ours
        if taken is None:
            taken = {r.current_path for r in journal.in_flight() if r.id != record.id and r.current_path}
        if str(path) not in taken:
            return path
    return None


def size_and_mtime(path: Path) -> tuple[int | None, int | None]:
    """What the file looks like as it is claimed: a writer that only paused changes it later
    (`agent.writecheck` compares before and after sending)."""
    try:
        st = path.stat()
    except OSError:
        return None, None
    return st.st_size, st.st_mtime_ns


def adopt(journal: Journal, route: RouteSettings, path: Path) -> int:
    """Journal a file an admin posts by hand and keeps (`post --keep`): it is not moved."""
    file_id = journal.add_file(
        route=route.name,
        target=route.target,
        name=archive.original_name(path.name),
        source_path=path,
        size=path.stat().st_size,
        arrived_at=utcnow(),
        owner=Owner.POST_KEEP,
    )
    size, mtime_ns = size_and_mtime(path)
    journal.claimed(file_id, path, size=size, mtime_ns=mtime_ns)
    return file_id
