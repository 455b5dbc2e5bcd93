"""When a route's batch goes: the one rule the daemon's turn applies and its sleep waits for.

Why a module of its own: `watch` must both decide "this batch goes now" and sleep exactly until the
moment that becomes true (not a tick later), and two copies of the rule would drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from agent.readiness import Candidate
from agent.settings import AgentSettings


def batch_due(pending: Sequence[Candidate], settings: AgentSettings) -> float:
    """The monotonic time a route's batch goes: `batch_window_seconds` after the last change of its
    files, or once its oldest file waited `batch_max_wait_seconds`; never (inf) while none is ready."""
    if not any(c.ready for c in pending):
        return math.inf
    quiet = max(c.last_change for c in pending) + settings.batch_window_seconds
    return min(quiet, min(c.first_seen for c in pending) + settings.batch_max_wait_seconds)
