"""Real stacks from the public index, as a new user tries them: plain requirements locked, installed and
verified first time, each requested package at the version uv chooses for the same requirements (or the lock
says why not). The longer corpus (30+ stacks, uv's install side by side) is ``benchmarks/stacks.py``; its latest
table is docs/stacks.md.

Each stack is a case the tool once got wrong or a layout real wheels have: auditwheel's ``*.libs`` folders
(scikit-learn, pillow), a second top-level package needing an optional dependency (duckdb), a namespace package
(protobuf), a private extension module (pyyaml's ``_yaml``), an sdist-only dependency (hydra-core's antlr4), start-up
code (setuptools' ``.pth``), a dependency held back by the Python patch level (soupsieve).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import cli
from immutable_installer.core.manifest import load_manifest
from immutable_installer.runner import uv_binary
from immutable_installer.wheelhouse.sdist_build import sandbox_available

pytestmark = [pytest.mark.network, pytest.mark.slow]


@dataclass(frozen=True)
class Stack:
    name: str
    requirements: tuple[str, ...]
    imports: tuple[str, ...]  # what verify must import (the modules these distributions are known by)
    flags: tuple[str, ...] = ()  # lock options the stack needs (said by the plain lock's output)
    secondary: tuple[str, ...] = ()
    held_back: tuple[str, ...] = field(default=())  # packages the lock must say it held back


STACKS = [
    Stack("requests", ("requests",), ("requests",)),
    Stack("scikit-learn", ("scikit-learn",), ("sklearn",)),
    Stack("pillow", ("pillow",), ("PIL",)),
    Stack("duckdb", ("duckdb",), ("duckdb",), secondary=("adbc_driver_duckdb",)),
    Stack("protobuf", ("protobuf",), ("google.protobuf",)),
    Stack("yaml-attrs", ("pyyaml", "attrs"), ("attrs", "yaml"), secondary=("attr",)),
    # omegaconf 2.4 needs an older hydra-core: held back, said, as uv holds it back too
    Stack("hydra", ("hydra-core", "omegaconf"), ("hydra", "omegaconf"), ("--build", "antlr4-python3-runtime"),
          held_back=("omegaconf",)),
    Stack("setuptools", ("setuptools",), ("setuptools",), ("--allow-pth", "distutils-precedence.pth")),
    Stack("beautifulsoup4", ("beautifulsoup4",), ("bs4",), held_back=("soupsieve",)),
]


def _uv_choice(stack: Stack, tmp: Path) -> dict[str, str]:
    """What uv pins for the same requirements on this interpreter (its own default: it may build sdists)."""
    reqs = tmp / "uv.in"
    reqs.write_text("\n".join(stack.requirements) + "\n")
    out = subprocess.run([uv_binary(), "pip", "compile", str(reqs), "--python", sys.executable, "--no-config",
                          "--no-header", "--quiet", "--no-annotate"], capture_output=True, text=True, check=True)
    return dict(line.split("==", 1) for line in out.stdout.split() if "==" in line)


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
def test_a_real_stack_locks_installs_and_verifies_first_time(stack: Stack, tmp_path: Path) -> None:
    if "--build" in stack.flags and not sandbox_available():
        pytest.skip("bubblewrap contains sdist builds (.ci/run installs it)")
    lock = cli("lock", *stack.requirements, *stack.flags, "-o", "deps.json", "--json", cwd=tmp_path)
    assert lock.returncode == 0, lock.stderr
    events = [json.loads(line) for line in lock.stdout.splitlines()]
    manifest = load_manifest(tmp_path / "deps.json")
    assert manifest.verify.imports == tuple(sorted(stack.imports))
    assert set(stack.secondary) <= set(manifest.verify.secondary_imports)
    held = {e["package"] for e in events if e["event"] == "held_back"}
    assert held == set(stack.held_back), [e for e in events if e["event"] == "held_back"]

    install = cli("install", "--manifest", "deps.json", "--venv", ".venv", "--variant", "auto", "--json",
                  cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    verify = cli("verify", "--venv", ".venv", "--manifest", "deps.json", "--json", cwd=tmp_path)
    report = json.loads(verify.stdout)
    assert verify.returncode == 0 and report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    imported = next(c for c in report["checks"] if c["name"] == "imports")
    assert imported["status"] == "pass" and all(m in imported["detail"] for m in stack.imports)

    ours = {p.name: p.version for p in manifest.packages}
    theirs = {k.lower(): v for k, v in _uv_choice(stack, tmp_path).items()}
    for requirement in stack.requirements:
        name = requirement.lower()
        assert ours[name] == theirs[name], f"{name}: ours {ours[name]}, uv's {theirs[name]}"


def test_a_stack_that_needs_an_option_is_refused_naming_it(tmp_path: Path) -> None:
    """Without the option, setuptools' start-up file is refused at install with the option that allows it, and
    the lock has said so already: one line, the exact cause, the fix."""
    lock = cli("lock", "setuptools", "-o", "deps.json", cwd=tmp_path)
    assert lock.returncode == 0 and "lock --allow-pth distutils-precedence.pth" in lock.stderr.replace("\n", " ")
    install = cli("install", "--manifest", "deps.json", "--venv", ".venv", "--variant", "auto", cwd=tmp_path)
    assert install.returncode == 7 and "distutils-precedence.pth" in install.stderr
    assert not (tmp_path / ".venv").exists()
