"""A built wheel ships the code, the console command and, as data, the templates and config examples.

Why: `pip install .` and a wheel copied to an offline server must bring the default email
templates, the documented example config and the systemd unit template along; setup.cfg's
`[options.data_files]` globs silently match nothing when a path is wrong, so only a build shows it.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import agent

REPO = Path(__file__).resolve().parent.parent
SOURCE_ITEMS = ("agent", "templates", "conf", "setup.cfg", "pyproject.toml", "README.md")
CONF_DATA = ("agent.ini.example", ".env.example", "feed-agent.service")
PROBE_TEMPLATE = "packaging_probe.txt.j2"

pytestmark = pytest.mark.timeout(240)


def _copy_source(dest: Path) -> Path:
    """Builds from a copy so build/ and *.egg-info never appear in the shared checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "agent.ini")
    for item in SOURCE_ITEMS:
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, dest / item, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, dest / item)
    # A template that exists only in the copy proves the glob itself, whatever templates exist today.
    (dest / "templates" / PROBE_TEMPLATE).write_text("{{ probe }}\n", encoding="utf-8")
    return dest


def _build_isolation_args() -> tuple[list[str], str]:
    """Offline build when this venv has the build backend, else let pip fetch it (cached)."""
    if importlib.util.find_spec("setuptools") and importlib.util.find_spec("wheel"):
        return ["--no-build-isolation"], "the venv's setuptools and wheel"
    return [], "an isolated build environment"


@dataclass(frozen=True)
class Built:
    """The wheel and the source copy it was built from (other work may change the checkout meanwhile)."""

    wheel: zipfile.ZipFile
    source: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("packaging")
    source = _copy_source(root / "src")
    out = root / "dist"
    isolation, how = _build_isolation_args()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    if (
        result.returncode != 0
        and not isolation
        and ("No matching distribution" in output or "Could not find a version" in output)
    ):
        pytest.skip(
            f"the build dependencies (setuptools>=61, wheel) are not installed and cannot be fetched: {output[-400:]}"
        )
    assert result.returncode == 0, f"wheel build with {how} failed:\n{output}"
    (wheel_path,) = out.glob("feed_agent-*.whl")
    return Built(zipfile.ZipFile(wheel_path), source)


def _data_files(wheel: zipfile.ZipFile) -> set[str]:
    """Paths of the wheel's data files as pip installs them, relative to the environment's prefix."""
    prefix = f"feed_agent-{agent.__version__}.data/data/"
    return {name[len(prefix) :] for name in wheel.namelist() if name.startswith(prefix)}


def test_wheel_ships_every_template_under_share(built: Built) -> None:
    wheel = built.wheel
    templates = built.source / "templates"
    expected = {f"share/feed-agent/templates/{p.name}" for p in templates.glob("*.j2")}
    assert f"share/feed-agent/templates/{PROBE_TEMPLATE}" in expected
    shipped = {path for path in _data_files(wheel) if path.startswith("share/feed-agent/templates/")}
    assert shipped == expected


def test_wheel_ships_the_config_examples_and_unit_template(built: Built) -> None:
    wheel = built.wheel
    data = _data_files(wheel)
    prefix = f"feed_agent-{agent.__version__}.data/data/"
    for name in CONF_DATA:
        assert f"share/feed-agent/conf/{name}" in data
        assert wheel.read(f"{prefix}share/feed-agent/conf/{name}") == (REPO / "conf" / name).read_bytes()
    assert "share/feed-agent/conf/agent.ini" not in data, "a site's own config must never be packaged"


def test_wheel_ships_the_package_and_the_console_command(built: Built) -> None:
    wheel = built.wheel
    names = set(wheel.namelist())
    shipped_modules = {n for n in names if n.startswith("agent/") and n.endswith(".py")}
    source = built.source
    expected_modules = {p.relative_to(source).as_posix() for p in (source / "agent").rglob("*.py")}
    assert "agent/cli.py" in expected_modules
    assert shipped_modules == expected_modules
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "feed-agent = agent.cli:entry_point" in wheel.read(entry_points).decode()
