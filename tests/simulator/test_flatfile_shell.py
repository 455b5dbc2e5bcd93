"""Shell clients against the simulator: our own line-oriented bash + curl + grep/sed client (always),
and Blackboard's reference `sis_snpshtFF_manual.sh` when FEED_AGENT_BB_MANUAL_SCRIPT points at a copy.

Blackboard's script is never committed here: fetch it yourself (github 3ub41r/blackboard-integration,
`scripts/sis_snpshtFF_manual.sh` in its first commit) and set the variable to its path. The test runs a
patched copy in a temporary folder: the endpoint URL, a short poll interval, and a stand-in for
/bin/mail that records the report instead of sending it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from agent.simulator import LearnSimulator
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile
from tests.support.net import serving

CLIENT = Path(__file__).resolve().parent / "bb_style_client.sh"
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


@needs_shell_tools
@pytest.mark.skipif(
    not os.environ.get("FEED_AGENT_BB_MANUAL_SCRIPT"),
    reason="set FEED_AGENT_BB_MANUAL_SCRIPT to a copy of Blackboard's sis_snpshtFF_manual.sh to run it",
)
def test_blackboards_reference_manual_script_finishes_against_the_simulator(tmp_path):
    original = Path(os.environ["FEED_AGENT_BB_MANUAL_SCRIPT"]).read_text(encoding="utf-8")
    mailbox = tmp_path / "mailbox.txt"
    mail = tmp_path / "mail"
    mail.write_text(f'#!/bin/sh\n{{ echo "SUBJECT: $2"; echo "TO: $3"; cat; }} >> "{mailbox}"\n', encoding="utf-8")
    mail.chmod(0o755)
    with LearnSimulator(username="13a29f6e-66e6-4ab9-ad4b-174d3ca71723", password="pwd", rows_per_second=50) as sim:
        script = re.sub(r"(?m)^serverEndpointURL=.*$", f'serverEndpointURL="{sim.endpoint}"', original)
        script = re.sub(r"(?m)^sleep_time=.*$", "sleep_time=0.2", script)
        script = script.replace("/bin/mail", str(mail))
        copy = tmp_path / "sis_snpshtFF_manual.sh"
        copy.write_text(script, encoding="utf-8")
        data = write_flatfile(tmp_path / "persons.txt", PEOPLE_HEADER, person_rows(25))

        done = subprocess.run(
            ["bash", str(copy), sim.username, sim.password, "person", "store", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

        assert done.returncode == 0, done.stdout + done.stderr
        (upload,) = sim.uploads
        report = mailbox.read_text(encoding="utf-8")
        assert "SUBJECT: [SIS_SNPSHTFF Report: SUCCESS] person store" in report
        assert f"Data Set ID: {upload.uid}" in report
        assert "Completed: 25" in report and "Warnings: 0" in report
        assert sim.dataset(upload.uid).completed == 25
