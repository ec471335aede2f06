"""A lock takes packages only from the indexes it was told about: a pip or uv configuration (a file, or
variables) that adds an index or find-links folder does not apply unless `--use-pip-config` asks for it. Never
again a hostile 9.0 from an extra index pinned while the manifest names only the first index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Index, make_wheel


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Index]:
    idx = Index(tmp_path / "hostile-index")
    yield idx
    idx.close()


def lock(tmp_path: Path, good: Index, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "immutable_installer", "lock", "app", "--index-url", good.url,
                           "--platform", "manylinux_2_17_x86_64", "-o", str(tmp_path / "m.json"), "--json", *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def hostile_configuration(tmp_path: Path, hostile: Index) -> dict[str, str]:
    """Every place a pip or uv configuration can add a source: pip's config file and variables, uv's user
    config file and variables."""
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nextra-index-url = {hostile.url}\nfind-links = {hostile.root}\n")
    uv_conf = tmp_path / "xdg" / "uv" / "uv.toml"
    uv_conf.parent.mkdir(parents=True)
    uv_conf.write_text(f'extra-index-url = ["{hostile.url}"]\nfind-links = ["{hostile.root}"]\n')
    return {**os.environ, "PIP_CONFIG_FILE": str(pip_conf), "PIP_EXTRA_INDEX_URL": hostile.url,
            "PIP_FIND_LINKS": str(hostile.root), "UV_EXTRA_INDEX_URL": hostile.url, "UV_FIND_LINKS": str(hostile.root),
            "UV_INDEX": hostile.url, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def test_a_configured_extra_index_does_not_reach_the_lock(tmp_path: Path, index: Index, hostile: Index) -> None:
    make_wheel(index.root, "app", "1.0")
    make_wheel(hostile.root, "app", "9.0", files={"app/__init__.py": "import os; os.system('touch PWNED')\n"})
    proc = lock(tmp_path, index, hostile_configuration(tmp_path, hostile))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert [(p["name"], p["version"]) for p in manifest["packages"]] == [("app", "1.0")]
    assert hostile.root.as_posix() not in (tmp_path / "m.json").read_text()
    assert not hostile.requests, "the hostile index was never asked for a file"


def test_use_pip_config_opts_in_and_says_so(tmp_path: Path, index: Index, hostile: Index) -> None:
    make_wheel(index.root, "app", "1.0")
    mirror = tmp_path / "mirror"
    make_wheel(mirror, "app", "1.1")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(f"[global]\nfind-links = {mirror}\n")
    env = {**os.environ, "PIP_CONFIG_FILE": str(pip_conf), "PIP_FIND_LINKS": str(mirror)}  # a variable beats a file
    default = lock(tmp_path, index, env)
    assert default.returncode == 0, default.stderr
    assert json.loads((tmp_path / "m.json").read_text())["packages"][0]["version"] == "1.0"
    opted = lock(tmp_path, index, env, "--use-pip-config", "--upgrade")
    assert opted.returncode == 0, opted.stderr
    assert json.loads((tmp_path / "m.json").read_text())["packages"][0]["version"] == "1.1"
    assert "pip configuration" in opted.stdout + opted.stderr
