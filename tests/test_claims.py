"""Taking files: the batch is journaled whole before any file moves; an interrupted claim is finished."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import archive
from agent.claims import Found, settle_claim, take
from agent.journal import Journal
from agent.journal_schema import FileState
from agent.settings import Config
from tests.support.agentconf import load
from tests.support.faults import ReadOnlyFolder


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Config, Journal]]:
    config = load(tmp_path, "http://127.0.0.1:9")
    with Journal(config.agent.journal_path) as journal:
        yield config, journal


def _drop(config: Config, *names: str) -> list[Path]:
    paths = [config.route().watch / name for name in names]
    for path in paths:
        path.write_text("external_person_key|user_id\np1|u1\n", encoding="utf-8")
    return paths


def test_take_journals_one_batch_and_claims_every_file(setup: tuple[Config, Journal]) -> None:
    config, journal = setup
    paths = _drop(config, "users.txt", "courses.txt")
    taken = take(journal, config.agent.processing_dir, config.route(), [Found(p) for p in paths])
    records = journal.batch_files(taken.batch_id)
    assert [r.id for r in records] == taken.file_ids
    assert all(r.state is FileState.CLAIMED for r in records)
    assert sorted(p.name for p in config.agent.processing_dir.iterdir()) == ["courses.txt", "users.txt"]
    assert not any(p.exists() for p in paths)


def test_a_file_that_vanished_is_left_out_and_needs_no_report(setup: tuple[Config, Journal]) -> None:
    config, journal = setup
    (users,) = _drop(config, "users.txt")
    gone = config.route().watch / "gone.txt"
    taken = take(journal, config.agent.processing_dir, config.route(), [Found(users), Found(gone)])
    assert len(taken.file_ids) == 1  # gone.txt was never there: not even journaled
    record = journal.add_file(route="sis", target="learn", name="late.txt", source_path=gone, batch_id=taken.batch_id)
    assert settle_claim(journal, config.agent.processing_dir, journal.file(record)) is None
    assert journal.file(record).state is FileState.FAILED and journal.file(record).reported_at is not None


def test_a_claim_renamed_but_not_journaled_is_found_in_processing(setup: tuple[Config, Journal]) -> None:
    config, journal = setup
    processing = config.agent.processing_dir
    processing.mkdir(parents=True, exist_ok=True)
    # Another in-flight file already holds processing/users.txt; ours went to users-2.txt.
    (theirs_path,) = _drop(config, "users.txt")
    theirs = take(journal, processing, config.route(), [Found(theirs_path)]).file_ids[0]
    (ours_path,) = _drop(config, "users.txt")
    batch = journal.start_batch("sis")
    ours = journal.add_file(route="sis", target="learn", name="users.txt", source_path=ours_path, batch_id=batch)
    os.rename(ours_path, processing / "users-2.txt")  # the crash came right after this rename

    found = settle_claim(journal, processing, journal.file(ours))

    assert found == processing / "users-2.txt"
    assert journal.file(ours).state is FileState.CLAIMED and journal.file(ours).current_path == str(found)
    assert journal.file(theirs).current_path == str(processing / "users.txt")


def test_a_drop_folder_that_refuses_every_claim_leaves_no_row_behind(
    setup: tuple[Config, Journal], refuse_writes: Callable[[Path], ReadOnlyFolder]
) -> None:
    config, journal = setup
    paths = _drop(config, "users.txt", "courses.txt")
    refuse_writes(config.route().watch)
    for _attempt in range(3):  # every retry of a folder that stays unwritable
        with pytest.raises(OSError):
            take(journal, config.agent.processing_dir, config.route(), [Found(path) for path in paths])
    assert journal.recent_files() == [] and journal.recent_batches() == []
    assert all(path.exists() for path in paths) and not any(config.agent.processing_dir.iterdir())


def test_a_reprocessed_files_claim_renamed_but_not_journaled_is_found_under_its_stamped_name(
    setup: tuple[Config, Journal],
) -> None:
    """An admin moved an archived file back (it keeps its stamp); the crash came after its rename."""
    config, journal = setup
    processing = config.agent.processing_dir
    processing.mkdir(parents=True, exist_ok=True)
    (source,) = _drop(config, "users.20261205T101500Z.txt")
    batch = journal.start_batch("sis")
    ours = journal.add_file(route="sis", target="learn", name="users.txt", source_path=source, batch_id=batch)
    os.rename(source, processing / source.name)  # what the claim does: it keeps the drop folder's name

    found = settle_claim(journal, processing, journal.file(ours))

    assert found == processing / source.name
    assert journal.file(ours).state is FileState.CLAIMED and journal.file(ours).current_path == str(found)


def test_every_file_is_renamed_and_synced_before_any_claim_is_journaled(
    setup: tuple[Config, Journal], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One sync of processing/ for the whole batch, between the renames and the journal's claims."""
    config, journal = setup
    paths = _drop(config, "users.txt", "courses.txt", "enrol.txt")
    syncs: list[tuple[list[str], list[FileState]]] = []
    real_sync = archive.make_durable

    def observed_sync(folder: Path) -> None:
        states = [record.state for record in journal.recent_files()]
        syncs.append((sorted(p.name for p in folder.iterdir()), states))
        real_sync(folder)

    monkeypatch.setattr(archive, "make_durable", observed_sync)
    taken = take(journal, config.agent.processing_dir, config.route(), [Found(p) for p in paths])

    assert syncs == [(["courses.txt", "enrol.txt", "users.txt"], [FileState.CLAIMING] * 3)]
    assert [journal.file(file_id).state for file_id in taken.file_ids] == [FileState.CLAIMED] * 3
