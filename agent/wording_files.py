"""The words about a drop folder's entries themselves: a link, pipe or folder found there
(`agent.strays`), and a file whose writer went on after it was claimed (`agent.writecheck`).

A part of `agent.wording` (the words of every report), apart only to keep each module small.
"""

from __future__ import annotations

from agent.profiles import profile_for
from agent.records import FileOutcome, Status

REFRESHES = ("refresh", "refreshlegacy")


def stray_step(outcome: FileOutcome, drop: str) -> str:
    """A link, folder or pipe in the drop folder: where it is now, what to do."""
    if outcome.entry_kind == "folder":
        return (
            f"Nothing was moved: the folder stays in {drop} and is not reported again. The agent does not "
            f"look inside folders: move the files in it that should be sent directly into {drop}, then "
            "remove the folder."
        )
    link = " (the link only: what it points to was not touched)" if outcome.entry_kind == "symbolic link" else ""
    return (
        f"It was moved to {outcome.final_path}{link}. To send the data, put a regular file with it into "
        f"{drop}; the agent never follows links or reads pipes."
    )


def changed_while_sent(name: str, destination: str, sent: str, now: str, answer: Status) -> str:
    """Why a delivered file is FAILED: what went out was not the whole file."""
    return (
        f"{name} changed while it was being sent: {sent} went to {destination}, but the file now has {now} "
        f"(the program writing it had only paused). {destination} processed the incomplete copy "
        f"(it answered {answer.value})."
    )


def changed_in_flight_step(outcome: FileOutcome, drop: str) -> str:
    destination = profile_for(outcome.target_type).destination
    what = f"What happened: {outcome.message} " if outcome.message else ""
    step = (
        f"{what}Once the SIS has finished writing it, move {outcome.final_path or 'the archived file'} back "
        f"into {drop} to send it whole; any file of the batch that depends on it was held and can follow it."
    )
    if outcome.operation in REFRESHES:
        return (
            f"{step} Do this soon: a {outcome.operation} disables what its file does not list, so {destination} "
            "may have disabled the records the incomplete copy lacked."
        )
    return f"{step} A {outcome.operation or 'store'} only adds and updates records, so sending it again is safe."


def still_changing(waited: str) -> str:
    """Why a claimed file was held: its writer never stopped."""
    return (
        f"It kept changing for {waited} after it was taken (the program writing it had paused, then went on), "
        "so it was not sent. Move it back into the drop folder once the SIS has finished writing it."
    )
