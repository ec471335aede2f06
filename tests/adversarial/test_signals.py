"""SIGTERM and SIGHUP stop an install the way Ctrl-C does: children ended, the unfinished generation and the
store's temporaries removed, one line, exit 143 / 129 (130 for SIGINT), the previous environment intact.

The signal goes to the installer's own pid only (what `kill PID`, systemd or a closed terminal send), not to its
process group as a terminal's Ctrl-C would: its children never hear of it, so the installer must end them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SLOW_TO_COMPILE, Synthetic, store_files

SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (read from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("signum", "code"), SIGNALS, ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_to_the_installer_alone_ends_its_children_and_keeps_the_target(tmp_path: Path, signum: int,
                                                                                code: int) -> None:
    stack = Synthetic(tmp_path, extra={"big-pkg": {"big_pkg/__init__.py": SLOW_TO_COMPILE}})
    stack.install()
    empty = tmp_path / "empty-store"
    proc = subprocess.Popen([sys.executable, "-m", "immutable_installer", "install", "--manifest",
                             str(stack.manifest_path), "--venv", str(stack.target), "--wheelhouse", str(stack.house),
                             "--skip-wheelhouse", "--variant", "cpu", "--force", "--json", "--store", str(empty)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"name": "store"' in line:  # compiling the slow module in child processes
            break
    deadline = time.monotonic() + 30
    helpers: set[int] = set()
    while not helpers and time.monotonic() < deadline:
        helpers = children_of(proc.pid)
        time.sleep(0.05)
    assert helpers, "the store fill runs compilers in child processes"
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    name = signal.Signals(signum).name
    assert err.strip().splitlines()[-1] == f"interrupted by {name}; the previous environment is untouched", err
    assert "Traceback" not in err
    last = json.loads(out.strip().splitlines()[-1])
    assert (last["event"], last["kind"], last["exit_code"]) == ("error", "interrupted", code)
    time.sleep(0.2)
    assert not [pid for pid in helpers if alive(pid)], "no child is left running"
    assert os.readlink(stack.target) == ".venv.generations/g0001"
    assert sorted(p.name for p in (tmp_path / ".venv.generations").iterdir() if p.is_dir()) == ["g0001"]
    assert not store_files(empty), "no half-built store entry and no temporary is left"
