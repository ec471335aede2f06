"""Hostile wheels that try to run code at every interpreter start, or to overwrite the tool's own files, by
every route a wheel has to site-packages. Each is refused before anything is built; the payload never runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import Synthetic, cli, store_files, write_json
from immutable_installer.dists.installed import site_packages

SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def payload(marker: Path) -> str:
    return f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran at start-up')\n"


def install(stack: Synthetic, tmp_path: Path, *extra: str) -> object:
    return cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(stack.target), "--store", str(stack.store), *extra,
               cwd=tmp_path)


ROUTES = {
    # route name -> (wheel members of "evil-helper", the name the scan reports)
    "pth through the data scheme": ({"evil_helper/__init__.py": "", f"evil_helper-1.0.data/data/{SITE}/evil.pth":
                                     "PAYLOAD"}, "evil.pth"),
    "pth with a BOM": ({"evil_helper/__init__.py": "", "evil.pth": "\ufeffPAYLOAD"}, "evil.pth"),
    "pth through platlib": ({"evil_helper/__init__.py": "", "evil_helper-1.0.data/platlib/evil.pth": "PAYLOAD"},
                            "evil.pth"),
    "sitecustomize module": ({"evil_helper/__init__.py": "", "sitecustomize.py": "PAYLOAD_PY"}, "sitecustomize.py"),
    "usercustomize package through purelib": ({"evil_helper/__init__.py": "",
                                               "evil_helper-1.0.data/purelib/usercustomize/__init__.py":
                                               "PAYLOAD_PY"}, "usercustomize"),
    "sitecustomize through the data scheme": ({"evil_helper/__init__.py": "",
                                               f"evil_helper-1.0.data/data/{SITE}/sitecustomize.py": "PAYLOAD_PY"},
                                              "sitecustomize.py"),
    "a PEP 829 start file": ({"evil_helper/__init__.py": "", "evil_helper/boot.py": "def run():\n    PAYLOAD_PY",
                              "evil.start": "evil_helper.boot:run\n"}, "evil.start"),
}


def evil_files(members: dict[str, str], marker: Path) -> dict[str, str]:
    code = payload(marker)  # one line that is also a .pth import line
    return {k: v.replace("PAYLOAD_PY", code).replace("PAYLOAD", code) for k, v in members.items()}


@pytest.mark.parametrize("route", ["pth through the data scheme", "pth with a BOM", "sitecustomize module"])
def test_the_payload_is_real_it_runs_when_allowed_by_name(tmp_path: Path, route: str) -> None:
    """The control for the test below: allowed by name, the same wheel installs and its code runs at start.

    A BOM is the one route whose payload depends on the Python: site.py decodes .pth files as utf-8-sig from
    3.13 on (the line runs); before, the BOM makes the first line unreadable as an import (it does not). The
    scan refuses it on every Python, since the environment may later run on a newer one."""
    runs = not (route == "pth with a BOM" and sys.version_info < (3, 13))
    marker = tmp_path / "pwned"
    members, reported = ROUTES[route]
    stack = Synthetic(tmp_path / "stack", extra={"evil-helper": evil_files(members, marker)})
    data = json.loads(stack.manifest_path.read_text())
    data["verify"]["allowed_pth"] = [reported]
    write_json(stack.manifest_path, data)
    proc = install(stack, tmp_path)
    assert proc.returncode == 0, proc.stderr
    if runs:
        assert marker.read_text() == "ran at start-up"
    else:
        assert not marker.exists(), "before 3.13 a BOM hides the line from site.py"


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_start_up_code_by_any_route_is_refused_before_it_runs(tmp_path: Path, route: str) -> None:
    marker = tmp_path / "pwned"
    members, reported = ROUTES[route]
    stack = Synthetic(tmp_path / "stack", extra={"evil-helper": evil_files(members, marker)})
    proc = install(stack, tmp_path)
    assert proc.returncode == 7, proc.stderr
    assert f"evil_helper-1.0-py3-none-any.whl ships {reported}" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists() and not stack.target.exists() and not store_files(stack.store)


@pytest.mark.parametrize("members, path", [
    ({"evil_helper-1.0.data/scripts/python": "#!/bin/sh\necho replaced\n"}, "python (scripts)"),
    ({"evil_helper-1.0.data/scripts/python3.11": "#!/bin/sh\necho replaced\n"}, "python3.11 (scripts)"),
    ({"evil_helper-1.0.data/scripts/activate": "echo replaced\n"}, "activate (scripts)"),
    ({"evil_helper-1.0.data/data/pyvenv.cfg": "include-system-site-packages = true\n"}, "pyvenv.cfg (data)"),
    ({"evil_helper-1.0.data/data/installer-receipt.json": "{}\n"}, "installer-receipt.json (data)"),
    ({"_immutable_blocker.py": "BLOCKED = {}\n"}, "_immutable_blocker.py (purelib)"),
    ({f"evil_helper-1.0.data/data/{SITE}/zz_immutable_installer.pth": "\n"}, "zz_immutable_installer.pth (purelib)"),
])
def test_a_wheel_shipping_a_file_the_tool_writes_is_refused(tmp_path: Path, members: dict[str, str],
                                                            path: str) -> None:
    stack = Synthetic(tmp_path / "stack", extra={"evil-helper": {"evil_helper/__init__.py": "", **members}})
    proc = install(stack, tmp_path)
    assert proc.returncode == 6, proc.stderr
    assert f"evil_helper-1.0-py3-none-any.whl ships {path}" in proc.stderr and "Traceback" not in proc.stderr
    assert not stack.target.exists() and not store_files(stack.store)


def test_one_file_by_two_routes_is_a_clash(tmp_path: Path) -> None:
    """Top level in one wheel, through the data scheme into site-packages in another: the later one would
    overwrite the first, and the store entry would hold the other wheel's bytes."""
    stack = Synthetic(tmp_path / "stack", extra={
        "first-pkg": {"first_pkg/__init__.py": "", "shared_mod.py": "WHO = 'first'\n"},
        "second-pkg": {"second_pkg/__init__.py": "", f"second_pkg-1.0.data/data/{SITE}/shared_mod.py":
                       "WHO = 'second'\n"}})
    proc = install(stack, tmp_path)
    assert proc.returncode == 6, proc.stderr
    assert "shared_mod.py is shipped by both first_pkg-1.0" in proc.stderr
    assert not stack.target.exists() and not store_files(stack.store)


def test_verify_fails_on_start_up_code_planted_after_the_install(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    assert stack.install().report.ok
    site = site_packages(stack.target.resolve())
    (site / "usercustomize.py").write_text("x = 1\n")
    proc = cli("verify", "--venv", str(stack.target), "--manifest", str(stack.manifest_path), cwd=tmp_path)
    assert proc.returncode == 1 and "usercustomize.py" in proc.stdout
    (site / "usercustomize.py").unlink()
    (site / "planted.start").write_text("os:getcwd\n")
    proc = cli("verify", "--venv", str(stack.target), "--manifest", str(stack.manifest_path), cwd=tmp_path)
    assert proc.returncode == 1 and "planted.start" in proc.stdout
