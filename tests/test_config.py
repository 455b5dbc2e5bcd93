"""`agent.config`: the INI + `.env` contract of DESIGN.md, its error messages and secret hygiene.

Every test writes a real config file (and `.env`) under `tmp_path` and loads it with an explicit
environment, so the machine's own variables never leak in.
"""

from __future__ import annotations

import io
import logging
import traceback
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import default_config_path, load_config
from agent.errors import ConfigError
from agent.logs import RedactingFilter
from agent.settings import Config, JobTargetSettings, LearnTargetSettings, S3TargetSettings

PASSWORDS = {
    "LEARN_PASSWORD": "learn-pw-Zq81",
    "S3_SECRET": "s3-secret-Kp02",
    "JOB_SECRET": "job-secret-Wx77",
    "JOB_API_KEY": "api-key-Hn45",
    "SMTP_PASSWORD": "smtp-pw-Rt19",
}

FULL = """
[agent]
work_dir = ../var
settle_seconds = 2.5
batch_window_seconds = 0.5
observer = polling
rescan_seconds = 30
ready_suffix = .done
ignore = .*, *.tmp
archive_retention_days = 30
env_file = ../.env

[route:learn]
watch = ../var/drop
target = learn
operation = refresh
on_failure = continue
expect_every_hours = 24

[route:cats]
watch = /srv/drop-categories
target = learn
object = organizationcategory

[route:handshake]
watch = ../var/drop-handshake
target = handshake

[route:alumniq]
watch = ../var/drop-alumniq
target = alumniq

[target:learn]
type = learn
url = https://learn.example.edu/
integration = BB5bfc25366f037
username = ${LEARN_USERNAME}
password = ${LEARN_PASSWORD}
verify_tls = no
poll_initial_seconds = 1
poll_max_seconds = 30
timeout_minutes = 0.25
long_run_minutes = 10
refresh_guard_percent = 15
delete_guard_rows = 250
store_warn_percent = 40
add_bom = yes

[target:handshake]
type = s3
bucket = handshake-importer-uploads
prefix = /importer-production-x/
region = us-east-1
key = {date:%Y%m%d}_{name}
access_key_id = ${S3_KEY_ID}
secret_access_key = ${S3_SECRET}
endpoint_url = http://127.0.0.1:9000

[target:alumniq]
type = job
bucket = private-school
access_key_id = AKIAEXAMPLE
secret_access_key = ${JOB_SECRET}
job_url = https://school.alumniq.com/api/warehouse/{job}
api_key = ${JOB_API_KEY}
notify_email = ops@example.edu

[email]
transport = smtp
host = smtp.example.edu
security = ssl
username = ${SMTP_USERNAME}
password = ${SMTP_PASSWORD}
from = feed-agent@example.edu
to = a@example.edu, b@example.edu
per_file = no
summary = yes
templates_dir = ../templates

[heartbeat]
url = https://hc.example.org/ping/abc/
"""

