"""PEP 751 export: the pins of one variant, parsed by packaging.pylock."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from packaging.pylock import Pylock

from conftest import REPO, Synthetic, make_wheel, manifest_data
from immutable_installer.core.manifest import load_manifest, manifest_from_data
from immutable_installer.lock import pylock


def test_synthetic_export_parses(tmp_path: Path) -> None:
    b = make_wheel(tmp_path, "tiny-b", "1.0")
    a = make_wheel(tmp_path, "tiny-a", "2.0", requires=["tiny-b>=1"])
    manifest = manifest_from_data(manifest_data([(b, {}), (a, {"requires": ["tiny-b>=1"], "group": "app"})]))
    out = tmp_path / "lock" / "pylock.toml"
    out.parent.mkdir()
    text = pylock.export(manifest, "cpu", "linux_x86_64", str(out), str(tmp_path / "wheelhouse"))
    lock = Pylock.from_dict(tomllib.loads(text))
    assert [p.name for p in lock.packages] == ["tiny-b", "tiny-a"]
    wheel = lock.packages[1].wheels[0]
    assert wheel.path == "../wheelhouse/tiny_a-2.0-py3-none-any.whl" and wheel.hashes["sha256"]


def test_reference_manifest_exports_both_variants(tmp_path: Path) -> None:
    manifest = load_manifest(REPO / "metadata" / "dependencies.json")
    for variant in manifest.variant_names():
        text = pylock.export(manifest, variant, "linux_x86_64", str(tmp_path / f"{variant}.toml"), "wheelhouse")
        lock = Pylock.from_dict(tomllib.loads(text))
        torch = next(p for p in lock.packages if p.name == "torch")
        assert str(torch.version).endswith("+cpu") == (variant == "cpu")
        if variant == "cpu":
            assert torch.wheels[0].url.startswith("https://download.pytorch.org/whl/cpu/")


def test_real_pip_and_uv_install_the_export_offline(tmp_path: Path) -> None:
    """A pinned URL that cannot be reached (like download.pytorch.org offline): both clients take the path."""
    import os
    import shutil
    import subprocess

    stack = Synthetic(tmp_path, urls={"torch-1.0+cpu-py3-none-any.whl": "https://download.invalid/torch-1.0%2Bcpu.whl"})
    manifest = stack.manifest()
    out = tmp_path / "pylock.toml"
    pylock.export(manifest, "cpu", "linux_x86_64", str(out), str(stack.house))
    wanted = {(p.name, p.version) for p in manifest.packages_for("cpu", "linux_x86_64")}
    offline = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "https_proxy": "http://127.0.0.1:9",
               "http_proxy": "http://127.0.0.1:9"}
    venv = tmp_path / "pip-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--no-index",
                          "--disable-pip-version-check", "-r", str(out)], capture_output=True, text=True,
                         env=offline, check=False, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    uv_venv = tmp_path / "uv-venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(uv_venv)], check=True)
    uvi = subprocess.run([uv, "pip", "install", "--no-config", "--offline", "--python", str(uv_venv / "bin/python"),
                          "--cache-dir", str(tmp_path / "uv-cache"), "-r", str(out)], capture_output=True, text=True,
                         env=offline, check=False, cwd=tmp_path)
    assert uvi.returncode == 0, uvi.stderr
    for v in (venv, uv_venv):
        site = next((v / "lib").glob("python*/site-packages"))
        got = set()
        for info in site.glob("*.dist-info"):
            meta = (info / "METADATA").read_text()
            name = next(line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Name: "))
            version = next(line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Version: "))
            got.add((name.lower(), version))
        assert got == wanted, v
