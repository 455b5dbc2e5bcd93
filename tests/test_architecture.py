"""The house rules of `agent/`, checked on every run (docs/architecture.md explains them).

- No import cycle, counting every import: module level, function-local and `TYPE_CHECKING` ones.
- Imports only point down the floors listed in `FLOORS` (a module may import its own floor or lower).
- No module over 500 lines.
- The Learn simulator imports nothing of the agent outside its own package (a shared parser would
  hide the agent's bugs from every test).
- Every module is on a floor, and docs/architecture.md names every module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agent"
MAX_LINES = 500

# Floor of each module, lowest first. A module may import modules of its own floor or lower floors.
FLOORS: dict[int, tuple[str, ...]] = {
    0: (
        "agent",
        "agent.errors",
        "agent.clock",
        "agent.failpoints",
        "agent.interrupts",
        "agent.printable",
        "agent.processes",
        "agent.heap",
        "agent.mailpolicy",
    ),
    1: (
        "agent.retry",
        "agent.records",
        "agent.settings",
        "agent.feeds",
        "agent.advice",
        "agent.envfile",
        "agent.callbacks",
        "agent.hashing",
        "agent.worklock",
    ),
    2: (
        "agent.keysets",
        "agent.linescan",
        "agent.parallelscan",
        "agent.mounts",
        "agent.listing",
        "agent.readiness",
        "agent.ini",
        "agent.logs",
        "agent.heartbeat",
        "agent.archive",
        "agent.targets",
        "agent.targets.base",
        "agent.targets.http",
        "agent.targets.pacing",
        "agent.targets.s3keys",
        "agent.targets.s3retry",
        "agent.targets.s3abort",
        "agent.decoding",
        "agent.logdigest",
        "agent.receiver",
    ),
    3: (
        "agent.config",
        "agent.inspection",
        "agent.journal_schema",
        "agent.journal_base",
        "agent.journal_jobs",
        "agent.journal_episodes",
        "agent.targets.learn_status",
        "agent.targets.learn_rest",
        "agent.targets.s3errors",
        "agent.observers",
        "agent.batching",
    ),
    4: ("agent.journal", "agent.targets.learn", "agent.targets.s3", "agent.watcher", "agent.batchitem"),
    5: ("agent.targets.jobapi", "agent.completions", "agent.claims", "agent.recordlogs"),
    6: ("agent.profiles",),
    7: (
        "agent.wording",
        "agent.wording_guards",
        "agent.wording_posts",
        "agent.wording_troubles",
        "agent.guard",
        "agent.strays",
        "agent.wording_files",
        "agent.writecheck",
    ),
    8: (
        "agent.filing",
        "agent.unmoved",
        "agent.reports",
        "agent.logreport",
        "agent.meter",
        "agent.summarylist",
        "agent.troubles",
        "agent.history",
    ),
    9: ("agent.render", "agent.mailer"),
    10: ("agent.spool", "agent.notify", "agent.pipeline"),
    11: ("agent.recovery",),
    12: ("agent.daemon", "agent.commands", "agent.posting", "agent.errorlog"),
    13: ("agent.demo", "agent.cli", "agent.__main__"),
}
SIMULATOR = "agent.simulator"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every agent module this module imports, wherever the import statement stands."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from agent.x import submodule`
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports_of(name) for name in MODULES}


def floor_of(name: str) -> int | None:
    if name == SIMULATOR or name.startswith(SIMULATOR + "."):
        return None
    for floor, names in FLOORS.items():
        if name in names:
            return floor
    raise AssertionError(f"{name} is on no floor: add it to FLOORS here and to docs/architecture.md")


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name: str) -> None:
    here = floor_of(name)
    if here is None:
        outside = sorted(m for m in GRAPH[name] if not m.startswith(SIMULATOR))
        assert not outside, f"the simulator must not import the agent: {name} imports {outside}"
        return
    upward = sorted(m for m in GRAPH[name] if (floor_of(m) or 0) > here)
    assert not upward, f"{name} (floor {here}) imports higher floors: {upward}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it along its parts"


def test_every_module_is_on_a_floor_and_in_the_map() -> None:
    listed = {name for names in FLOORS.values() for name in names}
    unknown = sorted(listed - set(MODULES))
    assert not unknown, f"FLOORS names modules that do not exist: {unknown}"
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in MODULES:
        floor_of(name)
        if name == SIMULATOR or name.startswith(SIMULATOR + "."):
            continue  # the package is mapped as a whole
        if name in ("agent", "agent.__main__", "agent.targets"):
            continue
        path = str(MODULES[name].relative_to(ROOT))
        assert path in doc, f"docs/architecture.md does not mention {path}"
    assert "agent/simulator/" in doc, "docs/architecture.md does not map the simulator package"
