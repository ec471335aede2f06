"""A wheel built from an sdist, only for the names the user gave (``lock --build NAME``), once, in a sandbox.

Building runs the sdist's own code, so it is contained: the build backend runs under bubblewrap with no
network at all, a read-only view of the machine (the home folder hidden, ``/tmp`` private), and one writable
folder, the build's own; its environment holds only what a build needs (no credentials, no ``PIP_*``), with
``SOURCE_DATE_EPOCH`` from the sdist itself and a fixed umask, so that the same sdist built with the same
pinned build requirements gives the same bytes on another machine. Its build requirements are pinned wheels
(filename + sha256), downloaded and hash-checked before the sandbox starts, and installed offline into a
fresh build environment.

Where bubblewrap is missing (macOS, Windows, a container without user namespaces) a build is refused unless
``IMMUTABLE_INSTALLER_UNSANDBOXED_BUILDS=1`` says to build without it (docs/security.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename, parse_wheel_filename

from immutable_installer.core.errors import SdistBuildError
from immutable_installer.core.events import Message, Reporter, null_reporter
from immutable_installer.core.model import BuildRequirement
from immutable_installer.dists.hashing import sha256_file
from immutable_installer.runner import Runner, clean_env, uv_binary

UNSANDBOXED = "IMMUTABLE_INSTALLER_UNSANDBOXED_BUILDS"
DEFAULT_REQUIRES = ("setuptools>=40.8.0",)  # PEP 517's fallback for an sdist without [build-system]
DEFAULT_BACKEND = "setuptools.build_meta:__legacy__"
ZIP_EPOCH = 315532800  # 1980-01-01: the earliest time a zip member can carry


@dataclass(frozen=True)
class BuildSystem:
    """An sdist's ``[build-system]`` (PEP 517/518), or the setuptools fallback."""

    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()


def sandbox_available() -> bool:
    return shutil.which("bwrap") is not None


def read_build_system(sdist: Path) -> BuildSystem:
    """The sdist's build system, read from its ``pyproject.toml`` without unpacking or running anything."""
    text = _member(sdist, "pyproject.toml")
    if text is None:
        return BuildSystem(DEFAULT_REQUIRES, DEFAULT_BACKEND)
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SdistBuildError(f"{sdist.name}: its pyproject.toml is not valid TOML ({exc})") from None
    table = data.get("build-system")
    if not isinstance(table, dict):
        return BuildSystem(DEFAULT_REQUIRES, DEFAULT_BACKEND)
    requires = table.get("requires", list(DEFAULT_REQUIRES))
    backend = table.get("build-backend", DEFAULT_BACKEND)
    path = table.get("backend-path", [])
    if not (isinstance(requires, list) and all(isinstance(r, str) for r in requires) and isinstance(backend, str)
            and isinstance(path, list) and all(isinstance(p, str) for p in path)):
        raise SdistBuildError(f"{sdist.name}: its [build-system] table is malformed")
    return BuildSystem(tuple(requires), backend, tuple(path))


def _member(sdist: Path, name: str) -> str | None:
    """A file at the sdist's top folder (``pkg-1.0/pyproject.toml``), or None."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                found = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/" + name)]
                return zf.read(found[0]).decode("utf-8") if found else None
        with tarfile.open(sdist) as tf:
            for member in tf.getmembers():
                if member.name.count("/") == 1 and member.name.endswith("/" + name) and member.isfile():
                    fh = tf.extractfile(member)
                    return fh.read(1 << 20).decode("utf-8") if fh else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise SdistBuildError(f"{sdist.name} is not a readable sdist ({exc})") from None
    return None


def _unpack(sdist: Path, into: Path) -> tuple[Path, int]:
    """The sdist's files under ``into`` (no member may leave it, no links, no devices) and its newest mtime (the
    build's SOURCE_DATE_EPOCH: the same on every machine for the same file)."""
    into.mkdir(parents=True)
    newest = ZIP_EPOCH
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                for info in zf.infolist():
                    target = (into / info.filename).resolve()
                    if not str(target).startswith(str(into.resolve()) + os.sep):
                        raise SdistBuildError(f"{sdist.name}: member {info.filename!r} would land outside its folder")
                zf.extractall(into)
        else:
            with tarfile.open(sdist) as tf:
                members = tf.getmembers()
                for m in members:
                    newest = max(newest, int(m.mtime))
                tf.extractall(into, filter="data")  # refuses absolute paths, "..", links out, devices
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise SdistBuildError(f"{sdist.name} cannot be unpacked safely ({exc})") from None
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1:
        raise SdistBuildError(f"{sdist.name}: expected one top folder, found {len(tops)}")
    return tops[0], newest


