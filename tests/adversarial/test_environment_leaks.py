"""A hostile or unlucky environment: variables and configuration files that would change what a generation
holds never reach the build, and verify catches an environment that is not isolated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, Synthetic, cli


def test_virtualenv_settings_from_the_environment_do_not_reach_the_generation(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    ini = tmp_path / "virtualenv.ini"
    ini.write_text("[virtualenv]\nsystem_site_packages = true\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1",
           "VIRTUALENV_CONFIG_FILE": str(ini)}
    proc = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant",
                           "cpu", "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house), "--venv",
                           str(stack.target), "--store", str(stack.store)], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cfg = (stack.target.resolve() / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg
    seen = subprocess.run([str(stack.python()), "-c", "import sys; print(any('site-packages' in p and "
                           "not p.startswith(sys.prefix) for p in sys.path))"],
                          capture_output=True, text=True).stdout.strip()
    assert seen == "False", "no site-packages of the base interpreter on sys.path"


def test_verify_fails_when_the_environment_is_not_isolated(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    assert stack.install().report.ok
    cfg = stack.target.resolve() / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace("include-system-site-packages = false",
                                           "include-system-site-packages = true"))
    proc = cli("verify", "--venv", str(stack.target), "--manifest", str(stack.manifest_path), "--json", cwd=tmp_path)
    isolation = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "isolation")
    assert proc.returncode == 1 and isolation["status"] == "fail"
    assert "include-system-site-packages = true" in isolation["detail"]
