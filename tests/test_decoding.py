"""How Learn reads a file's bytes (`agent.decoding`): which files are decoded, and what the reader yields."""

from __future__ import annotations

from pathlib import Path

from agent.decoding import open_decoded

TEXT = "external_person_key|firstname\nP1|José\nP2|Ñúñez\n"


def decoded_text(path: Path, declared: str = "utf-8", first_size: int = 7) -> tuple[str | None, bytes, str | None]:
    """(label, everything the reader yields, problem) with a deliberately tiny first block."""
    with path.open("rb") as handle:
        source = open_decoded(handle.read(first_size), handle, declared)
        if source is None:
            return None, b"", None
        data = source.first + b"".join(iter(lambda: source.read(5), b""))
        source.finish()
        return source.label, data, source.problem


def test_utf16_with_a_mark_is_decoded_to_utf8_without_the_mark_across_odd_block_edges(tmp_path: Path) -> None:
    for name, raw in (("le", b"\xff\xfe" + TEXT.encode("utf-16-le")), ("be", b"\xfe\xff" + TEXT.encode("utf-16-be"))):
        path = tmp_path / f"{name}.txt"
        path.write_bytes(raw)
        assert decoded_text(path) == (f"utf-16-{name}", TEXT.encode("utf-8"), None)


def test_plain_utf8_and_a_utf8_mark_take_the_fast_byte_path_even_on_a_latin1_route(tmp_path: Path) -> None:
    plain, marked = tmp_path / "plain.txt", tmp_path / "marked.txt"
    plain.write_bytes(TEXT.encode())
    marked.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    assert decoded_text(plain) == (None, b"", None)
    assert decoded_text(marked, "latin-1") == (None, b"", None)


def test_a_declared_latin1_file_is_read_as_iso_8859_1(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes(TEXT.encode("latin-1"))
    assert decoded_text(path, "latin-1") == ("latin-1", TEXT.encode("utf-8"), None)


def test_a_declared_latin1_file_with_windows_1252_quotes_names_the_line_and_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.txt"
    path.write_bytes((TEXT + "P3|“Bo”\n").encode("cp1252"))
    label, _, problem = decoded_text(path, "latin-1")
    assert label == "latin-1" and problem is not None
    assert problem.startswith("line 4 has the byte 0x93 ('“' in Windows-1252)")


def test_a_declared_latin1_file_that_is_really_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "utf8.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    _, _, problem = decoded_text(path, "latin-1")
    assert problem is not None and "'é' as 'Ã©'" in problem


def test_utf32_is_left_to_the_inspection_to_refuse(tmp_path: Path) -> None:
    path = tmp_path / "utf32.txt"
    path.write_bytes(TEXT.encode("utf-32"))
    assert decoded_text(path) == (None, b"", None)


def test_a_latin1_byte_that_starts_a_utf8_sequence_followed_by_ascii_is_latin1(tmp_path: Path) -> None:
    """'Ã' (0xC3) then '|': not UTF-8, even when the pieces read split right after the 0xC3."""
    path = tmp_path / "split.txt"
    raw = b"external_person_key|firstname\nP1|Jos\xc3|abc\n"
    assert raw.index(b"\xc3") == 36  # with a 7-byte first block and 5-byte reads, a piece ends after it
    path.write_bytes(raw)
    assert decoded_text(path, "latin-1") == ("latin-1", raw.decode("latin-1").encode("utf-8"), None)
