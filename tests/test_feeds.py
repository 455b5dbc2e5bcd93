"""Learn object types (`agent.feeds`): detection by exact header tokens in the reference's order, and the order."""

from __future__ import annotations

from agent.feeds import (
    DEPENDS_ON,
    DETECTION_RULES,
    FEED_TYPES,
    ORDER_EXPLANATION,
    choose_delimiter,
    depends_on,
    detect_type,
    order_key,
    sort_key,
)


def test_detect_type_follows_reference_order() -> None:
    assert detect_type(["external_course_key", "external_person_key"]) == ("membership", None)
    assert detect_type(["external_node_key", "external_course_key", "external_association_key"])[0] == (
        "courseassociation"
    )
    assert detect_type(["external_person_key", "role_id"])[0] == "secondaryinstrole"
    assert detect_type(["external_person_key"])[0] == "person"
    assert detect_type(["std_sub_doc_key", "external_course_key"])[0] == "standardsassociation"
    assert detect_type(["externalpersonkey", "user_id"]) == (None, None)
    assert detect_type(["external_person_key_x"]) == (None, None)  # exact tokens, not substrings


def test_choose_delimiter_prefers_the_one_that_gives_a_known_header() -> None:
    assert choose_delimiter("external_person_key,user_id|x")[0] == ","
    delimiter, columns, slug, _ = choose_delimiter("a\tb\tc")
    assert (delimiter, columns, slug) == ("\t", ["a", "b", "c"], None)


def test_order_key_ranks_dependencies_first() -> None:
    ranks = [order_key(s) for s in ("term", "node", "person", "coursecategory", "course", "membership")]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert order_key("person") < order_key("course") < order_key("membership") < order_key("standardsassociation")
    assert order_key(None) > max(order_key(s) for s in FEED_TYPES)
    assert order_key("nonsense") == order_key(None)
    assert "memberships" in ORDER_EXPLANATION


def test_every_detection_rule_names_a_known_type() -> None:
    slugs = {slug for _, slug in DETECTION_RULES} - {"category"}
    assert slugs <= set(FEED_TYPES)
    assert set(FEED_TYPES) - slugs == {"coursecategory", "organizationcategory"}  # decided by the file name


def test_sort_key_is_type_then_arrival_then_name() -> None:
    files = [("membership", 1.0, "a"), ("person", 5.0, "z"), ("person", 5.0, "b"), ("person", 2.0, "c")]
    ordered = sorted(files, key=lambda f: sort_key(*f))
    assert ordered == [("person", 2.0, "c"), ("person", 5.0, "b"), ("person", 5.0, "z"), ("membership", 1.0, "a")]


def test_dependencies_follow_the_columns_that_point_at_other_records() -> None:
    assert depends_on("membership", "person") and depends_on("membership", "course")
    assert not depends_on("course", "person") and not depends_on("person", "course")
    assert depends_on("course", "term") and depends_on("standardsassociation", "course")
    assert not depends_on("person", "person") and not depends_on(None, "person")
    assert set(DEPENDS_ON) == set(FEED_TYPES)
    for slug, needs in DEPENDS_ON.items():  # a dependency always goes out first
        assert all(order_key(other) < order_key(slug) for other in needs), slug
