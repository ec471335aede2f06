"""A machine without Qt's system libraries fails the test run in one line naming the Debian packages: the
window's tests never turn into a silent skip and a green run that tested no window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

# a plugin loaded before the tests: PySide6's widgets fail as they do when libEGL is not installed
NO_QT = '''
import importlib.abc, sys

class NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "PySide6.QtWidgets":
            raise ImportError("libEGL.so.1: cannot open shared object file: No such file or directory")
        return None

sys.meta_path.insert(0, NoQt())
'''


def run_window_tests(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "no_qt.py").write_text(NO_QT)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no_qt", "-p", "no:cacheprovider",
                           str(REPO / "tests" / "gui"), *extra], cwd=REPO, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)}, timeout=300)


def test_missing_qt_libraries_fail_the_run_naming_the_packages(tmp_path: Path) -> None:
    proc = run_window_tests(tmp_path, "--co")
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error: not 0, not "skipped"
    lines = [line for line in proc.stderr.splitlines() if "window's tests" in line]
    assert len(lines) == 1 and "libEGL.so.1" in lines[0] and "apt-get install libegl1" in lines[0], proc.stderr


def test_deselecting_the_window_tests_is_a_choice_that_works(tmp_path: Path) -> None:
    proc = run_window_tests(tmp_path, "--co", "-m", "not gui", "-p", "no:pytest-qt")
    assert proc.returncode in (0, 5), proc.stdout + proc.stderr
