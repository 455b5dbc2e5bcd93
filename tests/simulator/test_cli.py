"""`feed-agent simulate` / `python -m agent.simulator`: flags, what it prints, and a clean stop."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from agent.simulator import Faults, add_arguments
from agent.simulator.cli import faults_from_args
from tests.simulator.client import SENTENCE, feed
from tests.support.learn import PEOPLE_HEADER, person_rows

REPO = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_command_line_prints_the_url_serves_with_faults_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "agent.simulator",
        "--port",
        "0",
        "--integration",
        "BB5bfc25366f037",
        "--username",
        "u1",
        "--password",
        "p1",
        "--fail-uploads",
        "1",
        "--rows-per-second",
        "1000",
    ]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        assert "fail_uploads=1" in second
        match = re.match(
            r"Learn simulator listening on (http://127\.0\.0\.1:(\d+)) "
            r"\(integration BB5bfc25366f037, username u1\)$",
            first.strip(),
        )
        assert match, first
        assert int(match.group(2)) > 0
        url = f"{match.group(1)}/webapps/bb-data-integration-flatfile-BB5bfc25366f037/endpoint/person/store"
        body = feed(PEOPLE_HEADER, person_rows(1))
        assert requests.post(url, data=body, auth=("u1", "p1"), timeout=30).status_code == 500
        assert SENTENCE.match(requests.post(url, data=body, auth=("u1", "p1"), timeout=30).text)
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "answered 500" in out and "reference code" in out
    assert out.rstrip().endswith("Learn simulator stopped")


def test_feed_agent_simulate_prints_the_rest_base_and_the_job_api_and_serves_both():
    command = [
        str(REPO / ".venv" / "bin" / "feed-agent"),
        "simulate",
        "--rest-key",
        "k1",
        "--rest-secret",
        "s1",
        "--token-seconds",
        "60",
        "--job-api",
        "--job-api-key",
        "iq",
        "--jobs",
        "warehouse,gifts",
    ]
    if not Path(command[0]).exists():
        command[:2] = [sys.executable, "-m", "agent", "simulate"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(7)]
        rest = re.search(r"REST: +(http://\S+) \(token (http://\S+), key k1, tokens last 60 s\)", lines[4])
        jobs = re.search(r"Job API: +(http://\S+) \(jobs gifts, warehouse\)", lines[6])
        assert rest and jobs, lines
        assert "s1" not in "".join(lines)
        answer = requests.post(rest.group(2), data={"grant_type": "client_credentials"}, auth=("k1", "s1"), timeout=30)
        assert answer.json()["expires_in"] == 60
        queued = requests.post(
            jobs.group(1).format(job="gifts"), json={"apiKey": "iq", "filename": "g.csv"}, timeout=30
        )
        assert queued.status_code == 200 and queued.json()["jobId"]
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "job API POST gifts: 200" in out


def test_every_fault_flag_reaches_the_faults():
    args = parse(
        "--fail-uploads=1",
        "--slow=0.5",
        "--stuck",
        "--no-code",
        "--html-page",
        "--drop-uploads=2",
        "--withhold-answers=3",
        "--withhold-seconds=4",
        "--throttle-uploads=5",
        "--status-failures=6",
        "--status-failure-code=500",
        "--retry-after=none",
        "--rest-forbidden",
        "--rest-throttle=7",
        "--log-locked-seconds=8",
    )

    assert faults_from_args(args) == Faults(
        fail_uploads=1,
        slow_seconds=0.5,
        stuck=True,
        no_code=True,
        html_page=True,
        drop_uploads=2,
        withhold_answers=3,
        withhold_seconds=4.0,
        throttle_uploads=5,
        status_failures=6,
        status_failure_code=500,
        retry_after=None,
        rest_forbidden=True,
        rest_throttle=7,
        log_locked_seconds=8.0,
    )


def test_status_503_flag_still_works_and_defaults_are_a_healthy_server():
    assert faults_from_args(parse()) == Faults()
    assert faults_from_args(parse("--status-503", "2")) == Faults(status_failures=2)
    args = parse("--start-delay", "0", "--rest-key", "a", "--rest-secret", "b", "--token-seconds", "5")
    assert (args.start_delay, args.rest_key, args.rest_secret, args.token_seconds) == (0.0, "a", "b", 5.0)


def test_a_negative_retry_after_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse("--retry-after", "-1")
    assert "retry-after" in capsys.readouterr().err


def test_simulate_with_a_comma_integration_takes_comma_files_and_fails_every_record_of_a_pipe_file():
    """Issue 13.1: `feed-agent simulate --delimiter comma` reads its uploads as that integration would."""
    command = [sys.executable, "-m", "agent", "simulate", "--delimiter", "comma", "--rows-per-second", "1000"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        found = re.search(r"Flat-file uploads: +(http://\S+)/<object>/\S+ \(comma-delimited\)", lines[2])
        assert found, lines
        url = f"{found.group(1)}/person/store"
        auth = ("sis-integration", "sis-password")
        for delimiter in (",", "|"):
            answer = requests.post(url, data=feed(PEOPLE_HEADER, person_rows(3), delimiter), auth=auth, timeout=30)
            assert SENTENCE.match(answer.text), answer.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    received = re.findall(r"upload person/store: \d+ bytes, 3 rows, (\d) with errors", out)
    assert received == ["0", "3"], out


def test_the_delimiter_defaults_to_pipe_and_takes_only_learns_choices():
    assert parse().delimiter == "pipe"
    assert parse("--delimiter", "tab").delimiter == "tab"
    with pytest.raises(SystemExit):
        parse("--delimiter", "semicolon")


def test_the_job_api_throttle_flags_default_to_off_and_take_429_or_503():
    assert (parse().job_throttle, parse().job_throttle_status) == (0, 429)
    args = parse("--job-throttle", "2", "--job-throttle-status", "503")
    assert (args.job_throttle, args.job_throttle_status) == (2, 503)
    with pytest.raises(SystemExit):
        parse("--job-throttle-status", "500")
