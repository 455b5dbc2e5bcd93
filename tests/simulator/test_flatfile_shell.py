"""Shell clients against the simulator: our own line-oriented bash + curl + grep/sed client, and
Blackboard's reference `sis_snpshtFF_manual.sh` against `feed-agent simulate` as a separate process.

Blackboard's script is vendored unchanged under tests/fixtures/blackboard/ (BSD licence; origin and
commit in ORIGIN.md there). The test runs a patched copy in a temporary folder: the endpoint URL, a
short poll interval, and a stand-in for /bin/mail that records the report instead of sending it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.net import serving

CLIENT = Path(__file__).resolve().parent / "bb_style_client.sh"
REPO = Path(__file__).resolve().parents[2]
BB_MANUAL_SCRIPT = REPO / "tests" / "fixtures" / "blackboard" / "sis_snpshtFF_manual.sh"
needs_shell_tools = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl on PATH"
)


def run_client(endpoint: str, user: str, password: str, file: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(CLIENT), endpoint, user, password, "person", "store", str(file)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@needs_shell_tools
def test_a_line_oriented_shell_client_reads_every_count_from_its_own_line(learn_sim, tmp_path):
    rows = person_rows(30)
    rows[4] = (*rows[4][:4], "", rows[4][5])
    data = write_flatfile(tmp_path / "people.txt", PEOPLE_HEADER, rows)

    done = run_client(learn_sim.endpoint, learn_sim.username, learn_sim.password, data)

    assert done.returncode == 0, done.stdout + done.stderr
    values = dict(line.split("=", 1) for line in done.stdout.split())
    info = learn_sim.dataset(values["uid"])
    assert (int(values["completed"]), int(values["errors"]), int(values["warnings"])) == (29, 1, 0)
    assert (info.completed, info.errors, info.queued) == (29, 1, 0)


@needs_shell_tools
def test_the_shell_client_cannot_read_a_status_written_on_one_line(tmp_path):
    uid = "a" * 32
    one_line = (
        "<dataSetStatus><completedCount>1</completedCount><errorCount>0</errorCount>"
        f"<queuedCount>0</queuedCount><warningCount>0</warningCount><dataSetUid>{uid}</dataSetUid></dataSetStatus>"
    ).encode()

    class OneLineLearn(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(f"Success: Feed File Uploaded.  Use the reference code {uid} to track these records.".encode())

        def do_GET(self) -> None:
            self._send(one_line)

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    data = write_flatfile(tmp_path / "people.txt", PEOPLE_HEADER, person_rows(1))
    with serving(OneLineLearn) as base:
        done = run_client(base, "u", "p", data, MAX_POLLS="3")

    assert done.returncode == 4, done.stdout  # the property the simulator must keep is what makes it work


@contextmanager
def simulate_process(*argv: str) -> Iterator[str]:
    """`feed-agent simulate` as its own process (port 0); yields the flat-file endpoint it printed."""
    command = [str(REPO / ".venv" / "bin" / "feed-agent"), "simulate", "--port", "0", *argv]
    if not Path(command[0]).exists():
        command[:2] = [sys.executable, "-m", "agent", "simulate"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        found = re.search(r"Flat-file uploads: +(http://\S+)/<object>/", lines[2])
        assert found, lines
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@needs_shell_tools
def test_blackboards_reference_manual_script_finishes_against_feed_agent_simulate(tmp_path):
    """Issue 13.7: Blackboard's own script (vendored, see tests/fixtures/blackboard/ORIGIN.md), patched only
    for the endpoint, a short poll interval and a /bin/mail stand-in, runs to its SUCCESS mail."""
    original = BB_MANUAL_SCRIPT.read_text(encoding="utf-8")
    mailbox = tmp_path / "mailbox.txt"
    mail = tmp_path / "mail"
    mail.write_text(f'#!/bin/sh\n{{ echo "SUBJECT: $2"; echo "TO: $3"; cat; }} >> "{mailbox}"\n', encoding="utf-8")
    mail.chmod(0o755)
    user, password = "13a29f6e-66e6-4ab9-ad4b-174d3ca71723", "pwd"
    simulate = ("--username", user, "--password", password, "--rows-per-second", "50")
    with simulate_process(*simulate) as endpoint:
        script = re.sub(r"(?m)^serverEndpointURL=.*$", f'serverEndpointURL="{endpoint}"', original)
        script = re.sub(r"(?m)^sleep_time=.*$", "sleep_time=0.2", script)
        script = script.replace("/bin/mail", str(mail))
        copy = tmp_path / "sis_snpshtFF_manual.sh"
        copy.write_text(script, encoding="utf-8")
        data = write_flatfile(tmp_path / "persons.txt", PEOPLE_HEADER, person_rows(25))

        done = subprocess.run(
            ["bash", str(copy), user, password, "person", "store", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

        assert done.returncode == 0, done.stdout + done.stderr
        report = mailbox.read_text(encoding="utf-8")
        uid = re.search(r"Data Set ID: ([0-9a-f]{32})", report)
        assert uid, report
        status = requests.get(f"{endpoint}/dataSetStatus/{uid.group(1)}", auth=(user, password), timeout=30)
    assert "SUBJECT: [SIS_SNPSHTFF Report: SUCCESS] person store" in report
    assert "Completed: 25" in report and "Warnings: 0" in report
    assert "<completedCount>25</completedCount>" in status.text


def test_the_vendored_script_is_blackboards_file_unchanged():
    """The copy must stay the reference, not drift into something written to pass."""
    digest = hashlib.sha256(BB_MANUAL_SCRIPT.read_bytes()).hexdigest()
    assert digest == "88b3446050d14b98796626f5d163bc093a7e43a063cc46d02b7ec15bcae3a0fe"
    assert "Copyright (c) 2013, Blackboard Inc." in BB_MANUAL_SCRIPT.read_text(encoding="utf-8")
