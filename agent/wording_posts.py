"""The words of a manual post (`agent.posting`, `status`): where a stopped or interrupted post left its
file, and the one command that goes on from there.

A part of `agent.wording` (the words admins read), apart only to keep each module small.
"""

from __future__ import annotations

from pathlib import Path

from agent.journal_schema import FileRecord, FileState
from agent.profiles import profile_for


def post_state(record: FileRecord, destination: str) -> str:
    """Where an unfinished post left its file, as a clause: "was not sent", "was sent …"."""
    if record.state in (FileState.CLAIMING, FileState.CLAIMED, FileState.SUBMITTING):
        return f"was not sent (nothing reached {destination})"
    if record.state is FileState.SENT:
        return (
            f"went to {destination} whole, but the answer had not come: {destination} may have it, so it is "
            "never sent again automatically"
        )
    if record.state is FileState.SUBMITTED:
        return f"was sent and {destination} is processing it (reference {record.reference})"
    if record.state is FileState.FINISHED:
        return f"was sent (reference {record.reference}) and ended {record.status}; it was not yet archived"
    return f"ended {record.status or record.state.value}"


def _going_on(record: FileRecord, destination: str) -> str:
    if record.state is FileState.SENT:
        return "To record it as UNCONFIRMED and get its report (it is not sent again), run:"
    if record.state in (FileState.SUBMITTED, FileState.FINISHED):
        return (
            f"{destination} goes on processing it. To follow it to the end and get its report "
            "(it is not sent again), run:"
        )
    return "To send it, run:"


def post_stopped(record: FileRecord, where: Path, command: str, target_type: str) -> str:
    """What `post` says when Ctrl-C or SIGTERM stopped it: the state, where the file is, what to run."""
    destination = profile_for(target_type).destination
    return (
        f"interrupted: {record.name} {post_state(record, destination)}. The file is at {where}. "
        f"{_going_on(record, destination)} {command}"
    )


def post_withdrawn_reason(where: Path) -> str:
    return f"the post was stopped before the file was sent; nothing reached the destination; the file is at {where}"


def post_owner_running(record: FileRecord) -> str:
    """A second `post` of a file whose post is still running is refused (it would be sent twice)."""
    return (
        f"{record.name} is still being posted by feed-agent process {record.owner_pid} (state "
        f"{record.state.value}); nothing was done. Wait for it to finish, or stop it with Ctrl-C in its "
        f"terminal (or: kill -INT {record.owner_pid}), then run this again"
    )


def resuming_post(record: FileRecord, path: Path) -> str:
    what = {
        FileState.SENT: "its whole body went out and no answer came: it is not sent again",
        FileState.SUBMITTED: f"it was sent (reference {record.reference}): following it, not sending it again",
        FileState.FINISHED: f"it was sent (reference {record.reference}) and ended: finishing it",
    }.get(record.state, "it was not sent: sending it now")
    return f"resuming the interrupted post of {record.name} ({path}): {what}"


def new_file_not_sent(path: Path) -> str:
    """A resumed post takes up its old file; a new export at the same path waits for its own post."""
    return f"note: {path} itself (a newer file there) is not sent by this command; post it once this one has ended"


def interrupted_post(record: FileRecord, target_type: str, command: str) -> str:
    """One `status` line for a manual post whose process is gone: its state and the command that resumes it."""
    destination = profile_for(target_type).destination
    return (
        f"{record.name} (id {record.id}): its post (pid {record.owner_pid}) ended early; the file "
        f"{post_state(record, destination)}. The service leaves it alone. {_going_on(record, destination)} {command}"
    )
