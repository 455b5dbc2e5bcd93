"""Configurations for end-to-end tests: a real INI + .env on disk, pointing at loopback servers."""

from __future__ import annotations

from pathlib import Path

from agent.config import load_config
from agent.settings import Config


def write_config(
    root: Path,
    learn_url: str,
    *,
    username: str = "sis-integration",
    password: str = "sis-password",
    settle: float = 0.2,
    window: float = 0.3,
    operation: str = "store",
    on_failure: str = "hold",
    timeout_minutes: float = 0.5,
    agent_extra: str = "",
    route_extra: str = "",
    target_extra: str = "",
    email: str = "transport = file\nto = admins@example.edu\n",
) -> Path:
    """Writes root/conf/agent.ini and root/.env; the drop folder is root/drop, work_dir root/var."""
    conf = root / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (root / "drop").mkdir(exist_ok=True)
    (root / ".env").write_text(f"LEARN_USERNAME={username}\nLEARN_PASSWORD={password}\n", encoding="utf-8")
    ini = conf / "agent.ini"
    ini.write_text(
        f"""[agent]
work_dir = ../var
env_file = ../.env
settle_seconds = {settle}
batch_window_seconds = {window}
rescan_seconds = 1
observer = native
{agent_extra}
[route:sis]
watch = ../drop
target = learn
operation = {operation}
on_failure = {on_failure}
{route_extra}
[target:learn]
type = learn
url = {learn_url}
integration = BBLEARN
username = ${{LEARN_USERNAME}}
password = ${{LEARN_PASSWORD}}
poll_initial_seconds = 0.05
poll_max_seconds = 0.2
timeout_minutes = {timeout_minutes}
{target_extra}
[email]
{email}
""",
        encoding="utf-8",
    )
    return ini


def load(root: Path, learn_url: str, **kwargs: object) -> Config:
    return load_config(write_config(root, learn_url, **kwargs), environ={})  # type: ignore[arg-type]
