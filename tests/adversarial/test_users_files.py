"""The user's files are never deleted: the tool deletes only what it can prove it made, never through a link,
and refuses (exit 2, untouched) a generations folder that is a link or holds things it did not make, an
environment inside the store, and a target whose path a launcher would read as shell syntax."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import Synthetic, cli


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


def _install(stack: Synthetic, cwd: Path, *extra: str) -> object:
    return cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(stack.target), "--store", str(stack.store), *extra,
               cwd=cwd)


def _users_folder(root: Path) -> Path:
    mine = root / "my-photos"
    (mine / "gallery").mkdir(parents=True)
    (mine / "gallery" / "holiday.jpg").write_bytes(b"\xff\xd8 a photo")
    (mine / "gallery.incomplete").write_text("my notes")
    (mine / "g0001").mkdir()
    (mine / "g0001" / "thesis.tex").write_text("chapter 1")
    return mine


def test_a_generations_folder_that_is_a_link_to_the_users_folder_is_refused(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    mine = _users_folder(tmp_path)
    before = _tree(mine)
    Path(str(stack.target) + ".generations").symlink_to(mine)
    proc = _install(stack, tmp_path, "--keep", "0")
    assert proc.returncode == 2 and "link" in proc.stderr and "Traceback" not in proc.stderr  # type: ignore[attr-defined]
    assert _tree(mine) == before and not os.path.lexists(stack.target)


def test_a_generations_folder_holding_the_users_things_is_refused_untouched(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    assert _install(stack, tmp_path).returncode == 0  # type: ignore[attr-defined]
    root = Path(str(stack.target) + ".generations")
    (root / "gallery").mkdir()
    (root / "gallery" / "holiday.jpg").write_bytes(b"a photo")
    (root / "gallery.incomplete").write_text("notes")
    (root / "g0099").mkdir()  # looks like a generation, is not one: it carries no marker of ours
    (root / "g0099" / "thesis.tex").write_text("chapter 1")
    before = _tree(root)
    proc = _install(stack, tmp_path, "--force", "--keep", "0")
    assert proc.returncode == 2 and "did not make" in proc.stderr  # type: ignore[attr-defined]
    assert "g0099" in proc.stderr and "gallery" in proc.stderr  # type: ignore[attr-defined]
    assert _tree(root) == before  # the current generation and the user's things, every byte


def test_pruning_deletes_only_generations_it_made(tmp_path: Path) -> None:
    """Even a folder named like a generation, in a folder of the tool's own, is not pruned without our marker:
    the refusal above is the first line, this is the second (Generations itself never deletes it)."""
    from immutable_installer.generation.generations import Generations

    stack = Synthetic(tmp_path / "stack")
    stack.install()
    gens = Generations(stack.target)
    impostor = gens.root / "g0000"
    impostor.mkdir()
    (impostor / "thesis.tex").write_text("chapter 1")
    assert "g0000" not in [g.name for g in gens.complete()]
    with pytest.raises(Exception, match="not a generation"):
        gens._remove(impostor)
    assert (impostor / "thesis.tex").read_text() == "chapter 1"


def test_an_environment_inside_the_store_is_refused_and_store_commands_leave_strangers_alone(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    assert _install(stack, tmp_path).returncode == 0  # type: ignore[attr-defined]
    inside = stack.store / "entries" / ".venv"
    proc = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(inside), "--store", str(stack.store), cwd=tmp_path)
    assert proc.returncode == 2 and "inside the store" in proc.stderr and not os.path.lexists(inside)
    stranger = stack.store / "entries" / "someones-env"
    (stranger / "bin").mkdir(parents=True)
    (stranger / "bin" / "python").write_text("#!/bin/sh\n")
    verify = cli("store", "verify", "--store", str(stack.store), cwd=tmp_path)
    assert verify.returncode == 0 and "not a store entry (left alone)" in verify.stdout + verify.stderr
    gc = cli("store", "gc", "--store", str(stack.store), cwd=tmp_path)
    assert gc.returncode == 0 and (stranger / "bin" / "python").is_file()


@pytest.mark.parametrize("name", ["venv\nrm -rf ~", "venv$(touch MARKER)", "venv`touch MARKER`", "ve'nv", 've"nv'])
def test_a_target_a_launcher_would_read_as_shell_syntax_is_refused(tmp_path: Path, name: str) -> None:
    stack = Synthetic(tmp_path / "stack")
    target = tmp_path / name
    proc = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(target), "--store", str(stack.store), cwd=tmp_path)
    assert proc.returncode == 2 and "shell syntax" in proc.stderr, proc.stderr
    assert not os.path.lexists(target) and not os.path.lexists(str(target) + ".generations")
    assert not list(tmp_path.rglob("MARKER"))
