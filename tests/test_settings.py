"""Settings (`agent.settings`): secrets that never show themselves."""

from __future__ import annotations

from agent.settings import Secret


def test_secret_hides_itself_everywhere() -> None:
    secret = Secret("pa55-word-XYZ")
    assert repr(secret) == "Secret('***')"
    assert str(secret) == "***"
    assert f"{secret}" == "***" and f"{secret!r}" == "Secret('***')" and format(secret) == "***"
    assert secret.reveal() == "pa55-word-XYZ"
    assert secret == Secret("pa55-word-XYZ") and secret != Secret("other") and bool(secret)
    assert not Secret("")
