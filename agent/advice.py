"""Commands the reports suggest: one complete line that does what the text says, as printed.

Why a module: an admin copies a command out of a 7 am email into a shell on the server. It must
name the `feed-agent` of this installation by its absolute path (a service install is not on PATH),
pass `-c` with the configuration in use, and name the route and operation where they matter (a
held weekly `refresh` re-sent through the first route would go out as a `store`). Every argument is
quoted for the shell, so paths with spaces survive the copy.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path


def feed_agent_executable() -> list[str]:
    """The command that runs this installation's feed-agent (the venv's script beside the interpreter)."""
    script = Path(sys.executable).with_name("feed-agent")  # not resolved: the venv's bin/, not the system's
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "agent"]


def command_start() -> str:
    """How every suggested command begins in a report (the quoted executable): the text emails wrap
    prose but keep a command whole, from here to the end of its line."""
    return shlex.quote(feed_agent_executable()[0])


def command_line(config_path: Path | None, *args: str | Path) -> str:
    """`/opt/feed-agent/venv/bin/feed-agent -c /etc/feed-agent/agent.ini ARGS…`, quoted, on one line."""
    words = [*feed_agent_executable()]
    if config_path is not None:
        words += ["-c", str(Path(config_path).absolute())]
    words += [str(a) for a in args]
    return " ".join(shlex.quote(word) for word in words)


def post_command(
    config_path: Path | None,
    path: Path,
    *,
    route: str,
    operation: str | None,
    force: bool = False,
    keep: bool = False,
) -> str:
    """The command that sends one file by hand through its route, with its operation."""
    args: list[str | Path] = ["post", path, "--route", route]
    if operation:
        args += ["--operation", operation]
    if force:
        args.append("--force")
    if keep:
        args.append("--keep")
    return command_line(config_path, *args)


def resume_post_command(config_path: Path | None, path: Path, *, route: str, keep: bool) -> str:
    """The command that takes over an interrupted manual post of `path` (where the file is now): it
    follows a file that was sent (never sending it again) and sends one that was not."""
    return command_line(config_path, "post", path, "--route", route, *(["--keep"] if keep else []))


def errors_command(config_path: Path | None, reference: str) -> str:
    """The command that prints (and if need be fetches) a delivered file's record log."""
    return command_line(config_path, "errors", reference)
