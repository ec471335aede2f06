"""The tool only ever switches and rolls back targets it manages: never a system folder, a symlink it did not
make, or a generation named by a path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Synthetic, cli


@pytest.mark.parametrize("venv", ["/", "/usr", "/tmp"])
def test_a_system_folder_as_venv_is_refused(tmp_path: Path, venv: str) -> None:
    stack = Synthetic(tmp_path / "stack")
    before = sorted(os.listdir(venv))
    proc = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", venv, "--store", str(stack.store), cwd=tmp_path)
    assert proc.returncode == 2 and "system or home folder" in proc.stderr and "Traceback" not in proc.stderr
    assert not Path(venv + ".generations").exists() and sorted(os.listdir(venv)) == before


def test_a_symlink_the_tool_did_not_make_is_never_replaced(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    mine = tmp_path / "my-own-env"
    mine.mkdir()
    stack.target.symlink_to(mine)
    proc = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(stack.target), "--store", str(stack.store),
               cwd=tmp_path)
    assert proc.returncode == 2 and "did not make" in proc.stderr
    assert os.readlink(stack.target) == str(mine)


@pytest.mark.parametrize("name", ["../../etc", "/tmp", "g1", "g0001/../../x"])
def test_rollback_to_accepts_only_generation_names(tmp_path: Path, name: str) -> None:
    stack = Synthetic(tmp_path / "stack")
    stack.install()
    stack.install(force=True)
    proc = cli("rollback", "--venv", str(stack.target), "--to", name, cwd=tmp_path)
    assert proc.returncode == 2 and "not a generation name" in proc.stderr
    assert os.readlink(stack.target) == ".venv.generations/g0002"


def test_export_index_never_writes_over_a_folder_of_the_users_files(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "dependencies.json").write_text("my own file\n")
    (mine / "notes.txt").write_text("keep me\n")
    args = ["--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house)]
    proc = cli("export-index", str(mine), *args, cwd=tmp_path)
    assert proc.returncode == 2 and "notes.txt" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["dependencies.json", "notes.txt"]
    assert (mine / "dependencies.json").read_text() == "my own file\n"
    out = tmp_path / "index"
    assert cli("export-index", str(out), *args, cwd=tmp_path).returncode == 0
    assert cli("export-index", str(out), *args, cwd=tmp_path).returncode == 0, "its own export: rewritten"
