"""`feed-agent` command line, one section per command (called through `agent.cli.main`).

inspect: no network, no configuration needed; the table and `--json` show each file's type,
delimiter, rows, problems and planned position; exit 0 only when every file is recognized and clean.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from agent.feeds import ORDER_EXPLANATION
from agent.simulator import LearnSimulator
from tests.support.agentconf import write_config
from tests.support.cli import run
from tests.support.learn import PEOPLE_HEADER, person_rows, write_flatfile

PERSON = "external_person_key|data_source_key|firstname|lastname|user_id\nP1|SIS|Jane|Doe|jdoe\nP2|SIS|Bo|Ng|bn\n"
COURSE = "external_course_key|course_id|course_name|data_source_key\nC1|MATH101|Calculus|SIS\n"
MEMBERSHIP = "external_course_key|external_person_key|role|data_source_key\nC1|P1|Student|SIS\n"
TERM = "EXTERNAL_TERM_KEY,NAME,DATA_SOURCE_KEY\r\nF24,Fall 2024,SIS\r\n"


def write(folder: Path, name: str, content: str | bytes, mtime: float | None = None) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


# ---------------------------------------------------------------------------------------------
# inspect


@pytest.fixture()
def clean_batch(tmp_path: Path) -> list[Path]:
    """Three clean feeds written out of dependency order (membership arrives first)."""
    return [
        write(tmp_path, "enrolments.txt", MEMBERSHIP, mtime=1_000),
        write(tmp_path, "courses.txt", COURSE, mtime=2_000),
        write(tmp_path, "people.txt", PERSON, mtime=3_000),
        write(tmp_path, "terms.csv", TERM, mtime=4_000),
    ]


def test_inspect_table_lists_files_in_planned_order(
    clean_batch: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "inspect", *clean_batch)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["#", "FILE", "OBJECT", "DELIM", "ROWS", "ENCODING", "RESULT"]
    rows = [line.split() for line in lines[1:5]]
    assert [r[:3] for r in rows] == [
        ["1", "terms.csv", "term"],
        ["2", "people.txt", "person"],
        ["3", "courses.txt", "course"],
        ["4", "enrolments.txt", "membership"],
    ]
    assert rows[0][3:] == ["comma", "1", "utf-8", "ok"]
    assert rows[1][3:] == ["pipe", "2", "utf-8", "ok"]
    assert f"Order: {ORDER_EXPLANATION}." in out


def test_inspect_table_shows_problems_and_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    people = write(tmp_path, "people.txt", "\ufeff" + PERSON.replace("P2|", "|"))
    cats = write(tmp_path, "cats.txt", "external_category_key|title\nCAT|Math\n")
    status, out, _ = run(capsys, "inspect", people, cats)
    assert status == 1
    assert "utf-8 +BOM" in out and "1 problem" in out
    assert "  people.txt: 1 row with an empty external_person_key (line 3); every row needs its key" in out
    assert "  cats.txt: note: a category file can be for courses or organizations" in out


def test_inspect_json_schema(tmp_path: Path, clean_batch: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    unknown = write(tmp_path, "export.txt", "id|name\n1|x\n", mtime=0)
    empty = write(tmp_path, "empty.txt", "", mtime=0)
    status, out, _ = run(capsys, "inspect", "--json", unknown, *clean_batch, empty)
    assert status == 1
    data = json.loads(out)
    assert isinstance(data, list) and len(data) == 6
    for item in data:
        assert {"file", "object", "delimiter", "encoding", "bom", "rows", "problems", "order"} <= set(item)
        assert isinstance(item["problems"], list) and all(isinstance(p, str) for p in item["problems"])
        assert isinstance(item["rows"], int) and isinstance(item["bom"], bool)
        if item["object"] is None:
            assert item["problems"], item
    assert [item["order"] for item in data] == [1, 2, 3, 4, 5, 6]
    assert [item["object"] for item in data] == ["term", "person", "course", "membership", None, None]
    assert {item["file"] for item in data[4:]} == {"export.txt", "empty.txt"}
    by_file = {item["file"]: item for item in data}
    assert by_file["terms.csv"]["delimiter"] == "comma"
    people = by_file["people.txt"]
    assert (people["delimiter"], people["encoding"], people["rows"], people["bom"]) == (
        "pipe",
        "utf-8",
        2,
        False,
    )
    assert by_file["empty.txt"]["problems"] == ["the file is empty (0 bytes): the SIS export produced nothing"]


def test_inspect_exit_0_when_all_clean_and_1_otherwise(
    tmp_path: Path, clean_batch: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "inspect", "--json", *clean_batch)[0] == 0
    header_only = write(tmp_path, "header.txt", "external_person_key|firstname|lastname|user_id\n")
    assert run(capsys, "inspect", *clean_batch, header_only)[0] == 1


@pytest.mark.parametrize(
    ("content", "detected", "expected"),
    [
        ("external_person_key|user_id\n".encode("utf-16-le"), None, "UTF-16"),  # without its BOM
        (b"\x00\x01\x02\x03", None, "binary"),
        (
            "external_person_key|firstname|lastname|user_id\nP1|José|X|j\n".encode("latin-1"),
            "person",
            "not UTF-8",
        ),
        (b"   \n\n", None, "only blank lines"),
        (b"id|name\n1|x\n", None, "unrecognized header"),
    ],
)
def test_inspect_rejects_unusable_files_with_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, detected: str | None, expected: str
) -> None:
    status, out, _ = run(capsys, "inspect", "--json", write(tmp_path, "bad.txt", content))
    assert status == 1
    (item,) = json.loads(out)
    assert item["object"] == detected
    assert len(item["problems"]) == 1 and expected in item["problems"][0]


def test_inspect_missing_file_is_a_problem_not_a_traceback(
    tmp_path: Path, clean_batch: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "inspect", tmp_path / "nope.txt", clean_batch[0])
    assert status == 1
    assert "Traceback" not in out + err
    assert "nope.txt: the file does not exist (check the path)" in out
    status, out, _ = run(capsys, "inspect", "--json", tmp_path / "nope.txt")
    assert status == 1
    assert json.loads(out)[0]["problems"] == ["the file does not exist (check the path)"]


def test_inspect_a_folder_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "inspect", "--json", tmp_path)
    assert status == 1
    assert json.loads(out)[0]["problems"] == ["is a folder, not a file"]


def test_inspect_object_forces_the_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cats = write(tmp_path, "cats.txt", "external_category_key|title|data_source_key\nCAT|Math|SIS\n")
    status, out, _ = run(capsys, "inspect", "--json", "--object", "organizationcategory", cats)
    assert status == 0
    assert json.loads(out)[0]["object"] == "organizationcategory"


def test_inspect_with_a_route_shows_the_integrations_delimiter_and_without_one_detects_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13.1: the delimiter belongs to the Learn integration (default pipe); `inspect --route` says so."""
    ini = write_config(tmp_path, "http://127.0.0.1:9")  # inspect never connects
    comma = write_flatfile(tmp_path / "people.csv", PEOPLE_HEADER, person_rows(2), delimiter=",")

    status, out, _ = run(capsys, "inspect", comma)
    assert status == 0 and "comma" in out and "expected" not in out

    status, out, _ = run(capsys, "-c", ini, "inspect", "--route", "sis", comma)
    assert status == 1
    assert "comma (pipe expected)" in out
    assert "reads pipe-delimited files only" in out
    assert "separated by comma" in out and "expects pipe" in out

    status, out, _ = run(capsys, "-c", ini, "inspect", "--route", "sis", "--json", comma)
    assert status == 1 and json.loads(out)[0]["expected_delimiter"] == "pipe"

    ini = write_config(tmp_path, "http://127.0.0.1:9", target_extra="delimiter = comma")
    status, out, err = run(capsys, "-c", ini, "inspect", "--route", "sis", comma)
    assert status == 0, out + err
    assert "reads comma-delimited files only" in out and "expected)" not in out


