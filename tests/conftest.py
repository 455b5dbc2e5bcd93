"""Shared fixtures. Each real component's fixtures live in tests/support/<component>.py."""

from __future__ import annotations

pytest_plugins = ["tests.support.learn", "tests.support.smtp", "tests.support.s3"]
