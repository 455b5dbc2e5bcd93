"""Learn object types: their columns, how a header tells which one a file is, and the order they go in.

Pure and small: no file is read here (`agent.inspection` reads files). The order is written once,
as a rank per type, and `sort_key` is the one way to put files in dependency order.

Detection follows reference §3's *recommended* rule (exact column tokens, case-insensitive, first
matching row wins) rather than Blackboard's substring test, which misreads a course file that has
`primary_external_node_key` or `external_association_key`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

BOM = b"\xef\xbb\xbf"
DELIMITERS = ("|", "\t", ",", ":")  # Learn's "Feed File Delimiter" choices, tried in this order
DELIMITER_NAMES = {"|": "pipe", "\t": "tab", ",": "comma", ":": "colon", ";": "semicolon"}
# The names a [target:NAME] of type learn may give as `delimiter` (the integration's one delimiter).
LEARN_DELIMITERS = {"pipe": "|", "comma": ",", "tab": "\t", "colon": ":"}
BLOCK_SIZE = 4 * 1024 * 1024
MAX_REPORTED_LINES = 5


@dataclass(frozen=True)
class FeedType:
    """One Learn object type: its endpoint slug, family, required columns and key columns."""

    slug: str
    family: str
    required: tuple[str, ...]  # besides data_source_key, which the integration may supply
    keys: tuple[str, ...]  # columns that identify a row: an empty value is an error
    rank: int  # dependency order: lower goes first
    uses_dsk: bool = True


def _t(slug: str, family: str, required: str, keys: str, rank: int, uses_dsk: bool = True) -> FeedType:
    return FeedType(slug, family, tuple(required.split()), tuple(keys.split()), rank, uses_dsk)


# Order (DESIGN.md): term, node, person, secondaryinstrole, associateobserver, categories,
# course/organization, subject/program, associations, memberships, category memberships, standards.
FEED_TYPES: dict[str, FeedType] = {
    t.slug: t
    for t in (
        _t("term", "term", "external_term_key name", "external_term_key", 10),
        _t("node", "node", "external_node_key parent_node_key name", "external_node_key", 20),
        _t("person", "user", "external_person_key firstname lastname user_id", "external_person_key", 30),
        _t(
            "secondaryinstrole",
            "secondary institution role",
            "external_person_key role_id",
            "external_person_key role_id",
            40,
        ),
        _t(
            "associateobserver",
            "observer",
            "external_observer_key external_user_key",
            "external_observer_key external_user_key",
            50,
        ),
        _t("coursecategory", "category", "external_category_key title", "external_category_key", 60),
        _t("organizationcategory", "category", "external_category_key title", "external_category_key", 60),
        _t("course", "course", "external_course_key course_id course_name", "external_course_key", 70),
        _t(
            "organization",
            "organization",
            "external_organization_key organization_id organization_name",
            "external_organization_key",
            70,
        ),
        _t(
            "subject",
            "curriculum",
            "external_subject_key subject_id subject_name subject_type",
            "external_subject_key",
            80,
        ),
        _t(
            "program",
            "curriculum",
            "external_program_key program_id program_name program_type",
            "external_program_key",
            80,
        ),
        _t(
            "userassociation",
            "association",
            "external_association_key external_node_key external_user_key",
            "external_association_key",
            90,
        ),
        _t(
            "courseassociation",
            "association",
            "external_association_key external_node_key external_course_key",
            "external_association_key",
            90,
        ),
        _t(
            "organizationassociation",
            "association",
            "external_association_key external_node_key external_organization_key",
            "external_association_key",
            90,
        ),
        _t(
            "programtosubjectassociation",
            "association",
            "external_association_key external_program_key external_subject_key",
            "external_association_key",
            90,
        ),
        _t(
            "subjecttocourseassociation",
            "association",
            "external_association_key external_subject_key external_course_key",
            "external_association_key",
            90,
        ),
        _t(
            "subjecttoorgassociation",
            "association",
            "external_association_key external_subject_key external_org_key",
            "external_association_key",
            90,
        ),
        _t(
            "membership",
            "membership",
            "external_course_key external_person_key",
            "external_course_key external_person_key",
            100,
        ),
        _t(
            "organizationmembership",
            "membership",
            "external_organization_key external_person_key",
            "external_organization_key external_person_key",
            100,
        ),
        _t(
            "coursecategorymembership",
            "category membership",
            "external_category_key external_course_key",
            "external_category_key external_course_key",
            110,
        ),
        _t(
            "organizationcategorymembership",
            "category membership",
            "external_category_key external_organization_key",
            "external_category_key external_organization_key",
            110,
        ),
        _t(
            "standardsassociation",
            "standards",
            "std_sub_doc_key course_key",
            "std_sub_doc_key course_key",
            120,
            uses_dsk=False,
        ),
    )
}

# What each object's records point at, by the reference's columns (§2): a file is held only when a file
# of one of these objects did not reach Learn (people never wait for courses, nor courses for people).
# Objects that point at records of their own type (parent nodes, categories, template courses) are
# ordered by the SIS within one file, so a type never depends on itself here.
DEPENDS_ON: dict[str, frozenset[str]] = {
    slug: frozenset(needs.split())
    for slug, needs in {
        "term": "",
        "node": "",
        "person": "",
        "secondaryinstrole": "person",
        "associateobserver": "person",
        "coursecategory": "",
        "organizationcategory": "",
        "course": "term node",  # term_key, primary_external_node_key
        "organization": "term node",
        "subject": "",
        "program": "",
        "userassociation": "person node",
        "courseassociation": "course node",
        "organizationassociation": "organization node",
        "programtosubjectassociation": "program subject",
        "subjecttocourseassociation": "subject course",
        "subjecttoorgassociation": "subject organization",
        "membership": "person course",
        "organizationmembership": "person organization",
        "coursecategorymembership": "coursecategory course",
        "organizationcategorymembership": "organizationcategory organization",
        "standardsassociation": "course",
    }.items()
}


def depends_on(slug: str | None, other: str | None) -> bool:
    """Whether records of `slug` can point at records of `other` (so `slug` waits for `other`)."""
    return slug is not None and other is not None and other in DEPENDS_ON.get(slug, frozenset())


ORDER_EXPLANATION = (
    "terms and hierarchy nodes first, then users, their roles and observers, categories, courses and "
    "organizations, curriculum, associations, then memberships (which name users and courses that "
    "must already exist), category memberships and standards"
)


# Reference §3's recommended rule: (columns that must all be present, type), first match wins.
_CATEGORY = "category"  # course or organization category: the header cannot tell, the file name decides
DETECTION_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("std_sub_doc_key",), "standardsassociation"),
    (("external_subject_key", "external_program_key"), "programtosubjectassociation"),
    (("external_subject_key", "external_course_key"), "subjecttocourseassociation"),
    (("external_subject_key", "external_org_key"), "subjecttoorgassociation"),
    (("external_subject_key",), "subject"),
    (("external_program_key",), "program"),
    (("external_node_key", "external_course_key"), "courseassociation"),
    (("external_node_key", "external_organization_key"), "organizationassociation"),
    (("external_node_key", "external_user_key"), "userassociation"),
    (("external_node_key",), "node"),
    (("external_category_key", "external_course_key"), "coursecategorymembership"),
    (("external_category_key", "external_organization_key"), "organizationcategorymembership"),
    (("external_category_key",), _CATEGORY),
    (("external_person_key", "external_course_key"), "membership"),
    (("external_person_key", "external_organization_key"), "organizationmembership"),
    (("external_course_key",), "course"),
    (("external_organization_key",), "organization"),
    (("external_observer_key",), "associateobserver"),
    (("external_person_key", "role_id"), "secondaryinstrole"),
    (("external_person_key",), "person"),
    (("external_term_key",), "term"),
)


def detect_type(columns: Iterable[str], file_name: str = "") -> tuple[str | None, str | None]:
    """The Learn slug for a header, by exact tokens in reference §3's order.

    Returns (slug, note). The note explains a guess (course vs organization category) so the admin
    can confirm it; slug is None when no rule matches.
    """
    present = set(columns)
    for needed, slug in DETECTION_RULES:
        if present.issuperset(needed):
            return _category_from_name(file_name) if slug == _CATEGORY else (slug, None)
    return None, None


def _category_from_name(file_name: str) -> tuple[str, str | None]:
    """A category header cannot tell course from organization categories: ask the file name.

    Words are matched at their start ("org", "organization(s)", "organisation", "course(s)"), so a
    name like "georgia_categories" is not taken for an organization file.
    """
    words = re.split(r"[^a-z]+", Path(file_name).stem.lower())
    org = any(w.startswith("org") for w in words)
    course = any(w.startswith("course") for w in words)
    if org and not course:
        return "organizationcategory", None
    if course and not org:
        return "coursecategory", None
    return "coursecategory", (
        "a category file can be for courses or organizations; assumed course categories. "
        "Put 'organization' in the file name or set object = organizationcategory in the route if not"
    )


def normalize_header(line: str, delimiter: str) -> list[str]:
    """Header tokens, lowercase, without BOM, surrounding spaces, quotes or line ending."""
    tokens = line.lstrip("\ufeff").rstrip("\r\n").split(delimiter)
    return [t.strip().strip('"').strip().lower() for t in tokens]


def choose_delimiter(header: str, file_name: str = "") -> tuple[str, list[str], str | None, str | None]:
    """The delimiter under which the header is a known Learn header (pipe, tab, then comma).

    When none is recognized, the most frequent candidate is kept for reporting.
    """
    for delimiter in DELIMITERS:
        if delimiter not in header and delimiter != "|":
            continue
        columns = normalize_header(header, delimiter)
        slug, note = detect_type(columns, file_name)
        if slug:
            return delimiter, columns, slug, note
    counts = {d: header.count(d) for d in DELIMITERS}
    delimiter = max(DELIMITERS, key=lambda d: counts[d]) if any(counts.values()) else "|"
    return delimiter, normalize_header(header, delimiter), None, None


def order_key(slug: str | None) -> int:
    """Dependency rank of a slug; unknown types sort last."""
    feed = FEED_TYPES.get(slug or "")
    return feed.rank if feed else 1000


def sort_key(slug: str | None, arrival: float, name: str) -> tuple[int, float, str]:
    """The one dependency order: by type rank, then oldest arrival, then name."""
    return (order_key(slug), arrival, name)