def test_inspect_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as no_files:
        main(["inspect"])
    assert no_files.value.code == 2
    with pytest.raises(SystemExit) as bad_object:
        main(["inspect", "--object", "persons", "x.txt"])
    assert bad_object.value.code == 2
    assert "feed-agent: error:" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# post, status, check, demo, simulate: the other commands, through main([...])


def test_config_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "agent.ini"
    ini.write_text("[agent]\nsettle_secnds = 3\n", encoding="utf-8")
    assert main(["-c", str(ini), "run"]) == 2
    err = capsys.readouterr().err
    assert "settle_secnds" in err and "did you mean 'settle_seconds'" in err


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and "feed-agent" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        main(["post"])
    assert exited.value.code == 2


@pytest.mark.parametrize(("command", "loaded"), [("inspect", False), ("simulate", True)])
def test_only_simulate_loads_the_simulator(command: str, loaded: bool) -> None:
    """Importing the simulator costs every command start-up time; `simulate` still gets all its options."""
    probe = (
        "import sys\nfrom agent.cli import main\ntry:\n    main([sys.argv[1], '--help'])\n"
        "except SystemExit:\n    pass\nprint('simulator loaded:', 'agent.simulator' in sys.modules)"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", probe, command], capture_output=True, text=True, cwd=root, timeout=60)
    assert f"simulator loaded: {loaded}" in done.stdout, done.stderr
    assert ("--rows-per-second" in done.stdout) is loaded


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert out.index("users.txt: sent") < out.index("courses.txt: sent") < out.index("enrollments.txt: sent")
    assert len(list((tmp_path / "demo" / "var" / "outbox").glob("*.eml"))) == 4
    archived = sorted(p.name for p in (tmp_path / "demo" / "var" / "archive").iterdir())
    assert len(archived) == 4 and sum(name.endswith(".log.csv") for name in archived) == 1
    assert "Learn says: " in out and "P9999" in out


def test_python_dash_m_agent_runs_the_cli(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "agent", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("feed-agent ")


@pytest.mark.parametrize("command", ["status", "run"])
def test_a_corrupt_journal_is_one_plain_line_not_a_traceback(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    journal = tmp_path / "var" / "journal.sqlite3"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_bytes(b"this is not a database, whatever happened to it" * 100)
    status, out, err = run(capsys, "-c", ini, command)
    assert status == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("feed-agent:")]
    assert len(lines) == 1 and str(journal) in lines[0] and "Traceback" not in err
    assert "move it aside" in lines[0]


# ------------------------------------------------------------------------------------------------
# run --quiet: what cron mails


def test_run_quiet_prints_nothing_on_a_good_night_and_names_the_file_on_a_bad_one(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    drop = tmp_path / "drop"
    assert run(capsys, "-c", ini, "run", "--quiet") == (0, "", "")  # nothing to do
    write_flatfile(drop / "users.txt", PEOPLE_HEADER, person_rows(2))
    assert run(capsys, "-c", ini, "run", "--quiet") == (0, "", "")  # every file succeeded

    (drop / "junk.txt").write_bytes(b"\x00\x01binary")
    status, out, err = run(capsys, "-c", ini, "run", "--quiet")
    assert (status, out) == (1, "")
    [line] = err.splitlines()
    assert line.startswith("feed-agent: junk.txt REJECTED: ") and str(tmp_path / "var" / "failed") in line


def test_run_with_a_missing_drop_folder_exits_1_naming_it(
    tmp_path: Path, learn_sim: LearnSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    (tmp_path / "drop").rmdir()  # an unmounted share
    status, out, err = run(capsys, "-c", ini, "run", "--quiet")
    assert (status, out) == (1, "")
    assert err == (
        f"feed-agent: route sis: the watched folder {tmp_path / 'drop'} is missing (an unmounted share?); "
        "nothing was taken from it: mount or create it, or fix its permissions\n"
    )


# ------------------------------------------------------------------------------------------------
# post: upload progress on a terminal, nothing extra when piped


def post_command(ini: Path, file: Path) -> list[str]:
    return [sys.executable, "-m", "agent", "-c", str(ini), "post", str(file)]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FEED_AGENT")}


def test_post_shows_upload_progress_on_a_terminal_and_nothing_extra_when_piped(
    tmp_path: Path, learn_sim: LearnSimulator
) -> None:
    ini = write_config(tmp_path, learn_sim.url)
    first, second = tmp_path / "users.txt", tmp_path / "more-users.txt"
    write_flatfile(first, PEOPLE_HEADER, person_rows(2000))
    write_flatfile(second, PEOPLE_HEADER, person_rows(2000))
    size = f"{first.stat().st_size / 1024:.1f} KB"  # post archives the file

    master, terminal = pty.openpty()
    with subprocess.Popen(post_command(ini, first), stdout=terminal, stderr=subprocess.PIPE, env=clean_env()) as post:
        os.close(terminal)
        shown = bytearray()
        while True:
            try:
                piece = os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not piece:
                break
            shown += piece
        assert post.wait(timeout=120) == 0, post.stderr.read() if post.stderr else ""
    os.close(master)
    text = shown.decode()
    assert f"\r  uploaded: {size} in " in text  # a local simulator takes it too fast for a rate

    piped = subprocess.run(post_command(ini, second), capture_output=True, text=True, env=clean_env(), timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "uploading:" not in piped.stdout and "uploaded:" not in piped.stdout and "\r" not in piped.stdout
    assert piped.stderr == ""
    assert "result: SUCCESS" in piped.stdout