ENV_FILE = "\n".join(
    [
        "LEARN_USERNAME=integration-user",
        "S3_KEY_ID=AKIAFROMENV",
        "SMTP_USERNAME=mailer",
        *(f"{k}={v}" for k, v in PASSWORDS.items()),
    ]
)


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    """`tmp_path/conf/agent.ini` and `tmp_path/.env`, like an install; returns the conf folder."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (tmp_path / ".env").write_text(ENV_FILE + "\n")
    return conf


def write_config(conf: Path, text: str, name: str = "agent.ini") -> Path:
    path = conf / name
    path.write_text(text)
    return path


def minimal(extra: str = "", target: str = "") -> str:
    """The smallest valid config plus `extra` sections (and a replacement learn target)."""
    return (
        "[agent]\nwork_dir = ../var\n\n[route:learn]\nwatch = ../var/drop\ntarget = learn\n\n"
        + (
            target
            or "[target:learn]\ntype = learn\nurl = https://learn.example.edu\nintegration = BBLEARN\n"
            "username = ${LEARN_USERNAME}\npassword = ${LEARN_PASSWORD}\n"
        )
        + "\n"
        + extra
    )


def load_error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={} if environ is None else environ)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------
# A full, valid configuration


def test_full_config_loads_every_section(layout: Path) -> None:
    path = write_config(layout, FULL)
    config = load_config(path, environ={})
    root = layout.parent.resolve()

    agent = config.agent
    assert agent.work_dir == root / "var"
    assert (agent.settle_seconds, agent.batch_window_seconds, agent.rescan_seconds) == (2.5, 0.5, 30.0)
    assert (agent.observer, agent.ready_suffix, agent.ignore) == ("polling", ".done", (".*", "*.tmp"))
    assert agent.archive_retention_days == 30.0
    assert agent.env_file == root / ".env"
    assert agent.journal_path == root / "var" / "journal.sqlite3"

    assert [r.name for r in config.routes] == ["learn", "cats", "handshake", "alumniq"]
    learn_route = config.route("learn")
    assert learn_route.watch == root / "var" / "drop"
    assert (learn_route.operation, learn_route.on_failure, learn_route.expect_every_hours) == (
        "refresh",
        "continue",
        24.0,
    )
    cats = config.route("cats")
    assert (cats.watch, cats.object, cats.operation, cats.on_failure) == (
        Path("/srv/drop-categories"),
        "organizationcategory",
        "store",
        "hold",
    )
    assert config.route() is config.routes[0]

    learn = config.target_for(learn_route)
    assert isinstance(learn, LearnTargetSettings)
    assert (learn.url, learn.integration, learn.verify_tls) == (
        "https://learn.example.edu",
        "BB5bfc25366f037",
        False,
    )
    assert learn.username.reveal() == "integration-user"
    assert learn.password.reveal() == PASSWORDS["LEARN_PASSWORD"]
    assert (learn.poll_initial_seconds, learn.poll_max_seconds, learn.timeout_minutes) == (1.0, 30.0, 0.25)
    assert (learn.long_run_minutes, learn.refresh_guard_percent, learn.add_bom) == (10.0, 15.0, "yes")
    assert (learn.delete_guard_rows, learn.store_warn_percent) == (250, 40.0)

    s3 = config.targets["handshake"]
    assert isinstance(s3, S3TargetSettings)
    assert (s3.bucket, s3.prefix, s3.region, s3.key) == (
        "handshake-importer-uploads",
        "importer-production-x/",
        "us-east-1",
        "{date:%Y%m%d}_{name}",
    )
    assert (s3.access_key_id.reveal(), s3.secret_access_key.reveal()) == ("AKIAFROMENV", "s3-secret-Kp02")
    assert (s3.endpoint_url, s3.verify_tls) == ("http://127.0.0.1:9000", True)

    job = config.targets["alumniq"]
    assert isinstance(job, JobTargetSettings)
    assert (job.job_url, job.job, job.key, job.region) == (
        "https://school.alumniq.com/api/warehouse/{job}",
        "{stem}",
        "{name}",
        "eu-central-1",
    )
    assert job.access_key_id.reveal() == "AKIAEXAMPLE"  # a key id may be written plainly
    assert job.api_key.reveal() == PASSWORDS["JOB_API_KEY"]
    assert job.notify_email == "ops@example.edu"

    email = config.email
    assert (email.transport, email.host, email.port, email.security) == (
        "smtp",
        "smtp.example.edu",
        465,
        "ssl",
    )
    assert email.username is not None and email.username.reveal() == "mailer"
    assert email.password is not None and email.password.reveal() == PASSWORDS["SMTP_PASSWORD"]
    assert (email.from_addr, email.to) == ("feed-agent@example.edu", ("a@example.edu", "b@example.edu"))
    assert (email.per_file, email.summary, email.templates_dir) == ("no", True, root / "templates")
    assert email.give_up_hours == 72

    assert config.heartbeat.url == "https://hc.example.org/ping/abc"


def test_defaults_of_a_minimal_config(layout: Path) -> None:
    config = load_config(write_config(layout, minimal()), environ={})
    assert config.agent.settle_seconds == 10.0
    assert config.agent.observer == "auto"
    assert config.agent.ignore == (".*", "*.tmp", "*.part", "~*")
    learn = config.targets["learn"]
    assert isinstance(learn, LearnTargetSettings)
    assert (learn.timeout_minutes, learn.refresh_guard_percent, learn.add_bom, learn.verify_tls) == (
        120.0,
        10.0,
        "auto",
        True,
    )
    assert (config.email.transport, config.email.port, config.heartbeat.url) == ("file", 587, "")
    assert config.route().operation == "store"


def test_relative_paths_resolve_against_the_config_folder_not_the_cwd(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(write_config(layout, minimal("[email]\ntemplates_dir = mytemplates\n")), environ={})
    assert config.agent.work_dir == (layout.parent / "var").resolve()
    assert config.route().watch == (layout.parent / "var" / "drop").resolve()
    assert config.email.templates_dir == (layout / "mytemplates").resolve()


# ---------------------------------------------------------------------------------------------
# ${VAR} substitution


def test_variables_come_from_env_file_and_the_environment_wins(layout: Path) -> None:
    path = write_config(layout, minimal())
    from_file = load_config(path, environ={})
    assert from_file.targets["learn"].password.reveal() == PASSWORDS["LEARN_PASSWORD"]  # type: ignore[union-attr]
    from_env = load_config(path, environ={"LEARN_PASSWORD": "from-systemd"})
    assert from_env.targets["learn"].password.reveal() == "from-systemd"  # type: ignore[union-attr]


def test_env_file_setting_is_relative_to_the_config(layout: Path) -> None:
    (layout / "secrets.env").write_text("LEARN_USERNAME=u\nLEARN_PASSWORD=p-from-secrets\n")
    text = minimal().replace("work_dir = ../var\n", "work_dir = ../var\nenv_file = secrets.env\n")
    config = load_config(write_config(layout, text), environ={})
    assert config.agent.env_file == (layout / "secrets.env").resolve()
    assert config.targets["learn"].password.reveal() == "p-from-secrets"  # type: ignore[union-attr]


def test_missing_variable_names_file_section_key_and_variable(layout: Path) -> None:
    (layout.parent / ".env").write_text("LEARN_USERNAME=u\n")
    path = write_config(layout, minimal())
    message = load_error(path)
    assert str(path) in message
    assert "[target:learn] password" in message
    assert "${LEARN_PASSWORD} is not set" in message
    assert "LEARN_PASSWORD" in message and ".env" in message


def test_a_missing_env_file_named_in_agent_is_reported_as_missing(layout: Path) -> None:
    (layout.parent / ".env").unlink()
    text = minimal().replace("work_dir = ../var\n", "work_dir = ../var\nenv_file = ../secrets.env\n")
    message = load_error(write_config(layout, text), environ={"LEARN_USERNAME": "u", "LEARN_PASSWORD": "p"})
    assert "[agent] env_file" in message
    assert f"{(layout.parent / 'secrets.env').resolve()} does not exist" in message
    assert "is not set" not in message and "empty" not in message


def test_a_missing_default_env_file_is_named_when_a_variable_is_missing(layout: Path) -> None:
    (layout.parent / ".env").unlink()
    message = load_error(write_config(layout, minimal()))
    assert "${LEARN_USERNAME} is not set" in message
    assert f"the env_file {(layout.parent / '.env').resolve()} does not exist" in message


def test_without_a_default_env_file_the_environment_is_enough(layout: Path) -> None:
    (layout.parent / ".env").unlink()
    config = load_config(write_config(layout, minimal()), environ={"LEARN_USERNAME": "u", "LEARN_PASSWORD": "p"})
    assert config.targets["learn"].password.reveal() == "p"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("'my pass #1'", "my pass #1"),
        ('"my pass #1"', "my pass #1"),
        ("x${HOME}y", "x${HOME}y"),
        ("'x${HOME}y'", "x${HOME}y"),
        ("pa#ss", "pa#ss"),
        ("  spaced  ", "spaced"),
    ],
)
def test_env_values_are_taken_literally(layout: Path, written: str, expected: str) -> None:
    (layout.parent / ".env").write_text(f"LEARN_USERNAME=u\nLEARN_PASSWORD={written}\n")
    config = load_config(write_config(layout, minimal()), environ={"HOME": "/root"})
    assert config.targets["learn"].password.reveal() == expected  # type: ignore[union-attr]


def test_an_unquoted_env_value_with_a_comment_mark_is_refused(layout: Path) -> None:
    (layout.parent / ".env").write_text("# secrets\nLEARN_USERNAME=u\n\nLEARN_PASSWORD=my pass #1\n")
    message = load_error(write_config(layout, minimal()))
    assert f"{layout.parent / '.env'} line 4" in message
    assert "LEARN_PASSWORD" in message and "LEARN_PASSWORD='…'" in message
    assert "my pass" not in message  # never the value


def test_an_unreadable_env_line_is_refused_with_its_line(layout: Path) -> None:
    (layout.parent / ".env").write_text("LEARN_USERNAME=u\nLEARN_PASSWORD='unclosed\n")
    message = load_error(write_config(layout, minimal()))
    assert "line 2" in message and "unclosed quote" in message


def test_a_literal_dollar_brace_is_kept_with_a_warning(layout: Path, caplog: pytest.LogCaptureFixture) -> None:
    (layout.parent / ".env").write_text("LEARN_USERNAME=u\nLEARN_PASSWORD=x${HOME}y\n")
    with caplog.at_level(logging.WARNING):
        load_config(write_config(layout, minimal()), environ={})
    assert "line 2: the value of LEARN_PASSWORD contains ${…}; it is taken literally" in caplog.text
    assert "x${HOME}y" not in caplog.text


# ---------------------------------------------------------------------------------------------
# One line per value


def test_an_indented_line_is_an_error_naming_file_line_and_key(layout: Path) -> None:
    text = "[agent]\nwork_dir = ../var\n  settle_seconds = 10\n\n[route:learn]\nwatch = ../var/drop\ntarget = learn\n"
    path = write_config(layout, text)
    message = load_error(path)
    assert f"{path} line 3" in message and "'work_dir' in [agent]" in message
    assert not (layout.parent / "var\nsettle_seconds = 10").exists()


def test_an_indented_line_after_a_blank_line_still_counts(layout: Path) -> None:
    text = minimal().replace("target = learn\n", "target = learn\n\n    operation = refresh\n", 1)
    message = load_error(write_config(layout, text))
    assert "line 8" in message and "'target' in [route:learn]" in message


def test_indented_comments_and_an_indented_first_key_are_fine(layout: Path) -> None:
    text = minimal().replace("[agent]\n", "[agent]\n  ; a comment\n") + "[email]\n  transport = file\n"
    config = load_config(write_config(layout, text), environ={})
    assert config.email.transport == "file"


def test_variable_in_a_plain_setting(layout: Path) -> None:
    text = minimal().replace("url = https://learn.example.edu", "url = https://${LEARN_HOST}")
    path = write_config(layout, text)
    assert "[target:learn] url: ${LEARN_HOST} is not set" in load_error(path)
    config = load_config(path, environ={"LEARN_HOST": "lms.example.edu"})
    assert config.targets["learn"].url == "https://lms.example.edu"  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Errors name file, section and key, and say what is allowed


def test_unknown_key_suggests_the_right_one(layout: Path) -> None:
    path = write_config(layout, minimal().replace("target = learn", "target = learn\noperaton = store"))
    message = load_error(path)
    assert f"{path} [route:learn] operaton: unknown key; did you mean 'operation'?" in message
    assert "allowed here:" in message and "on_failure" in message


def test_unknown_key_in_agent_and_target(layout: Path) -> None:
    path = write_config(layout, minimal().replace("work_dir = ../var", "work_dir = ../var\nsettle_secs = 3"))
    assert "[agent] settle_secs: unknown key; did you mean 'settle_seconds'?" in load_error(path)
    path = write_config(layout, minimal().replace("integration = BBLEARN", "integration = BBLEARN\ntimeout = 3"))
    assert "[target:learn] timeout: unknown key; did you mean 'timeout_minutes'?" in load_error(path)


def test_unknown_section(layout: Path) -> None:
    path = write_config(layout, minimal("[heartbeet]\nurl =\n"))
    message = load_error(path)
    assert f"{path} [heartbeet]: unknown section; did you mean [heartbeat]?" in message
    assert "[route:NAME]" in message


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            "settle_seconds = ten",
            "[agent] settle_seconds: 'ten' is not a number of seconds (decimals allowed",
        ),
        ("settle_seconds = -1", "[agent] settle_seconds: -1 is out of range; it must be at least 0 seconds"),
        ("rescan_seconds = nan", "[agent] rescan_seconds: nan is out of range"),
        (
            "observer = inotify",
            "[agent] observer: 'inotify' is not allowed; use one of: auto, native, polling",
        ),
    ],
)
def test_bad_agent_values(layout: Path, setting: str, expected: str) -> None:
    path = write_config(layout, minimal().replace("work_dir = ../var", f"work_dir = ../var\n{setting}"))
    assert expected in load_error(path)


def test_decimal_durations(layout: Path) -> None:
    text = minimal().replace("integration = BBLEARN", "integration = BBLEARN\ntimeout_minutes = 0.25")
    config = load_config(write_config(layout, text), environ={})
    assert config.targets["learn"].timeout_minutes == 0.25  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "target = learn",
            "target = learn\noperation = upsert",
            "[route:learn] operation: 'upsert' is not allowed; use one of: store, refresh, refreshlegacy, delete",
        ),
        (
            "target = learn",
            "target = learn\non_failure = skip",
            "[route:learn] on_failure: 'skip' is not allowed; use one of: hold, continue",
        ),
        (
            "target = learn",
            "target = learn\nobject = persons",
            "[route:learn] object: 'persons' is not a Learn object type; did you mean 'person'?",
        ),
        (
            "type = learn",
            "type = blackboard",
            "[target:learn] type: 'blackboard' is not allowed; use one of: learn, s3, job",
        ),
        (
            "integration = BBLEARN",
            "integration = BB LEARN",
            "[target:learn] integration: 'BB LEARN' is not an integration id",
        ),
        (
            "url = https://learn.example.edu",
            "url = learn.example.edu",
            "[target:learn] url: 'learn.example.edu' is not an http(s) URL",
        ),
    ],
)
def test_bad_choices_list_the_allowed_values(layout: Path, old: str, new: str, expected: str) -> None:
    path = write_config(layout, minimal().replace(old, new))
    message = load_error(path)
    assert str(path) in message and expected in message


def test_guard_settings_default_and_range(layout: Path) -> None:
    learn = load_config(write_config(layout, minimal()), environ={}).targets["learn"]
    assert isinstance(learn, LearnTargetSettings)
    assert (learn.delete_guard_rows, learn.store_warn_percent) == (100, 50.0)
    path = write_config(layout, minimal().replace("type = learn", "type = learn\nstore_warn_percent = 150"))
    assert "[target:learn] store_warn_percent: 150 is out of range (0 to 100)" in load_error(path)
    path = write_config(layout, minimal().replace("type = learn", "type = learn\ndelete_guard_rows = -1"))
    assert "[target:learn] delete_guard_rows: -1" in load_error(path)


def test_email_choice_and_port(layout: Path) -> None:
    path = write_config(layout, minimal("[email]\ntransport = smtp\nhost = h\nto = a@x.edu\nsecurity = tls\n"))
    assert "[email] security: 'tls' is not allowed; use one of: starttls, ssl, none" in load_error(path)
    path = write_config(layout, minimal("[email]\ntransport = smtp\nhost = h\nto = a@x.edu\nport = 99999\n"))
    assert "[email] port: 99999 is out of range (1 to 65535)" in load_error(path)
    path = write_config(layout, minimal("[email]\ntransport = smtp\nto = a@x.edu\n"))
    assert "[email] host: is required when transport = smtp" in load_error(path)


@pytest.mark.parametrize(
    ("written", "expected"), [("yes", "yes"), ("On", "yes"), ("0", "no"), ("problems", "problems")]
)
def test_per_file_takes_yes_no_or_problems(layout: Path, written: str, expected: str) -> None:
    config = load_config(write_config(layout, minimal(f"[email]\nper_file = {written}\n")), environ={})
    assert config.email.per_file == expected


def test_per_file_and_give_up_hours_refuse_other_values(layout: Path) -> None:
    path = write_config(layout, minimal("[email]\nper_file = errors\n"))
    assert "[email] per_file: 'errors' is not allowed; use one of: yes, no, problems" in load_error(path)
    path = write_config(layout, minimal("[email]\ngive_up_hours = soon\n"))
    assert "[email] give_up_hours: 'soon' is not a number of hours" in load_error(path)


def test_route_naming_a_missing_target(layout: Path) -> None:
    path = write_config(layout, minimal().replace("target = learn", "target = lms"))
    assert f"{path} [route:learn] target: no [target:lms] section (targets: learn)" in load_error(path)


def test_a_route_declares_latin1_for_learn_files_only(layout: Path) -> None:
    """Issue 13.8: `encoding = latin-1` (default utf-8) tells how Learn reads the route's BOM-less files."""
    assert load_config(write_config(layout, minimal()), environ={}).route("learn").encoding == "utf-8"
    text = minimal().replace("target = learn\n", "target = learn\nencoding = Latin-1\n", 1)
    assert load_config(write_config(layout, text), environ={}).route("learn").encoding == "latin-1"
    path = write_config(layout, text.replace("Latin-1", "cp1252"))
    assert "[route:learn] encoding: 'cp1252' is not allowed; use one of: utf-8, latin-1" in load_error(path)
    s3 = (
        "[route:hs]\nwatch = ../var/hs\ntarget = hs\nencoding = latin-1\n\n[target:hs]\ntype = s3\n"
        "bucket = b-bucket\nregion = eu-central-1\naccess_key_id = AKIAEXAMPLE\nsecret_access_key = ${S3_SECRET}\n"
    )
    path = write_config(layout, minimal(s3))
    assert "[route:hs] encoding: applies to Learn targets only" in load_error(path, dict(PASSWORDS))


