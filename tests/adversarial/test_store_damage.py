"""The store never lies: a file replaced by a symlink (even to the same bytes) or made writable is damage that
`store verify` reports and `--repair` undoes; a store path that is not a folder is refused, naming it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import Synthetic, cli
from immutable_installer.store.entries import Store


def entry_file(store: Path) -> tuple[str, Path]:
    """A module file of the tiny-a entry."""
    s = Store(store)
    key = next(k for k in s.entry_keys() if s.load(k).meta["name"] == "tiny-a")
    entry = s.load(key)
    rel = next(r for r, _d, _s in entry.files if r.endswith("tiny_a/__init__.py"))
    return key, entry.root / rel


def repair(stack: Synthetic, tmp_path: Path) -> object:
    return cli("store", "verify", "--repair", "--store", str(stack.store), "--wheelhouse", str(stack.house),
               cwd=tmp_path)


def test_a_symlink_to_identical_bytes_is_damage_and_repair_restores_a_read_only_file(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    stack.install()
    _key, victim = entry_file(stack.store)
    twin = tmp_path / "twin.py"
    twin.write_bytes(victim.read_bytes())
    os.chmod(victim.parent, 0o755)
    victim.unlink()
    victim.symlink_to(twin)
    proc = cli("store", "verify", "--store", str(stack.store), cwd=tmp_path)
    assert proc.returncode == 1 and "not a regular file" in proc.stdout + proc.stderr
    assert repair(stack, tmp_path).returncode == 0
    _key, fixed = entry_file(stack.store)
    mode = os.lstat(fixed).st_mode
    assert stat.S_ISREG(mode) and not mode & 0o222
    assert Store(stack.store).verify() == []


def test_a_writable_store_file_is_damage_even_with_the_same_bytes(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    stack.install()
    _key, victim = entry_file(stack.store)
    victim.chmod(0o644)  # same bytes; root could write through it anyway, so the bits are what is checked
    proc = cli("store", "verify", "--store", str(stack.store), cwd=tmp_path)
    assert proc.returncode == 1 and "(writable)" in proc.stdout + proc.stderr
    assert repair(stack, tmp_path).returncode == 0
    assert Store(stack.store).verify() == []


def test_a_store_that_is_not_a_folder_is_refused_by_name(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "store-file"
    not_a_folder.write_text("I am a file\n")
    for args in (["store", "verify"], ["store", "status"], ["store", "gc"]):
        proc = cli(*args, "--store", str(not_a_folder), cwd=tmp_path)
        assert proc.returncode == 2 and str(not_a_folder) in proc.stderr and "Traceback" not in proc.stderr
    broken = tmp_path / "store"
    broken.mkdir()
    (broken / "entries").write_text("not a folder\n")
    proc = cli("store", "verify", "--store", str(broken), cwd=tmp_path)
    assert proc.returncode == 2 and str(broken / "entries") in proc.stderr
    stack = Synthetic(tmp_path / "stack")
    proc = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(stack.target), "--store", str(not_a_folder),
               cwd=tmp_path)
    assert proc.returncode == 2 and str(not_a_folder) in proc.stderr and not stack.target.exists()
    assert not_a_folder.read_text() == "I am a file\n"
