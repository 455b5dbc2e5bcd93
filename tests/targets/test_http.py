"""HTTP plumbing (`agent.targets.http`): a streamed body with a BOM in front, and messages without credentials."""

from __future__ import annotations

from pathlib import Path

from agent.targets.http import StreamedBody, start, without_credentials


def test_streamed_body_puts_the_prefix_first_and_counts_what_was_sent(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_bytes(b"x" * 100_000)
    with StreamedBody(path, prefix=b"\xef\xbb\xbf") as body:
        assert len(body) == 100_003
        first = body.read(10)
        rest = b"".join(body)
    assert first == b"\xef\xbb\xbf" + b"x" * 7
    assert len(first) + len(rest) == 100_003 and body.sent == 100_003


def test_messages_never_carry_credentials_and_stay_short() -> None:
    assert without_credentials("https://user:pw@learn.example.edu/x") == "https://learn.example.edu/x"
    assert without_credentials("https://learn.example.edu/x") == "https://learn.example.edu/x"
    assert start("a\n b   c") == "'a b c'"
    assert start("y" * 500).endswith("…'") and len(start("y" * 500)) < 210