def test_two_routes_on_one_folder(layout: Path) -> None:
    path = write_config(layout, minimal("[route:second]\nwatch = ../var/./drop\ntarget = learn\n"))
    message = load_error(path)
    assert "[route:second] watch:" in message and "already watched by [route:learn]" in message


@pytest.mark.parametrize(
    ("key", "section_text"),
    [
        ("password", "password = hunter2-literal"),
        ("secret_access_key", None),
        ("api_key", None),
    ],
)
def test_a_literal_secret_in_the_ini_is_refused(layout: Path, key: str, section_text: str | None) -> None:
    if key == "password":
        text = minimal().replace("password = ${LEARN_PASSWORD}", section_text or "")
    else:
        job = (
            "[target:job]\ntype = job\nbucket = my-bucket\naccess_key_id = AK\n"
            "secret_access_key = ${S3_SECRET}\njob_url = https://x.example.edu/{job}\n"
            "api_key = ${JOB_API_KEY}\n"
        ).replace(f"{key} = ${{", f"{key} = literal-value-{{")
        text = minimal(job)
    path = write_config(layout, text)
    message = load_error(path)
    assert f"] {key}: secrets must not be written in the INI" in message
    assert "hunter2" not in message and "literal-value" not in message


def test_literal_smtp_password_is_refused(layout: Path) -> None:
    path = write_config(layout, minimal("[email]\ntransport = smtp\nhost = h\nto = a@x.edu\npassword = pw123\n"))
    message = load_error(path)
    assert "[email] password: secrets must not be written in the INI" in message and "pw123" not in message


