"""The words of a failure episode (a step that keeps failing: a folder that cannot be written, a full
disk): its title, what happens meanwhile, what the admin can do, and its subject.

They sit beside `agent.wording` (the words of every other report), which had no room left.
"""

from __future__ import annotations

import errno
import os
import pwd
from datetime import datetime
from pathlib import Path

from agent.records import TroubleNotice
from agent.wording import SUBJECT_PREFIX, format_duration, format_time


def _trouble_parts(key: str) -> tuple[str, str]:
    """(title, what happens meanwhile) for an episode key: recovery, route:NAME, drop:PATH, archive, failed,
    loop, housekeeping."""
    kind, _, name = key.partition(":")
    later = "The agent tries again by itself; nothing is lost or sent twice."
    parts = {
        "recovery": (
            "Interrupted work cannot be finished",
            f"After a restart or a failed step the agent finishes the files left in processing/ before it takes "
            f"new ones; that fails, so new files wait in their drop folder. {later}",
        ),
        "route": (
            f"Files on route {name} cannot be finished",
            f"A batch on route {name} left files in processing/; they are tried again, in order, before any new "
            f"file of that route. Other routes go on. {later}",
        ),
        "loop": ("The agent's main loop fails", f"New files wait in their drop folders. {later}"),
        "housekeeping": (
            "Routine checks fail",
            "Sending reports that wait, MISSING alerts, job deadlines or archive retention failed; files are "
            "still processed. The agent tries again by itself.",
        ),
        "drop": (
            f"Files cannot be taken from {name}",
            f"The agent sees files in {name} but cannot move them into processing/, so none is sent. {later}",
        ),
        "archive": (
            "Delivered files cannot be moved to archive/",
            "The files were delivered and reported, but archive/ does not take them, so they wait in "
            "processing/. They are not sent again; the agent moves them by itself.",
        ),
        "failed": (
            "Files that were not sent cannot be moved to failed/",
            "The files were reported, but failed/ does not take them, so they wait in processing/; the agent "
            "moves them (with their reason file) by itself.",
        ),
    }
    return parts.get(kind, (f"A step keeps failing ({key})", later))


def trouble_title(key: str) -> str:
    return _trouble_parts(key)[0]


def trouble_meaning(notice: TroubleNotice) -> str:
    if notice.cleared_at is not None:
        return f"It works again after {notice.attempts} failed attempt(s) since {format_time(notice.since)}."
    return _trouble_parts(notice.key)[1]


def trouble_subject(notice: TroubleNotice) -> str:
    label = "RESOLVED" if notice.cleared_at is not None else "PROBLEM"
    return f"{SUBJECT_PREFIX} {label}: {trouble_title(notice.key)}"


def trouble_advice(exc: BaseException, folder: Path | None) -> str:
    """What an admin can do about the error that opened an episode (from its errno), in one sentence."""
    where = str(folder) if folder is not None else "the folder named in the error"
    code = exc.errno if isinstance(exc, OSError) else None
    if code in (errno.EACCES, errno.EPERM):
        user = pwd.getpwuid(os.geteuid()).pw_name
        return f"Give the agent's user ({user}) permission to write in {where}."
    advice = {
        errno.ENOSPC: f"Free some space on the disk that holds {where}.",
        errno.EDQUOT: f"Raise the disk quota of the agent's user, or free space in {where}.",
        errno.EROFS: f"{where} is on a read-only filesystem: mount it read-write.",
        errno.ENOENT: f"Check that {where} exists (and that its share is mounted).",
    }
    if code in advice:
        return advice[code]
    return "Read the error above and the agent's log; fix the cause."


def trouble_next_step(notice: TroubleNotice) -> str:
    if notice.cleared_at is not None:
        return "Nothing to do: files that waited are being processed now."
    retry = f" (next try in {format_duration(notice.retry_seconds)})" if notice.retry_seconds else ""
    return f"{notice.advice} The agent retries with growing pauses{retry} and sends one more email when it works again."


def trouble_status_line(key: str, since: datetime, attempts: int, problem: str) -> str:
    """One open episode as `status` lists it."""
    return f"{trouble_title(key)}: failing since {format_time(since)} ({attempts} failed attempt(s)): {problem}"
