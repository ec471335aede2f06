"""The tool only ever switches and rolls back targets it manages: never a system folder, a symlink it did not
make, or a generation named by a path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Synthetic, cli

# Runs the tool with an audit hook that logs every call that creates, writes, moves or deletes a path: proof of
# what the tool itself did to a folder other programs may be writing in at the same moment (/tmp).
AUDITED = """
import os, runpy, sys
log = open(os.environ["CONFINEMENT_LOG"], "a")
CHANGES = {"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.symlink", "os.link", "os.chmod", "os.chown",
           "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
def hook(event, args):
    named = args[:1] if event == "open" else args  # open's other arguments are its mode and flags
    if event in CHANGES or (event == "open" and isinstance(args[2], int) and args[2] & WRITE):
        log.write(repr((event, [os.fsdecode(a) for a in named if isinstance(a, (str, bytes, os.PathLike))])) + "\\n")
        log.flush()
sys.addaudithook(hook)
sys.argv = ["immutable-installer", *sys.argv[1:]]
runpy.run_module("immutable_installer", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("venv", ["/", "/usr", "/tmp"])
def test_a_system_folder_as_venv_is_refused(tmp_path: Path, venv: str) -> None:
    stack = Synthetic(tmp_path / "stack")
    before = sorted(os.listdir(venv))
    log = tmp_path / "changes.log"
    log.touch()
    proc = subprocess.run([sys.executable, "-c", AUDITED, "install", "--skip-wheelhouse", "--variant", "cpu",
                           "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house), "--venv", venv,
                           "--store", str(stack.store)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO), "CONFINEMENT_LOG": str(log),
                               "TMPDIR": str(tmp_path)})
    assert proc.returncode == 2 and "system or home folder" in proc.stderr and "Traceback" not in proc.stderr
    assert not Path(venv + ".generations").exists()
    touched = [(event, path) for event, paths in map(ast.literal_eval, log.read_text().splitlines())
               for path in paths if os.path.dirname(os.path.abspath(path)) == venv or os.path.abspath(path) == venv]
    assert not touched, f"the tool changed {venv} or a name in it: {touched}"
    if venv != "/tmp":  # nobody else writes there while the test runs
        assert sorted(os.listdir(venv)) == before


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