def test_missing_file_and_unreadable_ini(tmp_path: Path) -> None:
    assert "configuration file not found" in load_error(tmp_path / "nope.ini")
    broken = tmp_path / "broken.ini"
    broken.write_text("this is not an ini file\n")
    assert f"{broken}: cannot be read as an INI file" in load_error(broken)


def test_default_config_path_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEED_AGENT_CONFIG", str(tmp_path / "x.ini"))
    assert default_config_path() == tmp_path / "x.ini"
    monkeypatch.delenv("FEED_AGENT_CONFIG")
    assert default_config_path().name == "agent.ini"


# ---------------------------------------------------------------------------------------------
# Secrets never show


def test_config_repr_logging_and_tracebacks_never_show_secrets(layout: Path) -> None:
    config = load_config(write_config(layout, FULL), environ={})
    values = list(PASSWORDS.values())
    assert not any(v in repr(config) for v in values)
    assert not any(v in str(config) for v in values)

    stream = io.StringIO()
    logger = logging.getLogger("test-config-secrets")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        logger.warning("settings: %s %r", config.targets["learn"], config.email)
        try:
            raise RuntimeError(f"cannot reach {config.targets['handshake']!r} with {config.email.password}")
        except RuntimeError:
            logger.exception("failed with %s", config)
            text = traceback.format_exc()
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "LearnTargetSettings(" in logged and "Secret('***')" in logged
    assert "Traceback" in text and "S3TargetSettings(" in text
    for value in values:
        assert value not in logged
        assert value not in text


