"""Shared fixtures. Each real component's fixtures live in tests/support/<component>.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.support.learn",
    "tests.support.smtp",
    "tests.support.s3",
    "tests.support.s3proxy",
    "tests.support.pipeline",
    "tests.support.recordlog",
    "tests.support.faults",
]


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    """Each test starts and ends with the logging set-up it found.

    The CLI's `main()` installs a stderr handler on the root logger; without this, a test that ran it
    would make every later test print log lines (e.g. aiosmtpd's tracebacks from a background
    thread) into another test's output.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))
