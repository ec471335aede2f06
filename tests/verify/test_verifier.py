"""The verifier on the synthetic stack: healthy passes, each tampering fails its own check with a named cause."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import PY, Synthetic, make_wheel
from immutable_installer.core.manifest import manifest_from_data
from immutable_installer.dists.installed import site_packages


def verify(stack: Synthetic, manifest=None):  # type: ignore[no-untyped-def]
    return stack.verify(manifest=manifest)


def status(report, name: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    check = next(c for c in report.checks if c.name == name)
    return check.status, check.detail


def pip(stack: Synthetic, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--python", str(stack.python()), *args, "--isolated",
                    "--disable-pip-version-check", "-q"], check=True)


def test_healthy_environment_passes_and_json_matches(built: Synthetic) -> None:
    report = verify(built)
    assert report.ok, report.failures()
    data = json.loads(json.dumps(report.to_json()))
    assert [c["name"] for c in data["checks"]] == [c.name for c in report.checks]
    assert status(report, "cuda")[0] == "skip"  # no GPU, not required for cpu: skip, never pass


def test_edited_file(synthetic: Synthetic) -> None:
    synthetic.install()
    target = site_packages(synthetic.target.resolve()) / "tiny_a" / "__init__.py"
    target.chmod(0o644)  # linked from the read-only store
    target.write_text(target.read_text() + "# edited\n")
    report = verify(synthetic)
    state, detail = status(report, "integrity")
    assert state == "fail" and detail.startswith(f"1 changed (lib/python{PY}/site-packages/tiny_a/__init__.py "
                                                 "(tiny-a)); the files are hard links")
    assert f"in {synthetic.store} is damaged" in detail
    assert status(report, "fingerprint")[0] == "pass"  # RECORD unchanged; integrity names the file


def test_package_added_removed_and_blacklisted(synthetic: Synthetic) -> None:
    synthetic.install()
    extra = make_wheel(synthetic.root / "extra", "evil-pkg", "1.0")
    pip(synthetic, "install", "--no-index", "--no-deps", str(extra))
    data = json.loads(json.dumps(synthetic.data))
    data["blacklist"] = [{"name": "evil-*", "reason": "test rule"}]
    report = verify(synthetic, manifest_from_data(data))
    assert "unexpected: evil-pkg 1.0" in status(report, "packages")[1]
    assert status(report, "fingerprint")[0] == "fail" and "drift" in status(report, "fingerprint")[1]
    assert "evil-pkg 1.0 is installed (forbidden: test rule)" in status(report, "blacklist")[1]
    pip(synthetic, "uninstall", "-y", "tiny-b")
    report = verify(synthetic)
    assert "missing: tiny-b" in status(report, "packages")[1]
    assert "tiny-a requires tiny-b>=1.0, which is not installed" in status(report, "dependencies")[1]


def test_wrong_torch_variant(synthetic: Synthetic) -> None:
    synthetic.install()
    other = make_wheel(synthetic.root / "other", "torch", "1.0+cu124", files={"torch/__init__.py": "__version__='x'"})
    gen = synthetic.target.resolve()
    assert not (gen / "pip.conf").exists()  # no pip in this stack, no pip guard (the reference stack tests it)
    pip(synthetic, "install", "--no-index", "--no-deps", "--force-reinstall", str(other))
    status_, detail = status(verify(synthetic), "torch lock")
    assert status_ == "fail" and "installed torch 1.0+cu124 != .torch_lock 1.0+cpu" in detail


def test_shim_pth_removed(synthetic: Synthetic) -> None:
    synthetic.install()
    (site_packages(synthetic.target.resolve()) / "zz_immutable_installer.pth").unlink()
    report = verify(synthetic)
    assert status(report, "shims") == ("fail", "missing from site-packages: zz_immutable_installer.pth")
    assert "import torchao succeeded" in status(report, "blacklist")[1]
    assert status(report, "integrity")[0] == "fail" and "zz_immutable_installer.pth" in status(report, "integrity")[1]


def test_cuda_required_without_gpu_fails(built: Synthetic) -> None:
    data = json.loads(json.dumps(built.data))
    data["verify"]["cuda"] = "required"
    report = verify(built, manifest_from_data(data))
    assert not report.ok
    assert status(report, "cuda")[0] == "fail" and "is_available() is False" in status(report, "cuda")[1]


def test_cli_json_and_exit_codes(built: Synthetic, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "immutable_installer", "verify", "--venv", str(built.target), "--manifest",
           str(built.manifest_path), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ok"] and {"name", "status", "detail"} <= set(data["checks"][0])


def test_the_probe_leaves_without_the_interpreters_teardown(tmp_path: Path) -> None:
    """Teardown of torch + transformers costs over a second and checks nothing: the probe reports, then exits
    at once. An atexit handler stands for that teardown: it runs for a normal script and not for the probe."""
    import immutable_installer.verify.probe as probe

    marker = tmp_path / "teardown-ran"
    (tmp_path / "sitecustomize.py").write_text(
        f"import atexit\natexit.register(lambda: open({str(marker)!r}, 'w').close())\n", encoding="utf-8")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    assert marker.exists()  # the stand-in works
    marker.unlink()
    config = json.dumps({"torch": False, "transformers": False, "blocked": ["json"], "imports": ["json"]})
    proc = subprocess.run([sys.executable, probe.__file__, config], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.split("@@PROBE@@", 1)[1])  # flushed before leaving
    assert report["imports"]["json"]["ok"] and report["blocked"]["json"]["import_error"] is None
    assert not marker.exists()


def test_a_secondary_import_that_needs_an_optional_dependency_is_a_warning(tmp_path: Path) -> None:
    """duckdb's case: its main module imports, a second top-level package it ships needs an optional
    dependency. The environment is healthy (warn); the main module failing is a failure."""
    stack = Synthetic(tmp_path, extra={"ducky": {"ducky/__init__.py": "", "adbc_ducky/__init__.py":
                                                 "import pyarrow_not_installed\n"}},
                      imports=["ducky"])
    data = json.loads(stack.manifest_path.read_text())
    data["verify"]["secondary_imports"] = ["adbc_ducky"]
    stack.manifest_path.write_text(json.dumps(data))
    stack.install()
    report = verify(stack)
    assert report.ok, report.failures()
    state, detail = status(report, "secondary imports")
    assert state == "warn" and "adbc_ducky" in detail and "pyarrow_not_installed" in detail
    data["verify"]["imports"] = ["adbc_ducky"]
    data["verify"]["secondary_imports"] = []
    report = verify(stack, manifest_from_data(data))
    assert not report.ok and status(report, "imports")[0] == "fail"