def test_secrets_lists_every_secret_for_redaction(layout: Path) -> None:
    config = load_config(write_config(layout, FULL), environ={})
    found = set(config.secrets())
    assert set(PASSWORDS.values()) <= found
    assert {"integration-user", "AKIAFROMENV", "mailer"} <= found
    redactor = RedactingFilter(found)
    assert "s3-secret-Kp02" not in redactor.redact("key=s3-secret-Kp02 pw=learn-pw-Zq81")


def test_config_is_frozen(layout: Path) -> None:
    config: Config = load_config(write_config(layout, minimal()), environ={})
    with pytest.raises(AttributeError):
        config.agent.settle_seconds = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# The CLI turns any configuration error into exit 2 with the message on stderr


def test_cli_check_with_a_bad_config_exits_2(layout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(layout, minimal().replace("target = learn", "target = learn\noperaton = store"), "bad.ini")
    status = main(["-c", str(path), "check"])
    captured = capsys.readouterr()
    assert status == 2
    assert "configuration error" in captured.err
    assert f"{path} [route:learn] operaton: unknown key; did you mean 'operation'?" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


def test_cli_with_a_missing_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(tmp_path / "absent.ini"), "status"]) == 2
    assert "configuration file not found" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# [webhook] and the dead-man's switch of job targets

