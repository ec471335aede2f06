"""Rename mode end to end on Linux: where no link can be made (Wine, FAT/exFAT, some shares) the target is the
current generation's own folder. Installs, rollback, status, verify, gc and console scripts all work there.

The filesystem here can make links, so the probe is told it cannot (the only pretence in this module); an
existing target's mode is read from the target itself, as it is on Windows.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import Synthetic, cli, target_env
from immutable_installer.core.generation_files import generation_name
from immutable_installer.generation import generations as generations_mod
from immutable_installer.store.entries import Store

CLI_FILES = {"clitool/__init__.py": "def main():\n    print('clitool ran')\n    return 0\n",
             "clitool-1.0.dist-info/entry_points.txt": "[console_scripts]\nclitool = clitool:main\n"}


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Synthetic:
    monkeypatch.setattr(generations_mod, "probe_mode", lambda root: "rename")
    return Synthetic(tmp_path, extra={"clitool": CLI_FILES})


def run_script(target: Path) -> str:
    out = subprocess.run([str(target / "bin" / "clitool")], capture_output=True, text=True, env=target_env(),
                         check=True)
    return out.stdout.strip()


def test_install_renames_the_generation_into_place(stack: Synthetic) -> None:
    result = stack.install()
    target = stack.target
    assert not target.is_symlink() and target.is_dir() and generation_name(target) == result.generation == "g0001"
    assert not (stack.root / ".venv.generations" / "g0001").exists()
    script = (target / "bin" / "clitool").read_bytes()
    assert script.startswith(f"#!{target}/bin/python\n".encode())  # the path it has now that it is current
    assert run_script(target) == "clitool ran"
    activate = (target / "bin" / "activate").read_bytes()  # names the target, never the generation's slot
    assert f"VIRTUAL_ENV={target}\n".encode() in activate
    assert b".venv.generations" not in activate


def test_second_install_rollback_status_verify_and_gc(stack: Synthetic) -> None:
    stack.install()
    second = stack.install(force=True)
    target, root = stack.target, stack.root / ".venv.generations"
    assert second.generation == "g0002" and generation_name(target) == "g0002"
    assert generation_name(root / "g0001") == "g0001"  # back in its slot, intact
    assert run_script(target) == "clitool ran"

    gens = stack.engine().generations
    assert gens.mode() == "rename" and [g.name for g in gens.complete()] == ["g0001", "g0002"]
    current = gens.current()
    assert current is not None and current.name == "g0002" and current.path == target

    store = Store(stack.store)
    assert store.gc()["removed"] == []  # the current generation's root is alive in the target

    stack.engine().rollback()
    assert generation_name(target) == "g0001" and generation_name(root / "g0002") == "g0002"
    assert run_script(target) == "clitool ran"

    status = cli("status", "--venv", str(target), "--json", cwd=stack.root)
    assert status.returncode == 0 and '"current": "g0001"' in status.stdout
    verify = cli("verify", "--venv", str(target), "--json", cwd=stack.root)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_new_generation_numbers_count_the_one_in_the_target(stack: Synthetic) -> None:
    stack.install()
    stack.install(force=True, keep=0)
    third = stack.install(force=True, keep=0)
    root = stack.root / ".venv.generations"
    assert third.generation == "g0003" and generation_name(stack.target) == "g0003"
    assert [p.name for p in root.iterdir() if p.name.startswith("g")] == []  # pruned; the current one is kept


def test_a_switch_killed_between_its_renames_is_finished_by_the_next_command(stack: Synthetic) -> None:
    stack.install()
    second = stack.install(force=True)
    target, root = stack.target, stack.root / ".venv.generations"
    # the instant after the current folder went back to its slot and before the new one arrived
    from immutable_installer.generation.switching import journal_path

    os.rename(target, root / "g0002")
    journal = {"mode": "rename", "old": "g0002", "new": "g0001", "root": str(root)}
    journal_path(target).write_text(json.dumps(journal), encoding="utf-8")
    assert not target.exists()
    status = cli("status", "--venv", str(target), "--json", cwd=stack.root)
    assert status.returncode == 0 and '"current": "g0001"' in status.stdout, status.stdout + status.stderr
    assert generation_name(target) == "g0001" and not journal_path(target).exists()
    assert second.generation == "g0002" and generation_name(root / "g0002") == "g0002"


def test_rolling_back_to_the_current_generation_changes_nothing(stack: Synthetic) -> None:
    stack.install()
    stack.install(force=True)
    stack.engine().rollback(to="g0002")  # the current one: its folder is the target itself
    assert generation_name(stack.target) == "g0002" and run_script(stack.target) == "clitool ran"
    assert generation_name(stack.root / ".venv.generations" / "g0001") == "g0001"
