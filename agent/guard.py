"""The guards: know what a Learn file will do before Learn does it, and hold what looks wrong.

- A `refresh` (or `refreshlegacy`) disables every record of the integration that is missing from the
  file. A refresh with no rows, or far fewer rows than the last delivered one, is held at once (the
  quick first test). Then its record keys are compared with the last delivered file of the same feed
  (target, object, operation and, for a refreshlegacy, its data source keys): when more than
  `refresh_guard_percent` of last time's keys are missing, the file is held and the admin is told
  which records would go. Equal row counts with 15 % of the people swapped are caught here.
- A `delete` with more than `delete_guard_rows` rows is held the same way, listing what would go.
- A `store` far below its feed's usual size is sent, with a notice (`store_warn_percent`).

`--force` sends a held file anyway; a forced refresh is still compared, so the feed history keeps
what it disabled and the next refresh is compared with it.

The baseline is the last delivered file of the feed: its key set, kept in the state folder
(`keysets/feeds/`) when it was delivered, else the file itself in archive/ (parsed again), else the
feed's newest kept key set. Keys are compared in bounded memory (`agent.keysets`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from agent import archive, keysets
from agent.advice import post_command
from agent.journal import Journal
from agent.journal_schema import ACCEPTED_STATUSES, REFRESH_OPERATIONS, FileRecord
from agent.records import FileOutcome
from agent.settings import LearnTargetSettings, TargetSettings
from agent.wording_guards import (
    delete_guard_reason,
    feed_words,
    force_hint,
    refresh_disabled_reason,
    refresh_empty_reason,
    refresh_shrunk_reason,
    store_notice,
)

log = logging.getLogger(__name__)

STORE_HISTORY = 7  # deliveries the store notice takes the median of
HELD_LISTS = "held"  # under the key-set folder: the CSV of every key a held file would disable or delete


@dataclass(frozen=True)
class Verdict:
    """What the guards decided about one file: hold it (and why), or send it (maybe with a notice)."""

    held: str | None = None  # the reason, for the admin; None: send it
    keys_csv: Path | None = None  # every key a held file would disable or delete
    notice: str = ""  # sent, but unusual


SEND = Verdict()


class Guards:
    """The guards of one agent: the journal for baselines and history, the state folder for key sets."""

    def __init__(self, journal: Journal, state_dir: Path, failed_dir: Path) -> None:
        self.journal = journal
        self.state_dir = state_dir
        self.failed_dir = failed_dir

    def check(
        self,
        settings: TargetSettings,
        outcome: FileOutcome,
        path: Path,
        *,
        force: bool = False,
        keep: bool = False,
        encoding: str = "utf-8",
    ) -> Verdict:
        """The verdict for a file about to be sent from `path`; sets the outcome's notice and key CSV.

        `encoding`: the route's, for files without a byte-order mark (keys are read as Learn reads them).
        `force`: the admin sends it anyway; it is never held (a refresh is still compared). A held
        file's reason ends with the command that sends it from where it will be: failed/, or `path`
        when `keep` leaves it in place."""
        if not isinstance(settings, LearnTargetSettings) or not outcome.object or outcome.file_id is None:
            return SEND
        if outcome.operation in REFRESH_OPERATIONS:
            with keysets.utf8_text(path, encoding, self.state_dir / "pending") as text:
                verdict = self._refresh(settings, outcome, text, force, encoding)
        elif outcome.operation == "delete" and not force:
            with keysets.utf8_text(path, encoding, self.state_dir / "pending") as text:
                verdict = self._delete(settings, outcome, text)
        elif outcome.operation == "store":
            verdict = Verdict(notice=self._store_notice(settings, outcome))
        else:
            return SEND
        outcome.notice = verdict.notice
        if verdict.held is None or force:
            if verdict.keys_csv is not None:
                verdict.keys_csv.unlink(missing_ok=True)
            return Verdict(notice=verdict.notice)
        shutil.rmtree(self._pending_path(outcome.file_id), ignore_errors=True)  # never delivered: no baseline
        outcome.keys_csv = verdict.keys_csv
        held_at = path if keep else archive.failed_destination(self.failed_dir, outcome.name)
        command = post_command(
            outcome.config_path, held_at, route=outcome.route, operation=outcome.operation, force=True
        )
        return Verdict(held=verdict.held + force_hint(command), keys_csv=verdict.keys_csv)

    def delivered(self, outcome: FileOutcome) -> None:
        """A file reached its end after sending: an accepted refresh's key set becomes its feed's kept
        one (the next baseline, read without parsing the archived file); anything else drops it."""
        if outcome.file_id is None or outcome.operation not in REFRESH_OPERATIONS:
            return
        pending = self._pending_path(outcome.file_id)
        if not pending.is_dir():
            return
        if outcome.status.value not in ACCEPTED_STATUSES:
            shutil.rmtree(pending, ignore_errors=True)
            return
        record = self.journal.file(outcome.file_id)
        feed = self._feed_dir(outcome.target, outcome, record.data_source_keys or "")
        feed.mkdir(parents=True, exist_ok=True)
        pending.replace(feed / str(outcome.file_id))
        for older in feed.iterdir():
            if older.name != str(outcome.file_id):
                shutil.rmtree(older, ignore_errors=True)

    # -- refresh -----------------------------------------------------------------------------------

    def _refresh(
        self, settings: LearnTargetSettings, outcome: FileOutcome, path: Path, force: bool, encoding: str
    ) -> Verdict:
        """`path`: the file as UTF-8 (`keysets.utf8_text`)."""
        assert outcome.file_id is not None and outcome.object and outcome.operation
        layout = keysets.layout_of(path, outcome.object)
        sources = ""
        if layout is not None and outcome.operation == "refreshlegacy":
            sources = ",".join(keysets.data_source_keys(path, layout))
        baseline = self.journal.last_delivery(
            settings.name, outcome.object, outcome.operation, sources, before=outcome.file_id
        )
        self.journal.keys_compared(outcome.file_id, data_source_keys=sources or None, disabled=None, added=None)
        shrunk = _shrunk(settings, outcome, baseline, sources)
        if shrunk and not force:
            return Verdict(held=shrunk)
        if layout is None:
            return SEND
        self._drop_stale_pending()
        pending = self._pending_path(outcome.file_id)
        shutil.rmtree(pending, ignore_errors=True)  # a run cut short by a crash
        keysets.write_key_set(keysets.iter_key_blocks(path, layout), pending)
        held_csv = self.state_dir / HELD_LISTS / f"{outcome.file_id}-{outcome.name}.disabled.csv"
        held_csv.parent.mkdir(parents=True, exist_ok=True)
        with self._baseline_set(settings, outcome, baseline, sources, encoding) as old:
            if old is None:  # the first delivery of this feed: nothing to compare
                return SEND
            difference = keysets.compare(old, pending, held_csv, layout.columns)
        self.journal.keys_compared(
            outcome.file_id, data_source_keys=sources or None, disabled=difference.disabled, added=difference.added
        )
        log.info(
            "refresh guard: %s would disable %d of %d keys and add %d",
            outcome.name,
            difference.disabled,
            difference.baseline,
            difference.added,
        )
        if difference.percent_disabled() <= settings.refresh_guard_percent:
            held_csv.unlink(missing_ok=True)
            return SEND
        feed = feed_words(outcome.operation, outcome.object, sources)
        why = refresh_disabled_reason(
            difference.disabled,
            difference.baseline,
            difference.added,
            feed,
            settings.refresh_guard_percent,
            [keysets.key_text(key) for key in difference.sample],
            held_csv,
        )
        return Verdict(held=why, keys_csv=held_csv)

    @contextmanager
    def _baseline_set(
        self,
        settings: LearnTargetSettings,
        outcome: FileOutcome,
        baseline: FileRecord | None,
        sources: str,
        encoding: str,
    ) -> Iterator[Path | None]:
        """The key set of the last delivered file: the one kept when it was delivered, else built from
        archive/ (removed after use), else the feed's newest kept one (archive pruned, kept set lost)."""
        if baseline is None:
            yield None
            return
        feed = self._feed_dir(settings.name, outcome, sources)
        if keysets.is_key_set(feed / str(baseline.id)):
            yield feed / str(baseline.id)
            return
        archived = Path(baseline.current_path) if baseline.current_path else None
        if archived is not None and archived.is_file():
            with keysets.utf8_text(archived, encoding, self.state_dir / "pending") as text:
                layout = keysets.layout_of(text, outcome.object or "")
                built = self.state_dir / "pending" / f"baseline-{baseline.id}"
                try:
                    if layout is not None:
                        keysets.write_key_set(keysets.iter_key_blocks(text, layout), built)
                        yield built
                        return
                finally:
                    shutil.rmtree(built, ignore_errors=True)
        kept = sorted((d for d in feed.glob("*") if keysets.is_key_set(d)), key=lambda d: int(d.name))
        yield kept[-1] if kept else None

    def _drop_stale_pending(self) -> None:
        """Key sets of files that ended without a delivery verdict (UNCONFIRMED, FAILED after the
        upload, a file removed from the journal): a refresh's keys take about 11 bytes each."""
        folder = self.state_dir / "pending"
        for pending in folder.glob("*") if folder.is_dir() else ():
            if pending.name.isdigit():
                try:
                    still_running = self.journal.file(int(pending.name)).in_flight
                except KeyError:
                    still_running = False
                if not still_running:
                    shutil.rmtree(pending, ignore_errors=True)

    def _pending_path(self, file_id: int) -> Path:
        return self.state_dir / "pending" / str(file_id)

    def _feed_dir(self, target: str, outcome: FileOutcome, sources: str) -> Path:
        """One folder per feed (target, object, operation and data source keys for a refreshlegacy)
        holding the key set of its last delivery, named by its journal id."""
        operation = outcome.operation or ""
        feed = "\x00".join((target, outcome.object or "", operation, sources if operation == "refreshlegacy" else ""))
        digest = hashlib.sha256(feed.encode()).hexdigest()[:16]
        return self.state_dir / "feeds" / f"{target}-{outcome.object}-{operation}-{digest}"

    # -- delete ------------------------------------------------------------------------------------

    def _delete(self, settings: LearnTargetSettings, outcome: FileOutcome, path: Path) -> Verdict:
        rows = outcome.rows or 0
        if rows <= settings.delete_guard_rows:
            return SEND
        layout = keysets.layout_of(path, outcome.object or "")
        sample: list[bytes] = []
        csv_path = None
        if layout is not None:
            csv_path = self.state_dir / HELD_LISTS / f"{outcome.file_id}-{outcome.name}.deleted.csv"
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            _, sample = keysets.keys_csv(path, layout, csv_path)
        why = delete_guard_reason(
            rows, outcome.object or "", settings.delete_guard_rows, [keysets.key_text(key) for key in sample], csv_path
        )
        return Verdict(held=why, keys_csv=csv_path)

    # -- store -------------------------------------------------------------------------------------

    def _store_notice(self, settings: LearnTargetSettings, outcome: FileOutcome) -> str:
        """'3,120 rows; usually about 24,000' when a store is far below its feed's median size."""
        if outcome.file_id is None:
            return ""
        sizes = self.journal.delivered_rows(
            target=settings.name,
            slug=outcome.object or "",
            operation="store",
            before=outcome.file_id,
            limit=STORE_HISTORY,
        )
        if len(sizes) < 2:
            return ""
        usual = statistics.median(sizes)
        rows = outcome.rows or 0
        if rows >= usual * settings.store_warn_percent / 100:
            return ""
        return store_notice(rows, usual, len(sizes))


