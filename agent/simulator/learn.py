"""LearnSimulator: the simulated Learn on a background thread (`with LearnSimulator() as sim:`)."""

from __future__ import annotations

import ssl
import threading
import time

from agent.simulator.core import SimulatorCore
from agent.simulator.datasets import Upload
from agent.simulator.flatfile import FlatFileEndpoints
from agent.simulator.httpd import Handler, Server
from agent.simulator.logentries import LogEntry
from agent.simulator.rest import LOG_PREFIX, REST_PREFIX, TOKEN_PATH, RestEndpoints


class LearnSimulator(SimulatorCore):
    """A Learn server with the SIS flat-file endpoints and the REST token + SIS log endpoints."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "sis-integration",
        password: str = "sis-password",
        integration: str = "BBLEARN",
        rows_per_second: float = 500.0,
        machine_name: str = "learn-sim-1",
        *,
        tls: ssl.SSLContext | None = None,
        data_integration_id: str = "_123_1",
        start_delay: float = 0.2,
        rest_key: str = "rest-key",
        rest_secret: str = "rest-secret",
        token_seconds: float = 3599.0,
        delimiter: str = "pipe",
    ) -> None:
        super().__init__(
            username=username,
            password=password,
            integration=integration,
            rows_per_second=rows_per_second,
            machine_name=machine_name,
            data_integration_id=data_integration_id,
            start_delay=start_delay,
            rest_key=rest_key,
            rest_secret=rest_secret,
            token_seconds=token_seconds,
            delimiter=delimiter,
        )
        self.host = host
        self.flatfile = FlatFileEndpoints(self)
        self.rest = RestEndpoints(self)
        self._server = Server((host, port), self, tls=tls)
        self.port: int = int(self._server.server_address[1])
        scheme = "https" if tls else "http"
        shown_host = "localhost" if tls and host == "127.0.0.1" else host
        self.url = f"{scheme}://{shown_host}:{self.port}"
        self._thread: threading.Thread | None = None

    # Life cycle ---------------------------------------------------------------------------------
    def start(self) -> LearnSimulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"learn-sim-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> LearnSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def dispatch(self, handler: Handler, method: str) -> None:
        if handler.url_path.startswith("/learn/api/"):
            self.rest.dispatch(handler, method)
        else:
            self.flatfile.dispatch(handler, method)

    # Addresses ----------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"{self.url}/webapps/bb-data-integration-flatfile-{self.integration}/endpoint"

    def upload_url(self, slug: str, operation: str = "store") -> str:
        return f"{self.endpoint}/{slug}/{operation}"

    def status_url(self, uid: str) -> str:
        return f"{self.endpoint}/dataSetStatus/{uid}"

    @property
    def rest_base(self) -> str:
        return f"{self.url}{REST_PREFIX}"

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    def log_url(self, uid: str) -> str:
        return f"{self.url}{LOG_PREFIX}{uid}"

    # For tests and the console ------------------------------------------------------------------
    @property
    def uploads(self) -> list[Upload]:
        return self.uploads_snapshot()

    def wait_idle(self, timeout: float = 30) -> bool:
        """True once every data set has finished (a stuck one never does)."""
        deadline = time.monotonic() + timeout
        while self.busy(time.monotonic()):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def expire_tokens(self) -> None:
        """Every REST token issued so far stops working now (as if its hour were up)."""
        self.rest.tokens.expire_all()

    def log_entries(self, uid: str, level: str = "Debug") -> list[LogEntry]:
        """Every log entry of a data set at `level` or above (for tests; the REST call pages them)."""
        dataset = self.find(uid)
        if dataset is None:
            raise KeyError(uid)
        return dataset.log.page(level, 0, dataset.log.count(level))

    def log_storage_bytes(self, uid: str) -> int:
        """What the data set's records and log cost in memory (codes, indices and facts)."""
        dataset = self.find(uid)
        if dataset is None:
            raise KeyError(uid)
        return dataset.records.storage_bytes()
