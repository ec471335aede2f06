"""No code at start-up we did not choose: executable .pth files are refused before anything runs them."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Synthetic, cli, store_files, write_json
from immutable_installer.dists.installed import site_packages


def evil_stack(root: Path, marker: Path) -> Synthetic:
    payload = f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran at start-up')\n"
    return Synthetic(root, extra={"evil-helper": {"evil_helper/__init__.py": "", "evil_helper.pth": payload}})


def test_wheel_with_executable_pth_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    stack = evil_stack(tmp_path / "stack", marker)
    proc = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(stack.target), "--store", str(stack.store), cwd=tmp_path)
    assert proc.returncode == 7, proc.stderr
    assert "evil_helper-1.0-py3-none-any.whl ships evil_helper.pth" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists() and not stack.target.exists() and not store_files(stack.store)


def test_allowed_by_name_installs_and_verifies(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    stack = evil_stack(tmp_path / "stack", marker)
    data = json.loads(stack.manifest_path.read_text())
    data["verify"]["allowed_pth"] = ["evil_helper.pth"]
    write_json(stack.manifest_path, data)
    result = stack.install()
    assert result.report.ok, result.report.failures()
    assert next(c for c in result.report.checks if c.name == "startup").status == "pass"


def test_verify_fails_on_a_pth_dropped_into_site_packages(built: Synthetic) -> None:
    site = site_packages(built.target.resolve())
    dropped = site / "zzz_dropped.pth"
    dropped.write_text("import os\n")
    try:
        report = built.verify()
        check = next(c for c in report.checks if c.name == "startup")
        assert check.status == "fail" and "zzz_dropped.pth (an import line: import os)" in check.detail
    finally:
        dropped.unlink()
    report = built.verify()
    assert next(c for c in report.checks if c.name == "startup").status == "pass"