JOB_TARGET = (
    "[route:alumniq]\nwatch = ../var/drop-alumniq\ntarget = alumniq\n\n"
    "[target:alumniq]\ntype = job\nbucket = private-school\naccess_key_id = AKIAEXAMPLE\n"
    "secret_access_key = ${JOB_SECRET}\njob_url = https://school.alumniq.com/api/warehouse/{job}\n"
    "api_key = ${JOB_API_KEY}\n"
)


def test_webhook_is_off_by_default_and_the_deadline_is_three_hours(layout: Path) -> None:
    config = load_config(write_config(layout, minimal(JOB_TARGET)), environ={})
    assert not config.webhook.enabled and config.webhook.public_url == ""
    job = config.targets["alumniq"]
    assert isinstance(job, JobTargetSettings) and job.notify_within_hours == 3.0


def test_webhook_listen_public_url_and_a_fractional_deadline(layout: Path) -> None:
    text = minimal(
        JOB_TARGET + "notify_within_hours = 0.25\n\n[webhook]\nlisten = 0.0.0.0:8787\n"
        "public_url = https://feeds.example.edu/alumniq/\n"
    )
    config = load_config(write_config(layout, text), environ={})
    assert config.webhook.address == ("0.0.0.0", 8787)
    assert config.webhook.public_url == "https://feeds.example.edu/alumniq"
    job = config.targets["alumniq"]
    assert isinstance(job, JobTargetSettings) and job.notify_within_hours == 0.25


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("listen = 8787\n", "[webhook] listen: '8787' is not host:port"),
        ("listen = localhost:http\n", "[webhook] listen: 'localhost:http' is not host:port"),
        ("listen = 127.0.0.1:70000\n", "is not host:port"),
        ("public_url = https://x.example.edu\n", "[webhook] listen: is empty but public_url is set"),
        ("listen = 127.0.0.1:8787\npublic_url = ftp://x\n", "[webhook] public_url: 'ftp://x' is not an http(s) URL"),
        ("listen = 127.0.0.1:8787\npublic_url = https://x.edu/?a=1\n", "has a query or fragment"),
        ("listen = 127.0.0.1:8787\nport = 1\n", "[webhook] port"),
    ],
)
def test_bad_webhook_settings_say_what_is_wrong(layout: Path, section: str, expected: str) -> None:
    assert expected in load_error(write_config(layout, minimal(JOB_TARGET + "\n[webhook]\n" + section)))


