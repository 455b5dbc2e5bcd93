"""The one agent.ini the end-to-end benches run `feed-agent watch` with (Learn simulator, native observer).

Why one place: each bench varies only the settle time, the batch window, the observer or the email
transport; writing the whole INI in every bench let them drift apart.
"""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_learn_config(
    root: Path,
    url: str,
    *,
    settle: float = 0.2,
    window: float = 0.0,
    observer: str = "native",
    email: str = "file",
) -> Path:
    """`root/agent.ini`, `root/.env` and `root/drop/` for one route to the simulator at `url`."""
    (root / ".env").write_text("LEARN_PASSWORD=sis-password\n", encoding="utf-8")
    (root / "drop").mkdir(exist_ok=True)
    ini = root / "agent.ini"
    ini.write_text(
        textwrap.dedent(
            f"""
            [agent]
            work_dir = var
            env_file = .env
            settle_seconds = {settle}
            batch_window_seconds = {window}
            observer = {observer}
            [route:sis]
            watch = drop
            target = learn
            [target:learn]
            type = learn
            url = {url}
            integration = BBLEARN
            username = sis-integration
            password = ${{LEARN_PASSWORD}}
            poll_initial_seconds = 0.01
            poll_max_seconds = 1
            [email]
            transport = {email}
            to = admins@example.edu
            """
        ),
        encoding="utf-8",
    )
    return ini
