"""Conditions a user can cause get a one-line error with the path and a documented exit code, never "internal
error", and leave nothing half-built: a full disk, a file where a folder should be."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Synthetic, cli, store_files


def install(stack: Synthetic, cwd: Path, venv: Path, store: Path) -> object:
    return cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(venv), "--store", str(store), cwd=cwd)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB filesystem (tmpfs): what a full disk looks like to the tool."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def big_stack(root: Path) -> Synthetic:
    """The synthetic stack plus a wheel whose files take 6 MB once unpacked (the wheel itself is small)."""
    return Synthetic(root, extra={"big-pkg": {"big_pkg/__init__.py": "", "big_pkg/data.txt": "0123456789" * 600_000}})


def test_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    for venv, store in ((blocker / ".venv", tmp_path / "store"), (tmp_path / ".venv", blocker / "store")):
        proc = install(stack, tmp_path, venv, store)
        assert proc.returncode == 2, proc.stderr
        assert str(blocker) in proc.stderr and "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert blocker.read_text() == "not a folder\n"


def test_a_full_disk_under_the_store(tmp_path: Path, tiny_disk: Path) -> None:
    stack = big_stack(tmp_path / "stack")
    proc = install(stack, tmp_path, tmp_path / ".venv", tiny_disk / "store")
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and str(tiny_disk) in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not store_files(tiny_disk / "store"), "no half-built entry is left"
    assert not (tmp_path / ".venv").exists()


def test_a_full_disk_under_the_environment(tmp_path: Path, tiny_disk: Path) -> None:
    stack = big_stack(tmp_path / "stack")
    proc = install(stack, tmp_path, tiny_disk / ".venv", tmp_path / "store")  # another filesystem: files are copied
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "internal error" not in proc.stderr
    assert not (tiny_disk / ".venv").exists()
    assert not list((tiny_disk / ".venv.generations").glob("g*")), "the half-built generation is gone"
