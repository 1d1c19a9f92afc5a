"""The one-way data flow, enforced: collectors -> store <- costing <- tui / report / notify / metrics.

Every import in the source is read (module level and inside functions, where the lazy ones live), so a new
module is covered the day it is added. Composition (wiring collectors to the store and the engine to a
surface) happens only in the CLI and its commands, the daemon, the demo and the TUI's in-app collector.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

TREES = {"gpuspend": ROOT / "gpuspend", "gpuspend.tui": ROOT / "tui", "gpuspend.collectors": ROOT / "collectors"}

# Modules allowed to compose: they start collectors, open screens or pick a surface.
COMPOSERS = ("gpuspend.cli", "gpuspend.commands", "gpuspend.daemon", "gpuspend.demo", "gpuspend.__main__",
             "gpuspend.tui.collect", "gpuspend.tui.app")
# What collectors write through: the store and the small shared helpers below it.
ENGINE = ("gpuspend.costing", "gpuspend.snapshot", "gpuspend.forecast", "gpuspend.pricing", "gpuspend.budget",
          "gpuspend.alerts", "gpuspend.alert_kinds", "gpuspend.report", "gpuspend.metrics", "gpuspend.fleet",
          "gpuspend.notify")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, base in TREES.items():
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join((pkg, *rel))] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    # Dotted strings that name modules to load later ("gpuspend.collectors.x:attr") count as imports too.
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            target = node.value.split(":")[0]
            if target.startswith("gpuspend.") and " " not in target:
                found.add(target)
    return found


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(source: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for name, path in sorted(_modules().items()):
        if not _within(name, source) or _within(name, allowed):
            continue
        for imp in sorted(_imports(name, path)):
            if _within(imp, forbidden):
                bad.append(f"{name} imports {imp}")
    return bad


def test_the_walker_sees_lazy_and_string_imports() -> None:
    """Guard against a test that cannot fail: the walker must see the CLI's lazy import of the TUI."""
    mods = _modules()
    assert "gpuspend.tui.app" in mods and "gpuspend.collectors.nvml" in mods
    assert any(i.startswith("gpuspend.tui") for i in _imports("gpuspend.cli", mods["gpuspend.cli"]))
    assert "gpuspend.collectors.clouds.task" in _imports("gpuspend.daemon", mods["gpuspend.daemon"])


def test_collectors_write_the_store_and_never_read_the_engine_or_the_tui() -> None:
    assert _violations(("gpuspend.collectors",), (*ENGINE, *COMPOSERS, "gpuspend.tui", "textual", "rich")) == []


def test_the_core_never_imports_the_tui_or_textual() -> None:
    core_allowed = ("gpuspend.cli", "gpuspend.tui")
    assert _violations(("gpuspend",), ("gpuspend.tui", "textual"), allowed=core_allowed) == []


def test_the_engine_reads_the_store_never_the_collectors() -> None:
    assert _violations(ENGINE, ("gpuspend.collectors",)) == []


def test_surfaces_other_than_composers_do_not_start_collectors() -> None:
    surfaces = ("gpuspend.tui",)
    assert _violations(surfaces, ("gpuspend.collectors",), allowed=COMPOSERS) == []
