"""Every child the tool starts gets the same clean environment, interpreter discovery included: a
``sitecustomize`` on ``PYTHONPATH`` or a ``.pth`` in the user site never runs in one, and an interpreter is
identified by what it reports under ``-I -S``, never by what a hook makes it say. ``PYTHONINSPECT`` does not
turn the exit code into 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Synthetic, write_json

OTHER = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"  # a Python the tool finds by discovery


def _other_python_available() -> bool:
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    return bool(shutil.which(f"python{OTHER}") or list(Path(root, "versions").glob(f"{OTHER}.*/bin/python{OTHER}")))


def _hostile_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PYTHONPATH with a sitecustomize that logs every process it runs in and swaps sys.executable for a wrapper;
    a user-site .pth that logs too."""
    log = tmp_path / "ran.log"
    evil = tmp_path / "evil"
    evil.mkdir()
    wrapper = evil / "python-wrapper"
    wrapper.write_text(f"#!/bin/sh\necho wrapper >> {log}\nexec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    (evil / "sitecustomize.py").write_text(
        f"import sys\nopen({str(log)!r}, 'a').write('sitecustomize ' + sys.executable + '\\n')\n"
        f"sys.executable = {str(wrapper)!r}\n")
    home = tmp_path / "home"
    for minor in (f"{sys.version_info[0]}.{sys.version_info[1]}", OTHER):
        user_site = home / ".local" / "lib" / f"python{minor}" / "site-packages"
        user_site.mkdir(parents=True)
        (user_site / "evil.pth").write_text(f"import os; open({str(log)!r}, 'a').write('user-site .pth\\n')\n")
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))  # the user's pyenv, as before
    env = {**os.environ, "PYTHONPATH": str(evil), "HOME": str(home), "PYENV_ROOT": pyenv}
    env.pop("PYTHONNOUSERSITE", None)
    return env, log


def _tool(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The tool run isolated (``-I``) by the user, as the issue reports: its own process is clean."""
    return subprocess.run([sys.executable, "-I", "-m", "immutable_installer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False, timeout=900)


@pytest.mark.skipif(not _other_python_available(), reason=f"python{OTHER} is needed for discovery")
def test_discovery_and_every_child_run_clean(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    data = json.loads(stack.manifest_path.read_text())
    data["python"]["version"] = OTHER  # the store compiles with an interpreter python-discovery finds
    write_json(stack.manifest_path, data)
    env, log = _hostile_env(tmp_path)
    proc = _tool(["install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
                  "--wheelhouse", str(stack.house), "--venv", str(stack.target), "--store", str(stack.store)],
                 tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert not log.exists(), log.read_text()  # no sitecustomize, no user-site .pth, no wrapper in any child
    receipt = json.loads((stack.target / "installer-receipt.json").read_text())
    assert receipt["python"] == OTHER
    cfg = (stack.target / "pyvenv.cfg").read_text()
    assert "python-wrapper" not in cfg and "evil" not in cfg


def test_the_exit_code_survives_pythoninspect(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    env = {**os.environ, "PYTHONINSPECT": "1"}
    bad = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--manifest",
                          str(tmp_path / "missing.json"), "--venv", str(stack.target)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=False, timeout=300, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "SystemExit" not in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    good = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant",
                           "cpu", "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house), "--venv",
                           str(stack.target), "--store", str(stack.store)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=600, stdin=subprocess.DEVNULL)
    assert good.returncode == 0 and "SystemExit" not in good.stderr, good.stderr
