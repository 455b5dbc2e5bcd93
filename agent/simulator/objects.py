"""What the simulated Learn knows about each flat-file object: required columns, keys, limits.

Why a table of its own: the row checker, the log messages and the upload endpoint all need the same
facts, and they come from `shared/reference/learn-snapshot-flatfile.md` §1-§2 (never from the agent's
own feeds module, so a mistake there cannot hide here).
"""

from __future__ import annotations

OPERATIONS = ("store", "refresh", "refreshlegacy", "delete")

# Required columns per slug (reference §2). data_source_key is not required: this integration
# supplies a default one, as the reference says a real integration may.
REQUIRED: dict[str, tuple[str, ...]] = {
    "person": ("external_person_key", "firstname", "lastname", "user_id"),
    "course": ("external_course_key", "course_id", "course_name"),
    "organization": ("external_organization_key", "organization_id", "organization_name"),
    "membership": ("external_course_key", "external_person_key"),
    "organizationmembership": ("external_organization_key", "external_person_key"),
    "term": ("external_term_key", "name"),
    "secondaryinstrole": ("external_person_key", "role_id"),
    "associateobserver": ("external_observer_key", "external_user_key"),
    "coursecategory": ("external_category_key", "title"),
    "organizationcategory": ("external_category_key", "title"),
    "coursecategorymembership": ("external_category_key", "external_course_key"),
    "organizationcategorymembership": ("external_category_key", "external_organization_key"),
    "node": ("external_node_key", "parent_node_key", "name"),
    "userassociation": ("external_association_key", "external_node_key", "external_user_key"),
    "courseassociation": ("external_association_key", "external_node_key", "external_course_key"),
    "organizationassociation": ("external_association_key", "external_node_key", "external_organization_key"),
    "standardsassociation": ("std_sub_doc_key", "course_key"),
    "subject": ("external_subject_key", "subject_id", "subject_name", "subject_type"),
    "program": ("external_program_key", "program_id", "program_name", "program_type"),
    "programtosubjectassociation": ("external_association_key", "external_program_key", "external_subject_key"),
    "subjecttocourseassociation": ("external_association_key", "external_subject_key", "external_course_key"),
    "subjecttoorgassociation": ("external_association_key", "external_subject_key", "external_org_key"),
}

# Objects whose keys Learn remembers, and the column that holds the key.
STORED_KEY_COLUMN = {
    "person": "external_person_key",
    "course": "external_course_key",
    "organization": "external_organization_key",
}

# Memberships must name things that exist: column -> kind of stored object.
REFERENCES: dict[str, dict[str, str]] = {
    "membership": {"external_course_key": "course", "external_person_key": "person"},
    "organizationmembership": {"external_organization_key": "organization", "external_person_key": "person"},
}

# The columns that identify a record in log messages: its required key columns, in header order of
# the table above (parent_node_key points elsewhere, so it does not identify a node).
IDENTITY: dict[str, tuple[str, ...]] = {
    slug: tuple(c for c in columns if c.endswith("_key") and c != "parent_node_key")
    for slug, columns in REQUIRED.items()
}

# Length limits of external keys (reference §2): 64 characters, terms 256, nodes 255.
KEY_LIMITS: dict[str, int] = {"external_term_key": 256, "external_node_key": 255, "parent_node_key": 255}
DEFAULT_KEY_LIMIT = 64
COURSE_ID_LIMIT = 100
COURSE_ID_FORBIDDEN = " &/'+"  # course_id may not contain these (reference §2)

PLAIN_KEY_COLUMNS = ("external_term_key", "external_node_key", "parent_node_key")  # letters, digits, - and .

ROW_STATUSES = ("enabled", "disabled", "deleted")


def key_limit(column: str) -> int | None:
    """The longest value allowed in an external key column; None for a column that is not a key."""
    if column == "data_source_key" or not column.endswith("_key"):
        return None
    return KEY_LIMITS.get(column, DEFAULT_KEY_LIMIT)


def object_name(slug: str) -> str:
    """How a log message names the object ("membership", "course category membership", ...)."""
    words = {
        "secondaryinstrole": "secondary institution role",
        "associateobserver": "observer association",
        "coursecategory": "course category",
        "organizationcategory": "organization category",
        "coursecategorymembership": "course category membership",
        "organizationcategorymembership": "organization category membership",
        "organizationmembership": "organization membership",
        "userassociation": "user association",
        "courseassociation": "course association",
        "organizationassociation": "organization association",
        "standardsassociation": "standards association",
        "programtosubjectassociation": "program to subject association",
        "subjecttocourseassociation": "subject to course association",
        "subjecttoorgassociation": "subject to organization association",
    }
    return words.get(slug, slug)
