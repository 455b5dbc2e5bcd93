"""What a target type means for a batch and for its reports: one profile per type, asked, never branched on.

The pipeline, the CLI, `check` and the reports ask the route's profile how to inspect a file, how
to order the batch, whether a failed file holds its dependents, whether the refresh guard applies,
and how to name the destination and its receipt. Adding a destination is one target module and one
profile here; nothing else needs an `if learn / else`.

- Learn takes flat files whose header says what they are; files go in dependency order, and a
  file that did not reach Learn holds the files of later order (memberships wait for their users).
- S3 and job targets take plain CSV uploads; files go oldest first and are independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.inspection import Inspection, Opener, inspect_csv, inspect_file
from agent.settings import (
    OPERATIONS,
    JobTargetSettings,
    LearnTargetSettings,
    RouteSettings,
    S3TargetSettings,
    TargetSettings,
)
from agent.targets.base import Target
from agent.targets.s3keys import handshake_name_warning

UPLOAD = "upload"
LEARN_LOGS = "Learn: System Admin → Data Integration → SIS Integrations → Logs"


@dataclass(frozen=True)
class TargetProfile:
    """The behaviour and the words of one target type."""

    kind: str  # learn | s3 | job
    destination: str  # how reports name the other side: "Learn", "S3", "the job service"
    receipt_label: str  # "Reference code", "S3 key", "Job id"
    learn_feeds: bool  # files are Learn flat files: typed by their header, sent with an operation
    holds_dependents: bool  # a file that did not arrive holds the later-order files (on_failure = hold)
    where_to_look: str  # where an admin looks a receipt up; {ref} is the receipt
    recent_uploads: str  # where an admin sees what arrived lately, when there is no receipt (UNCONFIRMED)
    name_warning: Callable[[str], str | None] = field(default=lambda _name: None)
    record_logs: bool = False  # can say why each record failed (Learn, given a REST application)
    ends_later: bool = False  # the receipt is a queued job; its end comes as a notification ([webhook])
    # The upload needs the file's digest before its first byte (S3 sends it as the object's checksum),
    # so the check hashes what it reads; otherwise the upload hashes what it sends (see the pipeline).
    checksum_first: bool = False

    def inspect(
        self,
        path: Path,
        forced_object: str | None = None,
        settings: TargetSettings | None = None,
        encoding: str = "utf-8",
        *,
        opener: Opener | None = None,
    ) -> Inspection:
        """The pre-flight check for this kind of destination (no network).

        With the target's `settings`, a Learn file must also use the integration's delimiter;
        `encoding` is the route's declaration for Learn files without a byte-order mark. For a
        `checksum_first` target the pipeline passes an `opener` that hashes what the check reads
        (agent.hashing); without one, a big Learn file's scan may be split across the cores."""
        how = {"opener": opener} if opener is not None else {}
        if self.learn_feeds:
            return inspect_file(path, forced_object, self.expected_delimiter(settings), encoding, **how)
        result = inspect_csv(path, **how)
        result.object = "csv" if not result.problems else None
        warning = self.name_warning(path.name)
        if warning:
            result.notes.append(warning)
        return result

    def expected_delimiter(self, settings: TargetSettings | None) -> str | None:
        """The delimiter name a file must use for this target (Learn: its integration's), or None: any."""
        if self.learn_feeds and isinstance(settings, LearnTargetSettings):
            return settings.delimiter
        return None

    def sendable(self, inspection: Inspection) -> bool:
        return inspection.ok

    def sent_object(self, inspection: Inspection) -> str | None:
        """The object a file is sent as: the Learn slug, or nothing (a plain upload)."""
        return inspection.object if self.learn_feeds else None

    def operation(self, route: RouteSettings) -> str:
        """The route's Learn operation, or `upload` where there are no operations."""
        return route.operation if self.learn_feeds else UPLOAD

    def object_label(self, slug: str | None) -> str:
        """The object as reports show it ("not detected" for an unreadable Learn file)."""
        if self.learn_feeds:
            return slug or "not detected"
        return slug if slug and slug != "csv" else self.kind

    def subject_part(self, slug: str | None, operation: str | None) -> str:
        """The `object/operation` part of a per-file subject: `course/store`, `s3/upload`.

        Always the same `a/b` shape, so mail filters work: `unknown/store` for an undetected Learn file.
        """
        if self.learn_feeds:
            return f"{slug or 'unknown'}/{operation or 'unknown'}"
        word = operation if operation and operation not in OPERATIONS else UPLOAD
        return f"{self.kind}/{word}"

    def look_up(self, reference: str | None) -> str:
        """Where an admin looks a receipt up, e.g. 'reference X in Learn: System Admin → …'."""
        return self.where_to_look.format(ref=reference or "(none)")

    def make_target(self, settings: TargetSettings) -> Target:
        """The Target for a [target:NAME] section of this type (imported on use: boto3 is slow to load)."""
        if isinstance(settings, LearnTargetSettings):
            from agent.targets.learn import LearnTarget

            return LearnTarget(settings)
        if isinstance(settings, JobTargetSettings):
            from agent.targets.jobapi import JobTarget

            return JobTarget(settings)
        if isinstance(settings, S3TargetSettings):
            from agent.targets.s3 import S3Target

            return S3Target(settings)
        raise TypeError(f"unknown target settings {type(settings).__name__}")


LEARN = TargetProfile(
    kind="learn",
    destination="Learn",
    receipt_label="Reference code",
    learn_feeds=True,
    holds_dependents=True,
    where_to_look="reference {ref} in " + LEARN_LOGS,
    recent_uploads=LEARN_LOGS,
    record_logs=True,
)
S3 = TargetProfile(
    kind="s3",
    destination="S3",
    receipt_label="S3 key",
    learn_feeds=False,
    holds_dependents=False,
    where_to_look="s3 key {ref} in the S3 console",
    recent_uploads="the S3 console (the objects' Last modified)",
    name_warning=handshake_name_warning,
    checksum_first=True,
)
JOB = TargetProfile(
    kind="job",
    destination="the job service",
    receipt_label="Job id",
    learn_feeds=False,
    holds_dependents=False,
    where_to_look="job id {ref} in the job service's log",
    recent_uploads="the job service's log",
    ends_later=True,
    checksum_first=True,
)
PROFILES = {profile.kind: profile for profile in (LEARN, S3, JOB)}


def profile_for(kind: str) -> TargetProfile:
    """The profile of a target type (`learn`, `s3`, `job`)."""
    return PROFILES[kind]


def make_target(settings: TargetSettings) -> Target:
    """The Target for a [target:NAME] section."""
    return profile_for(settings.type).make_target(settings)
