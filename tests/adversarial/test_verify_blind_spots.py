"""verify sees everything, and runs nothing until it has: a file no list accounts for, a replaced bytecode file
with its header kept, a changed byte in the tool's own files, an interpreter link pointed elsewhere, and a
planted ``.pth`` all fail verify, naming the file, and none of their code runs inside verify's own probe."""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
from pathlib import Path

import pytest

from conftest import Synthetic, cli, write_json
from immutable_installer.dists.installed import site_packages


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Synthetic, Path]:
    """A healthy environment whose verify imports ``tiny_a`` and ``requests``-free modules; the marker file is
    what any payload below writes when it runs."""
    stack = Synthetic(tmp_path / "stack")
    stack.install()
    return stack, tmp_path / "PAYLOAD-RAN"


def _verify(stack: Synthetic, cwd: Path) -> dict[str, object]:
    proc = cli("verify", "--venv", str(stack.target), "--manifest", str(stack.manifest_path), "--json", cwd=cwd)
    report = json.loads(proc.stdout)
    assert proc.returncode == (0 if report["ok"] else 1)
    return report


def _check(report: dict[str, object], name: str) -> tuple[str, str]:
    found = next(c for c in report["checks"] if c["name"] == name)  # type: ignore[attr-defined]
    return found["status"], found["detail"]


def _payload(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')\n"


def test_a_planted_module_fails_verify_and_never_runs(stack: tuple[Synthetic, Path], tmp_path: Path) -> None:
    env, marker = stack
    data = json.loads(env.manifest_path.read_text())
    data["verify"]["imports"] = ["tiny_a", "requests"]  # the probe would import it
    write_json(env.manifest_path, data)
    assert _verify(env, tmp_path)["ok"] is False  # requests is not installed: fails without the plant, too
    planted = site_packages(env.target.resolve()) / "requests.py"
    planted.write_text(_payload(marker))
    report = _verify(env, tmp_path)
    state, detail = _check(report, "files")
    assert state == "fail" and "requests.py" in detail and not marker.exists()


def test_a_replaced_bytecode_file_with_its_header_kept_fails_and_never_runs(stack: tuple[Synthetic, Path],
                                                                            tmp_path: Path) -> None:
    env, marker = stack
    source = site_packages(env.target.resolve()) / "tiny_a" / "__init__.py"
    pyc = Path(importlib.util.cache_from_source(str(source)))
    header = pyc.read_bytes()[:16]
    pyc.unlink()  # a hard link into the store: replace the name, leave the store alone
    pyc.write_bytes(header + marshal.dumps(compile(_payload(marker), str(source), "exec")))
    report = _verify(env, tmp_path)
    state, detail = _check(report, "integrity")
    assert state == "fail" and "__init__.cpython" in detail and not marker.exists()


@pytest.mark.parametrize("victim", ["zz_immutable_installer.pth", "_immutable_blocker.py"])
def test_a_changed_byte_in_the_tools_own_files_fails(stack: tuple[Synthetic, Path], tmp_path: Path,
                                                     victim: str) -> None:
    env, marker = stack
    path = site_packages(env.target.resolve()) / victim
    text = path.read_text()
    path.unlink()
    path.write_text(text + ("import os; " + _payload(marker).strip() + "\n" if victim.endswith(".pth")
                            else "\n" + _payload(marker)))
    report = _verify(env, tmp_path)
    state, detail = _check(report, "integrity")
    assert state == "fail" and victim in detail and not marker.exists()


def test_an_interpreter_link_pointed_elsewhere_fails(stack: tuple[Synthetic, Path], tmp_path: Path) -> None:
    env, _ = stack
    python = env.target.resolve() / "bin" / "python"
    other = tmp_path / "other-python"
    other.symlink_to(os.path.realpath(python))  # the same interpreter by another path: still not pyvenv.cfg's
    python.unlink()
    python.symlink_to(other)
    report = _verify(env, tmp_path)
    assert _check(report, "integrity")[0] == "fail" and "bin/python" in _check(report, "integrity")[1]


def test_a_planted_pth_fails_and_never_runs_in_the_probe(stack: tuple[Synthetic, Path], tmp_path: Path) -> None:
    env, marker = stack
    (site_packages(env.target.resolve()) / "evil.pth").write_text("import os; " + _payload(marker))
    report = _verify(env, tmp_path)
    assert _check(report, "startup")[0] == "fail" and _check(report, "files")[0] == "fail"
    assert not marker.exists()
