"""Logging: one line per record in text or JSON, debug only with -v, and never a secret.

Why these matter: journald and log shippers split on newlines and parse JSON, and a password that
reaches a log line ends up in every log archive, so redaction must cover messages, arguments and
exception text alike.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from uuid import uuid4

import pytest

from agent.logs import (
    QUIET,
    JsonFormatter,
    RedactingFilter,
    register_secrets,
    setup_logging,
    stderr_is_journal,
    utc_stamp,
)


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging rewires the root logger; give every other test its old one back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in ("botocore", "urllib3", "watchdog")}
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, old in noisy.items():
        logging.getLogger(name).setLevel(old)


def _secret() -> str:
    """A fresh value per test: registered secrets stay registered for the whole process."""
    return f"pw-{uuid4().hex}"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_text_format_is_one_line_per_record_with_level(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(verbose=False, fmt="text")
    logging.getLogger("agent.pipeline").info("claimed %s", "users.txt")
    logging.getLogger("agent.pipeline").warning("held %s", "courses.txt")
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 2
    assert lines[0].endswith("INFO    claimed users.txt")
    assert lines[1].endswith("WARNING held courses.txt")


def test_text_lines_carry_utc_time_with_z(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")  # a local zone far from UTC must not show
    setup_logging()
    record = logging.LogRecord("agent", logging.INFO, __file__, 1, "stamped", None, None)
    record.created = datetime(2026, 11, 28, 5, 40, 5, 250000, tzinfo=timezone.utc).timestamp()
    logging.getLogger("agent").handle(record)
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("2026-11-28T05:40:05.250Z INFO    stamped")


def test_console_level_hides_lower_lines_unless_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(console_level=logging.WARNING)
    logging.getLogger("agent").info("narrated elsewhere")
    logging.getLogger("agent").warning("still shown")
    assert [line.split(" ", 1)[1] for line in _lines(capsys.readouterr().err)] == ["WARNING still shown"]
    setup_logging(console_level=QUIET)
    logging.getLogger("agent").error("not even this")
    assert capsys.readouterr().err == ""
    setup_logging(verbose=True, console_level=QUIET)
    logging.getLogger("agent").debug("but -v wins")
    assert "but -v wins" in capsys.readouterr().err


def test_journal_stream_must_name_stderr_itself(tmp_path: Path) -> None:
    with (tmp_path / "err").open("w") as stream:
        st = os.fstat(stream.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, stream)
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, stream)
        assert not stderr_is_journal({}, stream)


PRIORITY_SCRIPT = """
import logging
from agent.logs import setup_logging
setup_logging(fmt={fmt!r})
log = logging.getLogger("agent.test")
log.debug("hidden")
log.info("an info line")
log.warning("a warning line")
log.error("an error line")
try:
    raise ValueError("boom")
except ValueError:
    log.critical("a critical line", exc_info=True)
