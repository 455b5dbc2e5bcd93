"""Crash-test points, as databases have them: the process kills itself right after a named step.

Why: "exactly once, in order, through any crash" is only a promise if every step can be crashed at
and recovered from. `FEED_AGENT_FAILPOINT=NAME[:N]` makes the process SIGKILL itself right after
the Nth time (default the 1st) it passes the step NAME: no clean-up, no `finally`, no flush, exactly
what the OOM killer or a power cut does to the process. Tests start `feed-agent watch`/`run` with it,
then restart the agent and check that nothing was lost, doubled or reported twice.

Zero cost when unset: the variable is read once at import; `hit()` is then one global lookup and
a `None` test. For testing only: never set it on a production service.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

VARIABLE = "FEED_AGENT_FAILPOINT"

# Every step a failpoint can follow, in the order a file meets them. The help text says what has
# happened (and what has not yet) when the process dies there.
POINTS: dict[str, str] = {
    "batch-planned": "the batch and its files are journaled (state claiming); nothing moved yet",
    "claim-renamed": "one file is renamed into processing/; the journal still says claiming",
    "claim-journaled": "the claim is journaled (state claimed)",
    "inspect-journaled": "the pre-flight check of one file is journaled",
    "submit-journaled": "the upload is about to start (state submitting); nothing sent yet",
    "body-sent": "the whole body went out; Learn's answer not yet read",
    "receipt-received": "Learn's answer (the reference code) is read; not yet journaled",
    "receipt-journaled": "the receipt is journaled (state submitted)",
    "poll-journaled": "one status reading is journaled",
    "result-journaled": "the file's final status is journaled (state finished); not yet moved",
    "archive-renamed": "the file is renamed into archive/; not yet journaled",
    "archive-journaled": "the archive move is journaled (state archived)",
    "fail-renamed": "the file is renamed into failed/ with its reason file; not yet journaled",
    "fail-journaled": "the failed/ move is journaled",
    "report-rendered": "a per-file report is rendered; not yet handed to the mailer",
    "report-mailed": "a per-file report is handed to the mailer; not yet journaled as sent",
    "report-journaled": "the per-file report is journaled as sent",
    "batch-finished": "the batch's end is journaled; its summary not yet rendered",
    "summary-rendered": "the batch summary is rendered; not yet handed to the mailer",
    "summary-mailed": "the batch summary is handed to the mailer; not yet journaled as sent",
    "summary-journaled": "the batch summary is journaled as sent",
}
NAMES = tuple(POINTS)


def _parse(value: str | None) -> tuple[str, int] | None:
    """`NAME` or `NAME:N` -> (NAME, N); None when unset or empty. A bad value is refused loudly."""
    if not value:
        return None
    name, _, count = value.partition(":")
    name = name.strip()
    if name not in POINTS:
        raise ValueError(f"{VARIABLE}={value!r}: unknown failpoint {name!r} (see `feed-agent failpoints`)")
    try:
        nth = int(count) if count else 1
    except ValueError:
        raise ValueError(f"{VARIABLE}={value!r}: the count after ':' must be a whole number") from None
    if nth < 1:
        raise ValueError(f"{VARIABLE}={value!r}: the count after ':' starts at 1")
    return name, nth


def _load() -> tuple[tuple[str, int] | None, str | None]:
    try:
        return _parse(os.environ.get(VARIABLE)), None
    except ValueError as exc:
        return None, str(exc)


_ARMED, PROBLEM = _load()  # PROBLEM: why the variable was ignored (the CLI refuses to start then)
_passed = 0
_lock = threading.Lock()


def hit(name: str) -> None:
    """Called right after the step `name`; kills the process there when that failpoint is armed."""
    if _ARMED is None:
        return
    _maybe_die(name)


def _maybe_die(name: str) -> None:
    global _passed
    armed_name, nth = _ARMED or ("", 0)
    if name != armed_name:
        return
    with _lock:
        _passed += 1
        if _passed != nth:
            return
    # One line, so a test log shows where the process died; then no clean-up of any kind.
    os.write(sys.stderr.fileno(), f"failpoint {name}:{nth}: killing the process\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


def armed() -> tuple[str, int] | None:
    """The armed failpoint (for tests of this module), or None."""
    return _ARMED


def describe() -> str:
    """`feed-agent failpoints`: the names, one a line."""
    return "\n".join(NAMES)
