"""Destinations: Learn's flat-file endpoint, S3 buckets, job APIs."""

from __future__ import annotations

from agent.settings import JobTargetSettings, LearnTargetSettings, S3TargetSettings, TargetSettings
from agent.targets.base import Target


def make_target(settings: TargetSettings) -> Target:
    """The Target for a [target:NAME] section."""
    if isinstance(settings, LearnTargetSettings):
        from agent.targets.learn import LearnTarget

        return LearnTarget(settings)
    if isinstance(settings, S3TargetSettings):
        from agent.targets.s3 import S3Target

        return S3Target(settings)
    if isinstance(settings, JobTargetSettings):
        from agent.targets.jobapi import JobTarget

        return JobTarget(settings)
    raise TypeError(f"unknown target settings {type(settings).__name__}")
