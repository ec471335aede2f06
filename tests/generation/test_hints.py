"""Hints work as written: each runnable hint names a command that, run as written, gets the user further."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from conftest import Index, Synthetic, cli, make_wheel


def hinted_command(stderr: str) -> list[str]:
    line = next(ln for ln in stderr.splitlines() if ln.startswith("hint:"))
    command = re.search(r"`immutable-installer ([^`]+)`", line)
    assert command, line
    return shlex.split(command.group(1))


def test_platform_mismatch_hint_locks_for_this_machine(tmp_path: Path, index: Index) -> None:
    make_wheel(index.root, "app", "1.0")
    win = cli("lock", "app", "--index-url", index.url, "--isolated", "--platform", "windows", cwd=tmp_path)
    assert win.returncode == 0, win.stderr
    refused = cli("install", "--dry-run", "--variant", "cpu", cwd=tmp_path)
    assert refused.returncode == 2 and "win_amd64: os_name 'nt' (here 'posix')" in refused.stderr
    command = hinted_command(refused.stderr)
    assert command[:2] == ["lock", "--platform"]
    relocked = cli(*command, "app", "--index-url", index.url, "--isolated", cwd=tmp_path)
    assert relocked.returncode == 0, relocked.stderr
    assert cli("install", "--dry-run", "--variant", "cpu", cwd=tmp_path).returncode == 0


def test_incomplete_wheelhouse_hint_downloads(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    (tmp_path / "metadata").mkdir()
    data = json.loads(stack.manifest_path.read_text())
    (tmp_path / "metadata" / "dependencies.json").write_text(json.dumps(data))
    missing = stack.wheels["tiny-a"]
    missing.rename(tmp_path / missing.name)
    # an empty store of its own: a store holding tiny-a would install it without the wheel
    refused = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--store", str(stack.store), cwd=tmp_path)
    assert refused.returncode == 4
    command = hinted_command(refused.stderr)
    assert command[0] == "download"
    got = cli(*command, "--variant", "cpu", "--find-links", str(tmp_path), cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert cli("install", "--skip-wheelhouse", "--variant", "cpu", cwd=tmp_path).returncode == 0
