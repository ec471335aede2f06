"""The bundle round trip: write, verify, carry to a directory with no network and a clean HOME, run only the
bootstrap, get a verified generation; a changed byte, a missing member or a cut archive is refused by name."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import Synthetic, cli, offline_env

pytestmark = pytest.mark.network  # building the tool's own wheel and fetching its dependencies needs an index


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synthetic, Path]:
    root = tmp_path_factory.mktemp("bundle")
    stack = Synthetic(root / "stack")
    out = root / "stack.tar"
    proc = cli("bundle", "-o", str(out), "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house),
               "--json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["wheels"] == len(stack.wheels) and result["tool_wheels"] >= 5
    return stack, out


def test_bundle_installs_a_verified_generation_with_no_network(bundle: tuple[Synthetic, Path],
                                                              tmp_path: Path) -> None:
    _, out = bundle
    assert cli("bundle", "verify", str(out), cwd=tmp_path).returncode == 0
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert names[0] == "stack/SHA256SUMS"
        tar.extractall(tmp_path / "site", filter="data")
    top = tmp_path / "site" / "stack"
    env = offline_env(tmp_path / "home")
    boot = subprocess.run(["sh", str(top / "install.sh"), "--variant", "cpu"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=False, timeout=900)
    assert boot.returncode == 0, boot.stdout[-2000:] + boot.stderr[-3000:]
    verify = subprocess.run([str(top / ".tool/bin/immutable-installer"), "verify", "--venv", str(top / ".venv"),
                             "--manifest", str(top / "metadata/dependencies.json"), "--json"], env=env,
                            capture_output=True, text=True, check=False, cwd=top)
    assert verify.returncode == 0, verify.stdout[-2000:]
    assert json.loads(verify.stdout)["ok"]
    # the store went where a clean HOME puts it: nothing outside the temporary tree was touched
    assert (tmp_path / "home" / ".cache" / "immutable-installer" / "store" / "entries").is_dir()
    ps1 = (top / "install.ps1").read_text()  # Windows runs the very bootstrap install.sh ran (under Wine in CI)
    assert "-I $bootstrap @args" in ps1 and '"bootstrap.py"' in ps1 and "bootstrap.py" in (top / "install.sh").read_text()


def rewrite(src: Path, dst: Path, change: str, victim: str) -> None:
    """Copy a bundle, altering one member: flip a byte, or leave it out."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as tout:
        for ti in tin:
            data = tin.extractfile(ti).read()  # type: ignore[union-attr]
            if ti.name.endswith(victim):
                if change == "drop":
                    continue
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            tout.addfile(ti, io.BytesIO(data))


@pytest.mark.parametrize("change", ["flip", "drop"])
def test_altered_or_incomplete_bundle_is_refused_naming_the_member(bundle: tuple[Synthetic, Path], tmp_path: Path,
                                                                   change: str) -> None:
    stack, out = bundle
    victim = stack.wheels["tiny-a"].name
    bad = tmp_path / "stack.tar"
    rewrite(out, bad, change, victim)
    proc = cli("bundle", "verify", str(bad), cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert f"wheelhouse/{victim}" in proc.stderr and "Traceback" not in proc.stderr
    assert ("does not match its sha256" if change == "flip" else "is missing") in proc.stderr
    # the bootstrap refuses too, before anything is created
    with tarfile.open(bad) as tar:
        tar.extractall(tmp_path / "site", filter="data")
    top = tmp_path / "site" / "stack"
    boot = subprocess.run(["sh", str(top / "install.sh")], cwd=tmp_path, env=offline_env(tmp_path / "home"),
                          capture_output=True, text=True, check=False, timeout=300)
    assert boot.returncode != 0
    assert not (top / ".tool").exists() and not (top / ".venv").exists()


def test_truncated_bundle_is_refused(bundle: tuple[Synthetic, Path], tmp_path: Path) -> None:
    _, out = bundle
    cut = tmp_path / "cut.tar"
    cut.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    proc = cli("bundle", "verify", str(cut), cwd=tmp_path)
    assert proc.returncode == 4 and ("truncated" in proc.stderr or "is missing" in proc.stderr), proc.stderr


def extracted(out: Path, where: Path) -> Path:
    with tarfile.open(out) as tar:
        tar.extractall(where, filter="data")
    return where / "stack"


def boot(top: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(top / "install.sh")], cwd=tmp_path, env=offline_env(tmp_path / "home"),
                          capture_output=True, text=True, check=False, timeout=300)


def hostile_tool_wheel(directory: Path, marker: Path) -> Path:
    """A newer 'immutable-installer' whose import writes a marker: what a find-links install would prefer."""
    from conftest import make_wheel

    return make_wheel(directory, "immutable-installer", "99.0",
                      files={"immutable_installer/__init__.py": f"open({str(marker)!r}, 'w').write('ran')\n"})


@pytest.mark.parametrize("where", ["tool", "wheelhouse", "top"])
def test_a_file_nobody_listed_is_refused_before_anything_runs(bundle: tuple[Synthetic, Path], tmp_path: Path,
                                                              where: str) -> None:
    _, out = bundle
    top = extracted(out, tmp_path / "site")
    marker = tmp_path / "PWNED"
    planted = hostile_tool_wheel(top / ("." if where == "top" else where), marker)
    proc = boot(top, tmp_path)
    assert proc.returncode != 0
    rel = planted.relative_to(top).as_posix()
    assert f"error: {rel} is not listed in SHA256SUMS" in proc.stderr, proc.stderr
    assert not marker.exists() and not (top / ".tool").exists() and not (top / ".venv").exists()


def test_a_symlink_in_the_bundle_is_refused(bundle: tuple[Synthetic, Path], tmp_path: Path) -> None:
    _, out = bundle
    top = extracted(out, tmp_path / "site")
    victim = next((top / "wheelhouse").glob("tiny_a-*.whl"))
    copy = tmp_path / "elsewhere.whl"
    victim.rename(copy)
    victim.symlink_to(copy)  # identical bytes, but not a file of the bundle
    proc = boot(top, tmp_path)
    assert proc.returncode != 0 and "is a symbolic link" in proc.stderr, proc.stderr
    assert not (top / ".tool").exists()


def test_the_bootstrap_installs_exactly_the_listed_tool_wheels(bundle: tuple[Synthetic, Path]) -> None:
    _, out = bundle
    with tarfile.open(out) as tar:
        requirements = tar.extractfile("stack/tool/requirements.txt").read().decode()  # type: ignore[union-attr]
        tools = [n for n in tar.getnames() if n.startswith("stack/tool/") and n.endswith(".whl")]
        scripts = {name: tar.extractfile(f"stack/{name}").read().decode()  # type: ignore[union-attr]
                   for name in ("bootstrap.py", "install.sh", "install.ps1")}
    lines = requirements.splitlines()
    assert len(lines) == len(tools) and all(" --hash=sha256:" in line for line in lines)
    assert '"--require-hashes", "-r", "tool/requirements.txt"' in scripts["bootstrap.py"]
    for name, script in scripts.items():
        assert "--find-links" not in script
        assert "synthetic" not in script, f"no manifest string but the Python version is written into {name}"


def test_a_platform_the_manifest_does_not_lock_is_refused_in_one_line(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    proc = cli("bundle", "-o", str(tmp_path / "x.tar"), "--manifest", str(stack.manifest_path), "--wheelhouse",
               str(stack.house), "--platform", "win_amd64", cwd=tmp_path)
    assert proc.returncode == 2 and "--platform 'win_amd64' is not a platform of the manifest" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.tar").exists()