def test_a_fixed_notify_webhook_conflicts_with_the_receiver(layout: Path) -> None:
    text = minimal(JOB_TARGET + "notify_webhook = https://hooks.example.edu/x\n\n[webhook]\nlisten = 127.0.0.1:0\n")
    message = load_error(write_config(layout, text))
    assert "[target:alumniq] notify_webhook: remove it" in message


def test_a_deadline_of_zero_is_refused(layout: Path) -> None:
    message = load_error(write_config(layout, minimal(JOB_TARGET + "notify_within_hours = 0\n")))
    assert "notify_within_hours" in message and "at least" in message


# ---------------------------------------------------------------------------------------------
# Credentials inside a URL are a configuration error, and the URL is never echoed


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            "url = https://learn.example.edu",
            "url = https://sis:Hunter2-url@learn.example.edu",
            "[target:learn] url:",
        ),
        (
            "url = https://learn.example.edu",
            "url = https://learn.example.edu\nrest_url = https://key:Hunter2-url@rest.example.edu/api",
            "[target:learn] rest_url:",
        ),
        ("url = https://learn.example.edu", "url = sis:Hunter2-url@learn.example.edu", "[target:learn] url:"),
        ("[agent]", "[heartbeat]\nurl = https://ping:Hunter2-url@hc.example.org/x\n\n[agent]", "[heartbeat] url:"),
    ],
)
def test_credentials_inside_a_url_are_refused_without_being_shown(layout: Path, old: str, new: str, where: str) -> None:
    message = load_error(write_config(layout, minimal().replace(old, new, 1)))
    assert where in message
    assert "Hunter2-url" not in message and "sis:" not in message