"""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_under_journald_each_line_starts_with_its_syslog_priority(tmp_path: Path, fmt: str) -> None:
    """A real process whose stderr is the file JOURNAL_STREAM names, as systemd sets it up."""
    err_path = tmp_path / "stderr"
    with err_path.open("w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run(
            [sys.executable, "-c", PRIORITY_SCRIPT.format(fmt=fmt)], stderr=err, env=env, check=True, timeout=60
        )
    lines = _lines(err_path.read_text())
    priorities = [line[:3] for line in lines]
    if fmt == "text":
        assert priorities[:4] == ["<6>", "<4>", "<3>", "<2>"]
        assert len(lines) > 4 and all(p == "<2>" for p in priorities[3:])  # the traceback lines too
        assert re.match(r"<6>\d{4}-\d\d-\d\dT[\d:.]+Z INFO    an info line$", lines[0])
    else:
        assert priorities == ["<6>", "<4>", "<3>", "<2>"]
        assert json.loads(lines[3][3:])["message"] == "a critical line"


def test_without_journald_there_is_no_prefix(tmp_path: Path) -> None:
    err_path = tmp_path / "stderr"
    with err_path.open("w") as err:
        env = {**os.environ, "JOURNAL_STREAM": "1:2"}
        subprocess.run([sys.executable, "-c", PRIORITY_SCRIPT.format(fmt="text")], stderr=err, env=env, check=True)
    assert all(line[0].isdigit() or not line.startswith("<") for line in _lines(err_path.read_text()))


def test_debug_lines_only_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(verbose=False)
    logging.getLogger("agent.watcher").debug("rescan found nothing")
    logging.getLogger("botocore").info("library chatter")
    assert capsys.readouterr().err == ""

    setup_logging(verbose=True)
    logging.getLogger("agent.watcher").debug("rescan found nothing")
    assert _lines(capsys.readouterr().err)[0].endswith("DEBUG   rescan found nothing")


def test_setup_twice_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()
    setup_logging()
    logging.getLogger("agent").info("once")
    assert len(_lines(capsys.readouterr().err)) == 1


def test_json_format_is_one_parseable_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt="json")
    logging.getLogger("agent.mailer").info("sent report for %s\nsecond line", "users.txt")
    (line,) = _lines(capsys.readouterr().err)
    payload = json.loads(line)
    assert payload["level"] == "INFO"
    assert payload["logger"] == "agent.mailer"
    assert payload["message"] == "sent report for users.txt\nsecond line"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", payload["time"])


def test_json_format_carries_the_exception(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(fmt="json")
    try:
        raise ValueError("bad header")
    except ValueError:
        logging.getLogger("agent.feeds").exception("cannot inspect users.txt")
    (line,) = _lines(capsys.readouterr().err)
    payload = json.loads(line)
    assert "ValueError: bad header" in payload["exception"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_registered_secret_never_appears_in_message_args_or_traceback(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = _secret()
    setup_logging(verbose=True, fmt=fmt)
    register_secrets([secret])
    log = logging.getLogger("agent.targets.learn")
    log.info("posting with %s", secret)
    log.debug(f"url https://sis:{secret}@learn.example.edu/")
    try:
        raise ConnectionError(f"refused for password {secret}")
    except ConnectionError:
        log.exception("upload failed")
    err = capsys.readouterr().err
    assert secret not in err
    assert err.count("***") >= 3
    assert "upload failed" in err and "ConnectionError" in err


def test_secrets_registered_before_setup_are_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI may load the config (and register its secrets) before or after set-up."""
    secret = _secret()
    register_secrets([secret])
    setup_logging()
    logging.getLogger("agent").error("login failed for %s", secret)
    assert secret not in capsys.readouterr().err


def test_overlapping_secrets_are_redacted_completely() -> None:
    short, long = "hunter2", "hunter2-and-more"
    redactor = RedactingFilter([short, long])
    assert redactor.redact(f"a={long} b={short}") == "a=*** b=***"


def test_empty_and_tiny_values_are_not_treated_as_secrets() -> None:
    """An empty or one-letter 'secret' would turn every log line into asterisks."""
    redactor = RedactingFilter(["", "a", "xy"])
    assert redactor.secrets == []
    assert redactor.redact("a day at xyz") == "a day at xyz"


def test_json_formatter_without_filter_formats_exc_info() -> None:
    try:
        raise KeyError("journal row")
    except KeyError:
        record = logging.LogRecord("agent", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    payload = json.loads(JsonFormatter().format(record))
    assert payload["message"] == "failed"
    assert "KeyError" in payload["exception"]


@pytest.mark.parametrize(
    ("created", "stamp"),
    [
        (1795000000.0, "2026-11-18T11:06:40.000Z"),
        (1795000000.1234, "2026-11-18T11:06:40.123Z"),
        (1795000000.9999996, "2026-11-18T11:06:41.000Z"),  # rounds into the next second, as datetime does
        (1795000001.0005, "2026-11-18T11:06:41.000Z"),
    ],
)
def test_a_log_time_is_utc_to_the_millisecond_even_when_its_second_was_formatted_before(
    created: float, stamp: str
) -> None:
    utc_stamp(created - 1)  # the second before is formatted (and kept) first: it must not be reused
    assert utc_stamp(created) == stamp