def _shrunk(settings: LearnTargetSettings, outcome: FileOutcome, baseline: FileRecord | None, sources: str) -> str:
    """The quick first test: no rows, or far fewer rows than the last delivery of the same feed."""
    rows = outcome.rows or 0
    operation = outcome.operation or "refresh"
    if rows == 0:
        return refresh_empty_reason(operation)
    previous = baseline.rows if baseline is not None else None
    if previous is None or rows >= previous * (100 - settings.refresh_guard_percent) / 100:
        return ""
    feed = feed_words(operation, outcome.object or "", sources)
    return refresh_shrunk_reason(rows, previous, feed, settings.refresh_guard_percent, operation)


def prune_held_lists(keysets_dir: Path, retention_days: float, now: datetime) -> list[Path]:
    """Delete the held files' key lists older than `retention_days` (0 keeps them); returns what went.

    Why: each HELD refresh or delete leaves its CSV (attached to its email, named in its reason), and
    a feed held night after night would fill the state folder; they age out with the archive.
    """
    folder = keysets_dir / HELD_LISTS
    if retention_days <= 0 or not folder.is_dir():
        return []
    cutoff = (now - timedelta(days=retention_days)).timestamp()
    removed: list[Path] = []
    for entry in sorted(folder.glob("*.csv")):
        try:
            if entry.is_file() and not entry.is_symlink() and entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed.append(entry)
        except OSError as exc:
            log.warning("held key lists: could not delete %s (%s); check its permissions", entry, exc)
    return removed
