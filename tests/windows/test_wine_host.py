"""The Windows host, for real under Wine: a Windows CPython 3.12 runs ``immutable-installer.exe`` through lock,
download, install, verify, a second install, rollback, store verify and gc, and installs killed at random
instants, on a synthetic stack (pure-Python wheels, one with a console script) in a folder with a space.

Run by ``.ci/windows/run`` (which prepares Wine and the Windows interpreter with ``.ci/windows/setup.sh`` and sets
``IMMUTABLE_INSTALLER_WINE_ROOT``); anywhere else these tests skip, saying so. Under Wine no link can be made
(``os.symlink`` reports success and makes nothing, junctions fail), so the switch runs in rename mode here; the
junction mode's logic is unit-tested in tests/generation/test_switching.py. Nothing here ran on real Windows.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import cli, make_wheel

ROOT = os.environ.get("IMMUTABLE_INSTALLER_WINE_ROOT", "")
pytestmark = [
    pytest.mark.windows,
    pytest.mark.skipif(not ROOT, reason="the Windows suite runs under Wine through .ci/windows/run"),
]
KILLS = int(os.environ.get("IMMUTABLE_INSTALLER_WINE_KILLS", "6"))


def winpath(path: Path | str) -> str:
    """The Windows name of a Linux path under Wine's ``Z:`` drive."""
    return "Z:" + str(path).replace("/", "\\")


@dataclass
class Run:
    code: int
    out: str

    def json(self) -> object:
        return json.loads(self.out[self.out.index("{"):])


class Wine:
    """Windows processes under Wine with a clean environment (no host PIP_/UV_/PYTHON* variables)."""

    def __init__(self, root: Path, store: Path) -> None:
        self.root = root
        self.tool = winpath(root / "tool" / "Scripts" / "immutable-installer.exe")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PIP_", "UV_", "PYTHON", "VIRTUAL_ENV", "IMMUTABLE_INSTALLER"))}
        self.env.update(WINEPREFIX=str(root / "prefix"), WINEDEBUG="-all",
                        IMMUTABLE_INSTALLER_STORE=winpath(store))

    def start(self, *args: str, cwd: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["wine", *args], cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 600) -> Run:
        """Wait for the process itself, not for the end of its output (a Wine helper can hold the pipe)."""
        chunks: list[bytes] = []
        assert proc.stdout is not None
        reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stdout.read1(65536), b"")),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        code = proc.wait(timeout=timeout)
        reader.join(timeout=5)
        return Run(code, b"".join(chunks).decode("utf-8", "replace"))

    def run(self, *args: str, cwd: Path, timeout: float = 600) -> Run:
        return self.finish(self.start(*args, cwd=cwd), timeout)

    def ii(self, *args: str, cwd: Path, timeout: float = 600) -> Run:
        return self.run(self.tool, *args, cwd=cwd, timeout=timeout)