def sandboxed(argv: Sequence[str], work: Path, cwd: Path, expose: Sequence[str] = ()) -> list[str]:
    """``argv`` under bubblewrap: no network, everything read-only but ``work``, the home folders hidden (but
    ``expose``: the interpreter's installation, read-only), a private ``/tmp``; or as it is when unsandboxed
    builds were asked for."""
    if not sandbox_available():
        if os.environ.get(UNSANDBOXED) == "1":
            return list(argv)
        raise SdistBuildError("building from an sdist runs its code, and bubblewrap (bwrap), which contains it, "
                              "is not installed here",
                              hint="install bubblewrap (apt-get install bubblewrap), or set "
                                   f"{UNSANDBOXED}=1 to build without a sandbox (docs/security.md)")
    hidden = [p for p in (os.path.expanduser("~"), "/home", "/root") if os.path.isdir(p)]
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for folder in hidden:
        args += ["--tmpfs", folder]
    for folder in expose:
        args += ["--ro-bind", folder, folder]
    args += ["--bind", str(work), str(work), "--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
             "--die-with-parent", "--new-session", "--chdir", str(cwd), "--"]
    return args + list(argv)


def build_env(work: Path, epoch: int) -> dict[str, str]:
    """Only what a build needs: no credentials, tokens or index settings of the caller reach the sdist's code."""
    home = work / "home"
    (work / "tmp").mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(work / "tmp"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "SOURCE_DATE_EPOCH": str(epoch), "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}


class SdistBuilder:
    """Builds one wheel from one sdist with pinned build requirements (``build``); the caller downloaded the
    sdist and checked its sha256."""

    def __init__(self, work: Path, python: str, runner: Runner | None = None,
                 reporter: Reporter = null_reporter,
                 fetch: Callable[[BuildRequirement, Path], None] | None = None) -> None:
        self.work = work
        self.python = python
        self.runner = runner or Runner()
        self.report = reporter
        self.fetch = fetch or _fetch

    def build(self, sdist: Path, requires: Sequence[BuildRequirement], system: BuildSystem,
              more: Callable[[list[str]], list[BuildRequirement]] | None = None) -> tuple[Path, list[BuildRequirement]]:
        """The wheel (in ``work/out``) and every build requirement it was built with (the backend may ask for
        more: ``more`` pins them, or, at a rebuild from recorded provenance, they must be there already)."""
        try:
            name, version = parse_sdist_filename(sdist.name)
        except InvalidSdistFilename as exc:
            raise SdistBuildError(f"{sdist.name} is not an sdist file name ({exc})") from None
        src, epoch = _unpack(sdist, self.work / "src")
        env = build_env(self.work, epoch)
        python = self._environment()
        pinned = list(requires)
        self._install(python, pinned)
        wanted = self._hook(python, system, src, env, "get_requires_for_build_wheel")
        missing = _unsatisfied(list(wanted), pinned)
        if missing:
            if more is None:
                raise SdistBuildError(f"{sdist.name}: the build backend asks for {', '.join(missing)}, which the "
                                      "recorded build requirements lack", hint="re-lock with --build")
            added = more(missing)
            self._install(python, added)
            pinned += added
        out = self.work / "out"
        out.mkdir()
        filename = str(self._hook(python, system, src, env, "build_wheel", out))
        wheel = out / os.path.basename(filename)
        if not wheel.is_file():
            raise SdistBuildError(f"{sdist.name}: the build backend reported {filename!r}, which it did not write")
        try:
            wname, wversion, _, _ = parse_wheel_filename(wheel.name)
        except ValueError as exc:
            raise SdistBuildError(f"{sdist.name}: the build wrote {wheel.name!r}, not a wheel ({exc})") from None
        if wname != canonicalize_name(name) or wversion != version:
            raise SdistBuildError(f"{sdist.name} built {wheel.name}: {wname} {wversion}, not {name} {version}")
        return wheel, pinned

    def _environment(self) -> str:
        """A fresh, empty build environment for the target's interpreter."""
        env_dir = self.work / "env"
        result = self.runner.run([self.runner.python(), "-m", "virtualenv", "--no-seed", "--no-periodic-update",
                                  "--quiet", "--python", self.python, str(env_dir)], env=clean_env(), timeout=300)
        if not result.ok:
            raise SdistBuildError(f"the build environment could not be made: {result.tail(3)}")
        return str(env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))

    def _install(self, python: str, requires: Sequence[BuildRequirement]) -> None:
        """The pinned wheels, hash-checked, installed offline (no index: only these files)."""
        if not requires:
            return
        deps = self.work / "deps"
        deps.mkdir(exist_ok=True)
        for req in requires:
            target = deps / req.filename
            if not target.is_file():
                self.fetch(req, target)
            if sha256_file(target) != req.sha256:
                raise SdistBuildError(f"build requirement {req.filename} does not match its pinned sha256")
        pins = self.work / "build-requirements.txt"
        pins.write_text("".join(f"{deps / r.filename} --hash=sha256:{r.sha256}\n" for r in requires),
                        encoding="utf-8")
        result = self.runner.run([uv_binary(), "pip", "install", "--python", python, "--no-config", "--no-index",
                                  "--no-deps", "--no-cache", "--require-hashes", "--link-mode", "copy", "-r",
                                  str(pins)], env=clean_env(), timeout=600)
        if not result.ok:
            raise SdistBuildError(f"the build requirements could not be installed: {result.tail(3)}")

    def _hook(self, python: str, system: BuildSystem, src: Path, env: dict[str, str], hook: str,
              out: Path | None = None) -> Any:
        result_file = self.work / f"{hook}.json"
        script = self.work / "build_backend.py"  # inside the one folder the sandbox shows writable and whole
        shutil.copyfile(Path(__file__).with_name("build_backend.py"), script)
        argv = [python, "-I", str(script), hook, system.backend, json.dumps(list(system.backend_path)),
                str(out or self.work), str(result_file)]
        if os.name != "nt":  # the same modes on every machine: the wheel's files take them
            argv = ["/bin/sh", "-c", 'umask 022 && exec "$@"', "sh", *argv]
        prefix = str(Path(os.path.realpath(self.python)).parent.parent)  # a home folder's pyenv stays visible
        ran = self.runner.run(sandboxed(argv, self.work, src, [prefix]), env=env, cwd=str(src), timeout=3600)
        try:
            answer = json.loads(result_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SdistBuildError(f"the build backend {system.backend} did not answer {hook}: {ran.tail(4)}") from None
        if not answer.get("ok"):
            raise SdistBuildError(f"{hook} failed in the build backend {system.backend}: {answer.get('error')}",
                                  details=str(answer.get("traceback", "")).splitlines()[-12:])
        self.report(Message("info", f"build backend {system.backend}: {hook} done"))
        return answer.get("value")


def _unsatisfied(wanted: list[str], pinned: Sequence[BuildRequirement]) -> list[str]:
    """The requirements the backend asked for that no pinned wheel satisfies (by name and version)."""
    from packaging.requirements import InvalidRequirement, Requirement

    have = {}
    for pin in pinned:
        wname, wversion, _, _ = parse_wheel_filename(pin.filename)
        have[str(wname)] = wversion
    out = []
    for text in wanted:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            out.append(text)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = have.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            out.append(text)
    return out


def _fetch(req: BuildRequirement, target: Path) -> None:
    from immutable_installer.net import fetch

    if not req.url:
        raise SdistBuildError(f"build requirement {req.filename} has no URL to fetch it from")
    if req.url.startswith(("http://", "https://")):
        fetch(req.url, target, req.sha256)
    else:
        shutil.copyfile(re.sub(r"^file://", "", req.url), target)
