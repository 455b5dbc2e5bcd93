"""The simulated Learn's settings and state, shared by its flat-file and REST endpoints.

Why a class of its own: the endpoints (`flatfile.py`, `rest.py`) need the same data sets, faults
and credentials, and the server life cycle (`learn.py`) needs the endpoints; putting the state
underneath both keeps the imports one-way.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from agent.simulator.datasets import DataSet, DataSetInfo, KeyStore, Upload
from agent.simulator.faults import Faults
from agent.simulator.httpd import Reply
from agent.simulator.objects import STORED_KEY_COLUMN
from agent.simulator.rows import DELIMITERS, RowChecker

MAX_REPLIES = 10_000  # answers remembered for assertions (the oldest are forgotten)
FIRST_LOG_ID = 1000  # log entry ids look like Learn's: _1000_1, _1001_1, ...


class SimulatorCore:
    """Credentials, processing speed, faults, data sets and the keys Learn has stored."""

    def __init__(
        self,
        *,
        username: str,
        password: str,
        integration: str,
        rows_per_second: float,
        machine_name: str,
        data_integration_id: str,
        start_delay: float,
        rest_key: str,
        rest_secret: str,
        token_seconds: float,
        delimiter: str = "pipe",
    ) -> None:
        if rows_per_second <= 0:
            raise ValueError("rows_per_second must be greater than zero")
        if start_delay < 0 or token_seconds <= 0:
            raise ValueError("start_delay must be zero or more and token_seconds greater than zero")
        if delimiter not in DELIMITERS:
            raise ValueError(f"delimiter must be one of {', '.join(DELIMITERS)}")
        self.username = username
        self.password = password
        self.integration = integration
        self.rows_per_second = rows_per_second
        self.machine_name = machine_name
        self.data_integration_id = data_integration_id
        self.start_delay = start_delay
        self.rest_key = rest_key
        self.rest_secret = rest_secret
        self.token_seconds = token_seconds
        self.delimiter = delimiter  # the integration's "Feed File Delimiter": every upload is split by it
        self.faults = Faults()
        self.on_event: Callable[[str], None] | None = None
        self.upload_attempts = 0  # every authenticated upload request, faulted ones included
        self.status_requests = 0  # every authenticated status request
        self.rest_requests = 0  # every REST request (token and log), whatever the answer
        self.lock = threading.Lock()
        self.store = KeyStore()
        self.stopping = threading.Event()
        self._uploads: list[Upload] = []
        self._datasets: dict[str, DataSet] = {}
        self._replies: deque[Reply] = deque(maxlen=MAX_REPLIES)
        self._next_log_id = FIRST_LOG_ID

    # Shared helpers ---------------------------------------------------------------------------
    def event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def record(self, reply: Reply) -> None:
        with self.lock:
            self._replies.append(reply)

    @property
    def replies(self) -> list[Reply]:
        """Every answer written so far (and every request left unanswered), oldest first."""
        with self.lock:
            return list(self._replies)

    def take(self, counter: str) -> bool:
        """Uses up one unit of a Faults counter (e.g. "fail_uploads"); False when it is at zero."""
        with self.lock:
            left = int(getattr(self.faults, counter))
            if left <= 0:
                return False
            setattr(self.faults, counter, left - 1)
            return True

    def checker(self, slug: str) -> RowChecker:
        """A row checker for one upload, splitting by the integration's delimiter."""
        return RowChecker(slug, self.store, DELIMITERS[self.delimiter])

    def read_pause(self, size: int) -> None:
        """After reading `size` bytes of an upload: wait as a slow link would (fault read_bytes_per_second)."""
        rate = self.faults.read_bytes_per_second
        if rate > 0:
            self.stopping.wait(size / rate)

    def slow(self) -> None:
        if self.faults.slow_seconds > 0:
            self.stopping.wait(self.faults.slow_seconds)

    # Data sets --------------------------------------------------------------------------------
    def accept(
        self,
        checker: RowChecker,
        *,
        operation: str,
        sha256: str,
        size: int,
        content_type: str,
        chunked: bool,
        answered: bool = True,
    ) -> Upload:
        """Stores the upload's keys and queues its data set; returns the upload with its reference code."""
        slug = checker.slug
        if slug in STORED_KEY_COLUMN:
            self.store.apply(slug, checker.new_keys, forget=operation == "delete")
        records = checker.log
        uid = secrets.token_hex(16)
        now, wall = time.monotonic(), datetime.now().astimezone()
        with self.lock:
            first_log_id = self._next_log_id
            self._next_log_id += records.rows + 3  # start, header, one per record, end
            dataset = DataSet(
                uid=uid,
                operation=operation,
                rows=records,
                accepted=now,
                accepted_wall=wall,
                start_delay=self.start_delay,
                rows_per_second=self.rows_per_second,
                stuck=self.faults.stuck,
                first_log_id=first_log_id,
            )
            upload = Upload(
                slug=slug,
                operation=operation,
                uid=uid,
                sha256=sha256,
                size=size,
                rows=records.rows,
                content_type=content_type,
                received_at=wall,
                chunked=chunked,
                errors=records.errors,
                warnings=records.warnings,
                answered=answered,
                encoding=records.encoding,
            )
            self._uploads.append(upload)
            self._datasets[uid] = dataset
        stuck = " (fault stuck: it will stay queued)" if dataset.stuck else ""
        self.event(
            f"upload {slug}/{operation}: {size} bytes, {records.rows} rows, {records.errors} with errors, "
            f"{records.warnings} with warnings -> reference code {uid}{stuck}"
        )
        for entry in dataset.log.page("Warning", 0, 5):
            self.event(f"  {entry.level}: {entry.message}")
        return upload

    def find(self, uid: str) -> DataSet | None:
        with self.lock:
            return self._datasets.get(uid)

    def uploads_snapshot(self) -> list[Upload]:
        with self.lock:
            return list(self._uploads)

    def dataset(self, uid: str) -> DataSetInfo:
        """Raises KeyError for a reference code the simulator never issued."""
        with self.lock:
            dataset = self._datasets[uid]
        return dataset.info(time.monotonic(), with_problems=True)

    def busy(self, now: float) -> bool:
        """True while any data set of the integration is still waiting or processing."""
        with self.lock:
            datasets = list(self._datasets.values())
        return any(not d.finished(now) for d in datasets)

    def log_locked(self, now: float) -> bool:
        """Learn keeps the log locked while the integration processes (and, by fault, a while after)."""
        with self.lock:
            datasets = list(self._datasets.values())
        if any(not d.finished(now) for d in datasets):
            return True
        ends = [d.finishes_at for d in datasets if d.finishes_at is not None]
        return bool(ends) and now < max(ends) + self.faults.log_locked_seconds
