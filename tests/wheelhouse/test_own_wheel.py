"""`bundle` from the tool as users install it (a wheel, no source checkout): its own wheel is rebuilt from the
installed files, each checked against RECORD; a file changed after the install refuses the bundle."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, Synthetic

pytestmark = pytest.mark.network  # the installed tool's dependencies come from the package index


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A venv with immutable-installer installed from its wheel (as `pip install immutable-installer` does)."""
    root = tmp_path_factory.mktemp("installed")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(REPO)],
                   check=True, timeout=600)
    wheel = next(dist.glob("immutable_installer-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheel)], check=True, timeout=900)
    return venv, wheel


def members(wheel: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/RECORD")}


def test_the_rebuilt_wheel_holds_exactly_the_installed_wheels_files(installed: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    venv, wheel = installed
    code = ("import sys; from pathlib import Path; from immutable_installer.wheelhouse.own_wheel import "
            "rebuild_installed_wheel as r; print(r('immutable-installer', Path(sys.argv[1])))")
    out = subprocess.run([str(venv / "bin/python"), "-c", code, str(tmp_path)], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    rebuilt = Path(out.stdout.strip())
    assert rebuilt.name == wheel.name
    assert members(rebuilt) == members(wheel), "every file, byte for byte; nothing the installer made"


def test_bundle_from_an_installed_tool_then_refused_once_a_file_changed(installed: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    venv, _ = installed
    stack = Synthetic(tmp_path / "stack")
    tool = str(venv / "bin/immutable-installer")
    args = [tool, "bundle", "-o", str(tmp_path / "b.tar"), "--manifest", str(stack.manifest_path), "--wheelhouse",
            str(stack.house), "--json"]
    ok = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert ok.returncode == 0, ok.stderr
    with tarfile.open(tmp_path / "b.tar") as tar:
        info = json.loads(tar.extractfile("b/BUNDLE.json").read())  # type: ignore[union-attr]
    assert info["tool_source"].startswith("rebuilt from the installed files")
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "immutable_installer" / "net.py").open("a").write("\n# changed after the install\n")
    refused = subprocess.run([*args[:3], str(tmp_path / "c.tar"), *args[4:]], cwd=tmp_path, capture_output=True,
                             text=True, timeout=900)
    assert refused.returncode == 4, refused.stderr
    assert "immutable_installer/net.py: changed since immutable-installer was installed" in refused.stderr
    assert not (tmp_path / "c.tar").exists()
