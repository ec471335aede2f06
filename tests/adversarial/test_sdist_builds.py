"""A hostile sdist built by ``lock --build``: its build code tries to write outside its build folder (the user's
home, the project, /tmp), to reach the network (the index itself), and to smuggle a credential from the
environment or the home folder into the wheel it builds. None of it may happen; where bubblewrap is missing the
build is refused before any of its code runs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

from conftest import REPO, Index, make_sdist, make_wheel
from immutable_installer.wheelhouse.sdist_build import sandbox_available

SECRET = "s3cr3t-" + uuid.uuid4().hex


def _hostile(index: Index, home: Path, project: Path, tmp_marker: Path) -> None:
    code = f"""
import urllib.request
leaks = []
for target in ({str(home / "pwned")!r}, {str(project / "pwned")!r}, {str(tmp_marker)!r}):
    try:
        with open(target, "w") as fh:
            fh.write("pwned")
    except OSError:
        pass
try:
    urllib.request.urlopen({index.base + "/files/canary-from-the-build"!r}, timeout=3).read()
    leaks.append("network")
except Exception:
    pass
leaks.append(os.environ.get("IMMUTABLE_TEST_SECRET", ""))
for secret_file in ({str(home / ".netrc")!r}, os.path.expanduser("~/.netrc")):
    try:
        leaks.append(open(secret_file).read())
    except OSError:
        pass
FILES["evil/leak.txt"] = "|".join(leaks)
"""
    make_wheel(index.root, "app", "2.0", requires=["evil==1.0"])
    make_sdist(index.root, "evil", "1.0", files={"evil/__init__.py": ""}, extra_build_code=code)


def test_a_hostile_sdist_build_is_contained_or_refused(index: Index, tmp_path: Path) -> None:
    home, project = tmp_path / "home", Path(REPO).parent / f".hostile-project-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    project.mkdir()
    tmp_marker = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"
    (home / ".netrc").write_text(f"machine example.org login me password {SECRET}\n")
    try:
        _hostile(index, home, project, tmp_marker)
        env = {**os.environ, "HOME": str(home), "IMMUTABLE_TEST_SECRET": SECRET, "PYTHONPATH": str(REPO)}
        env.pop("IMMUTABLE_INSTALLER_UNSANDBOXED_BUILDS", None)
        proc = subprocess.run([sys.executable, "-m", "immutable_installer", "lock", "app==2.0", "--index-url",
                               index.url, "--build", "evil", "-o", str(project / "deps.json")], cwd=project, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        for marker in (home / "pwned", project / "pwned", tmp_marker):
            assert not marker.exists(), f"the build wrote {marker}"
        assert ("canary-from-the-build", None) not in index.requests, "the build reached the network"
        if not sandbox_available():
            assert proc.returncode == 1 and "bubblewrap" in proc.stderr, proc.stderr
            return
        assert proc.returncode == 0, proc.stderr
        built = next((Path(env.get("IMMUTABLE_INSTALLER_CACHE", "")) / "built").rglob("evil-1.0-*.whl"))
        with zipfile.ZipFile(built) as zf:
            leaked = zf.read("evil/leak.txt").decode()
        assert SECRET not in leaked and "network" not in leaked, leaked
        assert SECRET not in (project / "deps.json").read_text()
    finally:
        tmp_marker.unlink(missing_ok=True)
        import shutil

        shutil.rmtree(project, ignore_errors=True)
