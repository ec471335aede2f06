"""The import direction between stages (docs/architecture.md), read from the source of every module.

A small AST reader instead of a plugin: it sees function-level (lazy) imports too, which the CLI uses for
start-up speed and which a dependency graph built from module-level imports alone would miss.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "immutable_installer"

# stage -> the stages it may import (besides itself and the version in ``immutable_installer/__init__.py``)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "shims": set(),
    "probe": set(),
    "runner": {"core"},
    "dists": {"core"},
    "net": {"core", "runner"},  # net.py and net_settings.py (which asks pip for the user's configuration)
    "hardware": {"core", "runner"},
    "interpreters": {"core", "runner"},
    "removal": {"core"},
    "wheelhouse": {"core", "runner", "dists", "net", "interpreters"},
    "lock": {"core", "runner", "wheelhouse", "dists", "net", "interpreters"},
    "verify": {"core", "runner", "shims", "dists"},
    "store": {"core", "runner", "dists", "removal"},
    "generation": {"core", "runner", "wheelhouse", "verify", "shims", "store", "hardware", "dists", "net",
                   "interpreters", "removal"},
    "pipeline": {"core", "runner", "wheelhouse", "verify", "shims", "store", "generation", "hardware", "dists",
                 "net", "interpreters", "removal"},
    # push and pull: images from a generation and its store entries, entries from images
    "oci": {"core", "net", "dists", "store", "generation"},
    "cli": {"core", "runner", "wheelhouse", "lock", "verify", "generation", "store", "hardware", "pipeline",
            "shims", "dists", "net", "gui", "interpreters", "removal", "oci"},
    # the window runs the CLI as a child process and renders its JSON: it needs nothing below but the exit codes
    "gui": {"core"},
    "version": set(),
    "main": {"cli"},
}
# what the pure core never touches: processes, the network, threads, the terminal
CORE_FORBIDDEN = {"subprocess", "socket", "ssl", "http", "urllib.request", "concurrent", "threading",
                  "multiprocessing", "rich", "typer", "filelock", "virtualenv", "pip"}


def stage_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    if rel.parts == ("__init__.py",):
        return "version"
    if rel.parts == ("__main__.py",):
        return "main"
    if len(rel.parts) == 1:  # runner.py, hardware.py, pipeline.py: one adapter or stage each
        return "net" if rel.parts[0] == "net_settings.py" else rel.parts[0][:-3]
    if rel.parts == ("verify", "probe.py"):
        return "probe"
    return rel.parts[0]


def target_stage(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "immutable_installer":
        return None
    if len(parts) == 1:
        return "version"
    if parts[1] in ("runner", "hardware", "pipeline", "net"):
        return parts[1]
    if parts[1] == "net_settings":
        return "net"
    if parts[1:3] == ["verify", "probe"]:
        return "probe"
    return parts[1]


def imports(path: Path) -> list[str]:
    """Every module named by an import statement anywhere in the file (``from immutable_installer.x import y`` gives
    both ``immutable_installer.x`` and ``immutable_installer.x.y``, since ``y`` may be a submodule)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            if node.module == "immutable_installer":
                out += [f"immutable_installer.{alias.name}" for alias in node.names if alias.name != "__version__"]
    return out


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_known_stage() -> None:
    assert {stage_of(p) for p in modules()} <= set(ALLOWED)


def test_stages_import_only_downwards() -> None:
    wrong = []
    for path in modules():
        own = stage_of(path)
        for module in imports(path):
            target = target_stage(module)
            if target not in (None, own, "version") and target not in ALLOWED[own]:
                wrong.append(f"{path.relative_to(REPO)} ({own}) imports {module} ({target})")
    assert not wrong, "\n".join(wrong)


def test_core_has_no_side_effect_imports() -> None:
    wrong = [f"{p.relative_to(REPO)} imports {m}" for p in modules() if stage_of(p) == "core"
             for m in imports(p) if m in CORE_FORBIDDEN or m.split(".")[0] in CORE_FORBIDDEN]
    assert not wrong, "\n".join(wrong)


def test_nothing_but_the_cli_imports_the_window() -> None:
    wrong = [f"{p.relative_to(REPO)} imports {m}" for p in modules() if stage_of(p) not in ("cli", "gui")
             for m in imports(p) if target_stage(m) == "gui"]
    assert not wrong, "\n".join(wrong)


def test_nothing_below_the_cli_imports_it() -> None:
    wrong = [f"{p.relative_to(REPO)} imports {m}" for p in modules() if stage_of(p) not in ("cli", "main")
             for m in imports(p) if target_stage(m) == "cli"]
    assert not wrong, "\n".join(wrong)


def test_shims_and_probe_import_nothing_of_the_tool() -> None:
    """They run inside target environments, where ``immutable_installer`` is never installed."""
    wrong = [f"{p.relative_to(REPO)} imports {m}" for p in modules() if stage_of(p) in ("shims", "probe")
             and p.name != "__init__.py" for m in imports(p) if m.split(".")[0] == "immutable_installer"]
    assert not wrong, "\n".join(wrong)


def test_the_reader_sees_a_violation(tmp_path: Path) -> None:
    """The checks above would pass vacuously if the reader found no imports: prove it finds lazy ones."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from immutable_installer.cli import app\n    from immutable_installer import blacklist\n")
    assert imports(bad) == ["immutable_installer.cli", "immutable_installer", "immutable_installer.blacklist"]
