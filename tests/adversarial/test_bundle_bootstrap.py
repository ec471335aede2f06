"""A hand-edited bundle cannot plant what the bootstrap runs or reuses: a ``.tool`` or ``.venv`` that came with
the folder has no seal made on this machine and is refused before anything runs; what the bootstrap made itself
is reused, until one of its files is replaced."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import Synthetic, cli, offline_env

pytestmark = pytest.mark.network  # the bundle carries the tool's own wheels, fetched from an index


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile-bundle")
    stack = Synthetic(root / "stack")
    out = root / "stack.tar"
    proc = cli("bundle", "-o", str(out), "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house),
               cwd=root)
    assert proc.returncode == 0, proc.stderr
    return out


def _extract(out: Path, where: Path) -> Path:
    with tarfile.open(out) as tar:
        tar.extractall(where, filter="data")
    return where / "stack"


def _boot(top: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(top / "install.sh"), "--variant", "cpu"], cwd=top.parent,
                          env=offline_env(home), capture_output=True, text=True, check=False, timeout=900)


def _planted_tool(top: Path, marker: Path) -> None:
    script = top / ".tool" / "bin" / "immutable-installer"
    script.parent.mkdir(parents=True)
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)


def test_a_planted_tool_never_runs(bundle: Path, tmp_path: Path) -> None:
    top = _extract(bundle, tmp_path / "site")
    marker = tmp_path / "PWNED"
    _planted_tool(top, marker)
    proc = _boot(top, tmp_path / "home")
    assert proc.returncode == 2 and "not made by this bootstrap" in proc.stderr, proc.stderr
    assert not marker.exists() and not (top / ".venv").exists()


def test_a_planted_environment_is_never_reported_up_to_date(bundle: Path, tmp_path: Path) -> None:
    """A .venv prepared elsewhere (its shim .pth carrying a payload) arrives with the folder: refused."""
    first = _extract(bundle, tmp_path / "builder")
    assert _boot(first, tmp_path / "builder-home").returncode == 0
    top = _extract(bundle, tmp_path / "victim")
    for name in (".venv", ".venv.generations"):  # the builder's environment, copied in as a bundle would carry it
        subprocess.run(["cp", "-a", str(first / name), str(top / name)], check=True)
    proc = _boot(top, tmp_path / "victim-home")
    assert proc.returncode != 0 and "not made by this bootstrap" in proc.stderr
    assert "up to date" not in proc.stdout + proc.stderr and not (top / ".tool").exists()


def test_what_the_bootstrap_made_is_reused_until_a_file_is_replaced(bundle: Path, tmp_path: Path) -> None:
    top = _extract(bundle, tmp_path / "site")
    home = tmp_path / "home"
    assert _boot(top, home).returncode == 0
    seal = json.loads((top / ".made-here").read_text())
    assert set(json.loads(seal["state"])["made"]) == {".tool", ".venv", ".venv.generations"}
    again = _boot(top, home)  # the same machine, the same folder: reused, nothing rebuilt
    assert again.returncode == 0, again.stderr
    marker = tmp_path / "PWNED"
    tool = top / ".tool" / "bin" / "immutable-installer"
    tool.unlink()  # what extracting a hostile tar over the folder does: the file is replaced
    tool.write_text(f"#!/bin/sh\ntouch {marker}\n")
    tool.chmod(0o755)
    proc = _boot(top, home)
    assert proc.returncode != 0 and "not made by this bootstrap" in proc.stderr and not marker.exists()
