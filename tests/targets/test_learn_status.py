"""Reading Learn's dataSetStatus (`agent.targets.learn_status`): every field kept, hostile XML refused."""

from __future__ import annotations

import pytest

from agent.errors import TargetError
from agent.targets.learn_status import parse_status


def test_status_xml_with_a_doctype_or_entity_is_refused():
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        "<dataSetStatus><completedCount>&lol2;</completedCount></dataSetStatus>"
    )
    for body in (laughs, '<!ENTITY x "y"><dataSetStatus/>'):
        with pytest.raises(TargetError, match="DOCTYPE or ENTITY"):
            parse_status(body)
    with pytest.raises(TargetError, match="not XML"):
        parse_status("<html><body>oops")
    with pytest.raises(TargetError, match="queuedCount"):
        parse_status("<dataSetStatus><completedCount>1</completedCount></dataSetStatus>")


def test_status_without_warning_and_error_counts_reads_them_as_zero() -> None:
    from agent.targets.learn_status import parse_status

    progress = parse_status(
        "<dataSetStatus><completedCount>3</completedCount><queuedCount>0</queuedCount></dataSetStatus>"
    )
    assert progress.counts() == (0, 3, 0, 0)
    with pytest.raises(TargetError, match="queuedCount"):
        parse_status("<dataSetStatus><completedCount>3</completedCount></dataSetStatus>")
