"""File clashes between wheels are refused before anything is built, naming both wheels and the path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, Synthetic, make_wheel, store_files
from immutable_installer.dists.wheel import read_wheel
from immutable_installer.wheelhouse.clashes import find_clashes


def test_installed_files_map_data_scripts_and_entry_points(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "tool", "1.0", files={
        "tool/__init__.py": "", "tool-1.0.data/scripts/raw": "#!python\n",
        "tool-1.0.data/platlib/_ext.py": "", "tool-1.0.dist-info/entry_points.txt": "[console_scripts]\nt = tool:m\n"})
    files = read_wheel(wheel).installed
    assert {"purelib/tool/__init__.py", "scripts/raw", "purelib/_ext.py", "scripts/t"} <= set(files)
    assert files["scripts/t"] == "entry-point=tool:m"


def test_same_path_different_bytes_is_a_clash_same_bytes_is_not(tmp_path: Path) -> None:
    a = make_wheel(tmp_path, "opencv-python", "4.0", files={"cv2/__init__.py": "full\n", "ns/__init__.py": ""})
    b = make_wheel(tmp_path, "opencv-python-headless", "4.0", files={"cv2/__init__.py": "headless\n",
                                                                     "ns/__init__.py": ""})
    clashes = find_clashes({a.name: read_wheel(a).installed, b.name: read_wheel(b).installed})
    assert [c.describe() for c in clashes] == [f"cv2/__init__.py is shipped by both {a.name} and {b.name}"]


def test_install_refuses_a_clash_with_exit_6_and_builds_nothing(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path, extra={"opencv-python": {"cv2/__init__.py": "full\n"},
                                       "opencv-python-headless": {"cv2/__init__.py": "headless\n"}})
    proc = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant", "cpu",
                           "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house),
                           "--venv", str(stack.target), "--store", str(stack.store)],
                          capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(REPO), "PATH": ""},
                          check=False)
    assert proc.returncode == 6, proc.stderr
    assert "cv2/__init__.py is shipped by both opencv_python-1.0" in proc.stderr
    assert "opencv_python_headless-1.0-py3-none-any.whl" in proc.stderr and "Traceback" not in proc.stderr
    assert not stack.target.exists() and not store_files(stack.store)


def test_shared_identical_files_install_once(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path, extra={"nv-one": {"nv/__init__.py": "", "nv/one.py": "A = 1\n"},
                                       "nv-two": {"nv/__init__.py": "", "nv/two.py": "B = 2\n"}},
                      imports=["nv.one", "nv.two"])
    result = stack.install()
    assert result.report.ok, result.report.failures()