@dataclass
class Project:
    wine: Wine
    dir: Path
    stack: Path
    store: Path

    @property
    def venv(self) -> Path:
        return self.dir / ".venv"

    def ii(self, *args: str, timeout: float = 600) -> Run:
        return self.wine.ii(*args, cwd=self.dir, timeout=timeout)

    def status(self) -> dict[str, object]:
        run = self.ii("status", "--venv", winpath(self.venv), "--json")
        assert run.code == 0, run.out
        data = run.json()
        assert isinstance(data, dict)
        return data

    def install(self, *extra: str) -> Run:
        return self.ii("install", "--skip-wheelhouse", "--variant", "cpu", "--venv", winpath(self.venv), *extra)

    def hello(self) -> Run:
        return self.wine.run(winpath(self.venv / "Scripts" / "hello.exe"), cwd=self.dir)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    base = tmp_path_factory.mktemp("wine")
    stack = base / "stack"
    make_wheel(stack, "alpha", "1.0", requires=["beta>=1"])
    make_wheel(stack, "beta", "1.0")
    make_wheel(stack, "tool-cli", "1.0", files={
        "tool_cli/__init__.py": "def main():\n    print('hello from tool-cli')\n    return 0\n",
        "tool_cli-1.0.dist-info/entry_points.txt": "[console_scripts]\nhello = tool_cli:main\n"})
    folder = base / "my project"  # a space in every path the tool writes
    folder.mkdir()
    wine = Wine(Path(ROOT), base / "store")
    subprocess.run(["wineserver", "-p"], env=wine.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    yield Project(wine, folder, stack, base / "store")


def test_lock_from_plain_requirements_targets_the_windows_host(project: Project) -> None:
    run = project.ii("lock", "alpha", "tool-cli", "--no-index", "--find-links", winpath(project.stack),
                     "-o", "metadata\\dependencies.json")
    assert run.code == 0, run.out
    manifest = json.loads((project.dir / "metadata" / "dependencies.json").read_text(encoding="utf-8"))
    assert [p["name"] for p in manifest["platforms"]] == ["win_amd64"]  # the host's platform, not manylinux
    assert manifest["python"]["version"] == "3.12"  # the host's Python
    assert sorted(p["name"] for p in manifest["packages"]) == ["alpha", "beta", "tool-cli"]


def test_download_fills_the_wheelhouse(project: Project) -> None:
    run = project.ii("download", "--variant", "cpu", "--find-links", winpath(project.stack))
    assert run.code == 0, run.out
    assert sorted(p.name for p in (project.dir / "wheelhouse").glob("*.whl")) == [
        "alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl", "tool_cli-1.0-py3-none-any.whl"]


def test_detect_reads_nvidia_smi_exe(project: Project, tmp_path: Path) -> None:
    """SIMULATED: a batch file named nvidia-smi stands in for the driver's tool (no GPU here)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi.bat").write_text("@echo 560.35.03, NVIDIA GeForce RTX 4090, 8.9\r\n", encoding="ascii")
    project.wine.env["WINEPATH"] = winpath(fake)
    try:
        run = project.ii("detect", "--json")
    finally:
        del project.wine.env["WINEPATH"]
    assert run.code == 0, run.out
    data = run.json()
    assert isinstance(data, dict)
    assert data["driver"] == "560.35.03" and data["driver_source"] == "nvidia-smi", data
    assert "win_amd64" in data["platform_tags"]  # type: ignore[operator]


def test_first_install_builds_verifies_and_renames_into_place(project: Project) -> None:
    run = project.install()
    assert run.code == 0, run.out
    assert "rename" in run.out  # the mode it chose is said
    assert project.venv.is_dir() and not project.venv.is_symlink()
    assert (project.venv / "installer-generation").read_text(encoding="utf-8").strip() == "g0001"
    assert (project.venv / "Scripts" / "python.exe").is_file()
    assert (project.venv / "Lib" / "site-packages" / "alpha" / "__init__.py").is_file()
    hello = project.hello()
    assert hello.code == 0 and "hello from tool-cli" in hello.out, hello.out


def test_verify_is_healthy(project: Project) -> None:
    run = project.ii("verify", "--venv", winpath(project.venv), "--json")
    assert run.code == 0, run.out


def test_the_shims_boot_on_windows(project: Project) -> None:
    """The .pth (and .start) in Lib\\site-packages run at every start of the generation's python.exe."""
    path = project.dir / "metadata" / "dependencies.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["shims"]["blocked_modules"] = [{"mode": "absent", "name": "torchao", "reason": "a test block"}]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    run = project.install()
    assert run.code == 0, run.out
    probe = project.wine.run(winpath(project.venv / "Scripts" / "python.exe"), "-c",
                             "import importlib.util; print('spec', importlib.util.find_spec('torchao'))\n"
                             "import torchao", cwd=project.dir)
    assert probe.code == 1 and "spec None" in probe.out, probe.out
    assert "ModuleNotFoundError" in probe.out and "a test block" in probe.out, probe.out


def test_second_install_and_rollback(project: Project) -> None:
    run = project.install("--force")
    assert run.code == 0, run.out
    status = project.status()
    assert status["current"] == "g0003"
    names = [g["generation"] for g in status["generations"]]  # type: ignore[index,union-attr]
    assert names == ["g0001", "g0002", "g0003"]
    assert project.hello().code == 0
    run = project.ii("rollback", "--venv", winpath(project.venv))
    assert run.code == 0, run.out
    assert project.status()["current"] == "g0002"
    hello = project.hello()
    assert hello.code == 0 and "hello from tool-cli" in hello.out
    assert project.ii("verify", "--venv", winpath(project.venv)).code == 0


def test_pruning_deletes_read_only_links_and_the_store_stays_read_only(project: Project) -> None:
    for _ in range(2):
        run = project.install("--force", "--keep", "0")
        assert run.code == 0, run.out
    gens = project.status()["generations"]
    assert len(gens) == 1  # type: ignore[arg-type]
    leftovers = [p.name for p in (project.dir / ".venv.generations").iterdir() if p.name.startswith("g")]
    assert leftovers == []  # nothing half-deleted (Windows refuses to delete read-only files as they are)
    verify = project.ii("store", "verify", "--store", winpath(project.store))
    assert verify.code == 0, verify.out  # every store file read-only and intact again
    writable = [p for p in project.store.rglob("*") if p.is_file() and "entries" in p.parts and os.access(p, os.W_OK)
                and os.stat(p).st_mode & 0o222]
    assert writable == []


def test_store_gc_keeps_what_the_current_generation_uses(project: Project) -> None:
    run = project.ii("store", "gc", "--store", winpath(project.store), "--json")
    assert run.code == 0, run.out
    assert project.ii("verify", "--venv", winpath(project.venv)).code == 0
    assert project.hello().code == 0


def test_kills_at_random_instants_leave_a_verified_generation(project: Project) -> None:
    seed = int(os.environ.get("IMMUTABLE_INSTALLER_WINE_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    started = time.monotonic()
    run = project.install("--force")
    assert run.code == 0, run.out
    duration = time.monotonic() - started
    outcomes = []
    for i in range(KILLS):
        delay = rng.uniform(0.5, duration)
        proc = project.wine.start(project.wine.tool, "install", "--skip-wheelhouse", "--variant", "cpu", "--venv",
                                  winpath(project.venv), "--force", cwd=project.dir)
        time.sleep(delay)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the Windows process and every child it started
        code = project.wine.finish(proc).code
        outcomes.append(f"kill {i} at {delay:.1f} s (seed {seed}): exit {code}")
        # whatever instant it died at, the next command finds a complete, verified generation in place
        status = project.status()
        assert status["current"] is not None, "\n".join(outcomes)
        verify = project.ii("verify", "--venv", winpath(project.venv))
        assert verify.code == 0, "\n".join(outcomes) + "\n" + verify.out
    final = project.install("--force", "--keep", "0")
    assert final.code == 0, "\n".join(outcomes) + "\n" + final.out
    assert project.hello().code == 0
    store_verify = project.ii("store", "verify", "--store", winpath(project.store))
    assert store_verify.code == 0, store_verify.out
    print("\n".join(outcomes))


def test_a_bundle_bootstraps_on_windows_with_the_steps_of_install_sh(project: Project) -> None:
    """install.ps1 runs bootstrap.py with the target Python, as install.sh does; here that Python is Windows'
    (PowerShell itself is not available under Wine, so its two-line wrapper is the one part not run)."""
    out = project.dir.parent / "windows-bundle.tar"
    made = cli("bundle", "-o", str(out), "--manifest", str(project.dir / "metadata" / "dependencies.json"),
               "--wheelhouse", str(project.dir / "wheelhouse"), "--platform", "win_amd64", cwd=project.dir.parent)
    assert made.returncode == 0, made.stdout + made.stderr
    site = project.dir.parent / "site with space"
    import tarfile

    with tarfile.open(out) as tar:
        tar.extractall(site, filter="data")
    top = site / "windows-bundle"
    assert "bootstrap.py" in (top / "install.ps1").read_text(encoding="utf-8")
    tools = {p.name.split("-")[0] for p in (top / "tool").glob("*.whl")}
    assert "colorama" in tools  # typer's Windows-only dependency, added for the target though made on Linux
    run = project.wine.run(winpath(project.wine.root / "python" / "python.exe"), "-I", winpath(top / "bootstrap.py"),
                           "--variant", "cpu", cwd=site)
    assert run.code == 0, run.out
    assert "nothing else is here" in run.out
    verify = project.wine.run(winpath(top / ".tool" / "Scripts" / "immutable-installer.exe"), "verify", "--venv",
                              winpath(top / ".venv"), cwd=top)
    assert verify.code == 0, verify.out
    hello = project.wine.run(winpath(top / ".venv" / "Scripts" / "hello.exe"), cwd=top)
    assert hello.code == 0 and "hello from tool-cli" in hello.out
