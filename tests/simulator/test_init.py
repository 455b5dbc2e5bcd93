"""The simulator package: its public names, and its independence from the rest of the agent."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import agent.simulator

PACKAGE = Path(agent.simulator.__file__).resolve().parent
MAX_LINES = 500


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    modules += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    return modules


def test_simulator_imports_only_the_standard_library_and_itself():
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) > 5
    for path in files:
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top == "agent":
                assert module.startswith("agent.simulator."), f"{path.name} imports {module}"
            else:
                assert top in sys.stdlib_module_names or top == "__future__", f"{path.name} imports {module}"


def test_no_module_is_over_500_lines():
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES, path.name


def test_public_names_stay_importable_from_the_package():
    for name in ("LearnSimulator", "Faults", "Upload", "DataSetInfo", "add_arguments", "run_from_args"):
        assert hasattr(agent.simulator, name), name
    assert agent.simulator.JobApiSimulator.__module__ == "agent.simulator.jobapi"