def test_credentials_from_a_variable_inside_a_url_are_refused_too(layout: Path) -> None:
    path = write_config(layout, minimal().replace("url = https://learn.example.edu", "url = https://${CREDS}@lms.edu"))
    message = load_error(path, {"CREDS": "sis:Hunter2-env"})
    assert "[target:learn] url: contains a user name or password" in message
    assert "Hunter2-env" not in message


def test_an_at_sign_in_the_path_is_not_a_credential(layout: Path) -> None:
    path = write_config(layout, minimal("[heartbeat]\nurl = https://hc.example.org/ping/a@b\n"))
    assert load_config(path, environ={}).heartbeat.url == "https://hc.example.org/ping/a@b"


def test_check_refuses_a_learn_url_with_credentials_and_never_prints_them(
    layout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = minimal().replace("url = https://learn.example.edu", "url = https://sis:Hunter2-cli@learn.example.edu")
    path = write_config(layout, text)
    status = main(["-c", str(path), "check"])
    captured = capsys.readouterr()
    assert status == 2
    assert f"{path} [target:learn] url: contains a user name or password" in captured.err
    assert "Hunter2-cli" not in captured.err + captured.out


def with_rest_key(layout: Path) -> None:
    """The REST key defined in the install's .env, as an admin would."""
    env = layout.parent / ".env"
    env.write_text(env.read_text() + "REST_KEY=the-key\n")


def test_a_literal_rest_secret_in_the_ini_is_refused(layout: Path) -> None:
    with_rest_key(layout)
    learn_rest = "password = ${LEARN_PASSWORD}\nrest_key = ${REST_KEY}\nrest_secret = s3cr3t-literal"
    path = write_config(layout, minimal().replace("password = ${LEARN_PASSWORD}", learn_rest))
    message = load_error(path)
    assert "] rest_secret: secrets must not be written in the INI" in message
    assert "s3cr3t-literal" not in message


def test_one_rest_key_alone_is_an_error(layout: Path) -> None:
    with_rest_key(layout)
    learn_rest = "password = ${LEARN_PASSWORD}\nrest_key = ${REST_KEY}"
    path = write_config(layout, minimal().replace("password = ${LEARN_PASSWORD}", learn_rest))
    message = load_error(path)
    assert "[target:learn] rest_secret: is empty but the other REST key is set" in message
    assert "the-key" not in message


def test_outbox_retention_days_defaults_to_30_and_0_keeps_everything(layout: Path) -> None:
    assert load_config(write_config(layout, minimal()), environ={}).email.outbox_retention_days == 30
    path = write_config(layout, minimal("[email]\ntransport = file\noutbox_retention_days = 0\n"))
    assert load_config(path, environ={}).email.outbox_retention_days == 0
    path = write_config(layout, minimal("[email]\noutbox_retention_days = -1\n"))
    assert "[email] outbox_retention_days: -1 is out of range" in load_error(path)
