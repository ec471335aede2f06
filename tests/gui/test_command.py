"""`immutable-installer gui` as a user starts it: the real console command on a real X server (Xvfb, Qt's xcb
plugin, no window manager), typed at with xdotool, looked at with ImageMagick's `import`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Synthetic

pytestmark = pytest.mark.gui


@pytest.fixture
def display() -> Iterator[str]:
    server = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None
    number = server.stdout.readline().strip()
    assert number.isdigit(), "Xvfb did not start"
    yield f":{number}"
    server.terminate()
    server.wait(10)


def window_id(env: dict[str, str], proc: subprocess.Popen[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        found = subprocess.run(["xdotool", "search", "--name", "^immutable-installer: "], env=env,
                               capture_output=True, text=True)
        if found.stdout.strip():
            return found.stdout.split()[0]
        time.sleep(0.2)
    raise AssertionError("the window never appeared")


def test_the_gui_command_opens_a_real_window_and_ctrl_q_closes_it(display: str, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    script = Path(sys.executable).with_name("immutable-installer")
    proc = subprocess.Popen([str(script), "gui", "--manifest", str(stack.manifest_path), "--venv", str(stack.target),
                             "--wheelhouse", str(stack.house), "--store", str(stack.store), "--variant", "cpu",
                             "--skip-wheelhouse"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wid = window_id(env, proc)
        geometry = subprocess.run(["xdotool", "getwindowgeometry", wid], env=env, capture_output=True,
                                  text=True).stdout
        assert "1280x800" in geometry, geometry
        time.sleep(2)  # the plan is read by child runs of the CLI
        shot = tmp_path / "shot.png"
        subprocess.run(["import", "-display", display, "-window", "root", str(shot)], check=True, timeout=30)
        colours = subprocess.run(["identify", "-format", "%k", str(shot)], capture_output=True, text=True).stdout
        assert int(colours) > 20, "a window was drawn, not a blank screen"
        subprocess.run(["xdotool", "windowfocus", "--sync", wid, "key", "ctrl+q"], env=env, check=True, timeout=30)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert not stack.target.exists(), "opening the window installs nothing"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_a_display_the_gui_command_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "immutable_installer", "gui"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: no display to open the window on") and "Traceback" not in proc.stderr
