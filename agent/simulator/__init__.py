"""Simulators of the systems feed-agent talks to, for demos, rehearsals and tests.

- :class:`LearnSimulator`: Blackboard Learn's SIS "Snapshot Flat File" endpoints (upload and
  dataSetStatus) and Learn REST's OAuth2 token and SIS data set log, with switchable
  :class:`Faults`. It follows `shared/reference/learn-snapshot-flatfile.md` and
  `learn-rest-logs.md`; where they are silent, each module's docstring says what was invented.
- :class:`JobApiSimulator`: an AlumnIQ-like job API (`shared/reference/destinations.md`).

The package deliberately imports nothing from the rest of `agent` (standard library only): if it
shared the agent's header parser, a bug there would be invisible in every test.

Module map: `objects` (what Learn requires per object), `rows` (streamed row checker, compact
per-record facts), `logentries` (log pages rendered from those facts), `datasets` (processing
model, key store), `faults`, `httpd` (server plumbing: one write per answer, TCP_NODELAY),
`core` (shared state), `flatfile` and `rest` (the endpoints), `learn` (LearnSimulator), `jobapi`,
`cli` (`feed-agent simulate`).
"""

from __future__ import annotations

from agent.simulator.cli import add_arguments, run_from_args
from agent.simulator.datasets import DataSetInfo, Upload
from agent.simulator.faults import Faults
from agent.simulator.flatfile import SUCCESS_SENTENCE
from agent.simulator.httpd import Reply
from agent.simulator.jobapi import JobApiSimulator, JobRequest, Notification
from agent.simulator.learn import LearnSimulator
from agent.simulator.logentries import LogEntry

__all__ = [
    "SUCCESS_SENTENCE",
    "DataSetInfo",
    "Faults",
    "JobApiSimulator",
    "JobRequest",
    "LearnSimulator",
    "LogEntry",
    "Notification",
    "Reply",
    "Upload",
    "add_arguments",
    "run_from_args",
]
