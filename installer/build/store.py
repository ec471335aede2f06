"""The content-addressed store: every wheel installed once per interpreter, bytecode compiled once, read-only.

A generation is then built by linking (installer/build/linking.py) instead of unzipping and compiling again,
so a fresh, verified generation costs seconds and almost no disk (docs/store.md).

Layout under the store root (``~/.cache/immutable-installer/store``, ``--store``, ``IMMUTABLE_INSTALLER_STORE``)::

    entries/<interp>-<wheel sha256>/entry.json   what the entry holds: every file with its sha256, the scripts
    entries/<interp>-<wheel sha256>/root/...      the wheel as pip installs it into a virtualenv, relative to
                                                  the prefix (lib/python3.11/site-packages/..., bin/...), and
                                                  the bytecode the target interpreter compiled for it
    locks/<key>.lock                              one builder per entry; the others wait, then reuse it
    tmp/<build>/ + tmp/<build>.lock               builds in progress; renamed into entries/ when complete
    roots/<id>.json                               which generation uses which entries (status, gc)
    .gc.lock                                      roots are registered and collected under it

An entry is complete exactly when ``entries/<key>`` exists: it is assembled under ``tmp/`` and renamed into
place in one ``rename(2)``, after its files were made read-only, and never changed afterwards. A killed
build leaves only a ``tmp/`` folder whose lock nobody holds; the next builder or ``store gc`` removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from installer.build import relocate
from installer.core.errors import BuildError, UsageError
from installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from installer.core.names import canonical
from installer.runner import Runner, clean_env
from installer.verify.verifier import file_hash, installed_dists, site_packages, venv_python
from installer.wheelhouse.wheels import entry_point_targets

STORE_ENV = "IMMUTABLE_INSTALLER_STORE"
ENTRY_FORMAT = 1


def default_store() -> Path:
    """``IMMUTABLE_INSTALLER_STORE`` or ``~/.cache/immutable-installer/store`` (XDG_CACHE_HOME honoured)."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "immutable-installer" / "store"


def interpreter_tag(implementation: str, version: str) -> str:
    """``cp311`` for CPython 3.11: bytecode and installed layout depend on implementation and X.Y only."""
    prefix = {"cpython": "cp", "pypy": "pp"}.get(implementation, implementation)
    return prefix + version.replace(".", "")


def interpreter_version(tag: str) -> str:
    """``3.11`` for ``cp311``."""
    digits = tag.lstrip("abcdefghijklmnopqrstuvwxyz")
    return f"{digits[0]}.{digits[1:]}"


@dataclass(frozen=True)
class StoreWheel:
    """A wheel to put in the store: its pinned identity and where it lies."""

    name: str
    version: str
    filename: str
    sha256: str
    path: Path


@dataclass(frozen=True)
class Entry:
    """One complete store entry."""

    key: str
    path: Path
    meta: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path / "root"

    @property
    def files(self) -> list[list[Any]]:
        """``[relative path, "sha256=...", size]`` for every file, relative to the prefix."""
        return list(self.meta["files"])

    @property
    def scripts(self) -> dict[str, dict[str, Any]]:
        """Files that name the build interpreter (written per generation): path -> kind, header length."""
        return dict(self.meta.get("scripts", {}))

    @property
    def record(self) -> str:
        """The prefix-relative path of the entry's RECORD."""
        return str(self.meta["record"])

    @property
    def bytes(self) -> int:
        return sum(int(f[2]) for f in self.meta["files"])


@dataclass
class Damage:
    """What ``store verify`` found wrong with one entry."""

    key: str
    wheel: str
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.changed:
            parts.append(f"{len(self.changed)} changed ({', '.join(self.changed[:3])})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({', '.join(self.missing[:3])})")
        return f"{self.key} ({self.wheel}): " + "; ".join(parts)


class Store:
    """The store at one root."""

    def __init__(self, root: Path | None = None, runner: Runner | None = None,
                 reporter: Reporter = null_reporter) -> None:
        self.root = Path(os.path.abspath(root if root is not None else default_store()))
        self.runner = runner or Runner()
        self.report = reporter

    # ------------------------------------------------------------------------------------------ layout
    @property
    def entries_dir(self) -> Path:
        return self.root / "entries"

    def key(self, sha256: str, interp: str) -> str:
        return f"{interp}-{sha256}"

    def entry_path(self, key: str) -> Path:
        return self.entries_dir / key

    def load(self, key: str) -> Entry:
        path = self.entry_path(key)
        try:
            meta = json.loads((path / "entry.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BuildError(f"store entry {key} is unreadable ({exc})",
                             hint="run `immutable-installer store verify --repair`") from None
        return Entry(key, path, meta)

    def entry_keys(self) -> list[str]:
        if not self.entries_dir.is_dir():
            return []
        return sorted(p.name for p in self.entries_dir.iterdir() if p.is_dir())

    def _mkdirs(self) -> None:
        for sub in ("entries", "locks", "tmp", "roots"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------------ filling
    def ensure(self, groups: Sequence[Sequence[StoreWheel]], python: str, interp: str) -> dict[str, Entry]:
        """Every wheel of ``groups`` as a complete entry (sha256 -> entry), building the missing ones.

        Builds take one lock per missing entry (in sorted order, so two installers never deadlock); a second
        installer needing the same entry waits for the first and then finds it complete.
        """
        try:
            self._mkdirs()
        except OSError as exc:
            raise UsageError(f"the store {self.root} cannot be created ({exc.strerror})",
                             hint="pass a writable --store PATH or set IMMUTABLE_INSTALLER_STORE") from None
        wheels = [w for g in groups for w in g]
        missing = sorted({self.key(w.sha256, interp) for w in wheels if not self.entry_path(self.key(w.sha256,
                                                                                                     interp)).is_dir()})
        if missing:
            locks = []
            try:
                for key in missing:
                    lock = FileLock(str(self.root / "locks" / f"{key}.lock"))
                    try:
                        lock.acquire(timeout=0)
                    except Timeout:
                        self.report(Message("info", f"another installer is building store entry {key[:20]}...; "
                                                    "waiting to reuse it"))
                        lock.acquire()
                    locks.append(lock)
                self.clean_stale_builds()
                todo = [[w for w in g if not self.entry_path(self.key(w.sha256, interp)).is_dir()] for g in groups]
                todo = [g for g in todo if g]
                if todo:
                    self._build(todo, python, interp)
            finally:
                for lock in locks:
                    lock.release()
        return {w.sha256: self.load(self.key(w.sha256, interp)) for w in wheels}

    def clean_stale_builds(self) -> list[str]:
        """Remove ``tmp/`` builds whose builder is gone (its lock is free)."""
        removed: list[str] = []
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return removed
        for lockfile in tmp.glob("*.lock"):
            lock = FileLock(str(lockfile))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue
            try:
                build = lockfile.with_suffix("")
                if build.exists():
                    _rmtree(build)
                    removed.append(build.name)
            finally:
                lock.release()
                lockfile.unlink(missing_ok=True)
        for orphan in tmp.iterdir():  # a build folder whose lock file was never written
            if orphan.is_dir() and not orphan.with_name(orphan.name + ".lock").exists():
                _rmtree(orphan)
                removed.append(orphan.name)
        return removed

    def _build(self, groups: list[list[StoreWheel]], python: str, interp: str) -> None:
        """Install the wheels with pip into a scratch virtualenv, group by group, compiling each group while
        the next one installs (both cores), then split the result into one entry per wheel."""
        count = sum(len(g) for g in groups)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        build = self.root / "tmp" / name
        build_lock = FileLock(str(self.root / "tmp" / f"{name}.lock"))
        build_lock.acquire()
        started = time.monotonic()
        self.report(Phase("store", f"{count} new store entr{'y' if count == 1 else 'ies'} "
                                   "(installed and compiled once, then linked into every generation)"))
        compiler = BackgroundCompiler(self.runner)
        try:
            build.mkdir()
            venv = build / "venv"
            result = self.runner.run([python, "-m", "venv", "--without-pip", str(venv)], env=clean_env(),
                                     timeout=300)
            if not result.ok:
                raise BuildError(f"creating the store's build environment failed: {result.tail(3)}")
            py = venv_python(venv)
            site = site_packages(venv)
            done = 0
            for group in groups:
                pip_install(self.runner, py, group, build)
                dists = installed_dists(site)
                compiler.start(py, site, [dists[canonical(w.name)].record for w in group
                                          if canonical(w.name) in dists], build)
                done += len(group)
                self.report(Progress("store", done, count, "wheels", "installed"))
            compiler.wait()
            dists = installed_dists(site)
            moved: dict[str, tuple[str, str]] = {}  # scratch path -> (entry key, relative path) it went to
            for group in groups:
                for wheel in group:
                    dist = dists.get(canonical(wheel.name))
                    if dist is None:
                        raise BuildError(f"pip installed no distribution for {wheel.filename}")
                    self._assemble(build, venv, site, wheel, dist.record, dist.dist_info, interp, str(py), moved)
        finally:
            compiler.kill()
            _rmtree(build)
            build_lock.release()
            (self.root / "tmp" / f"{name}.lock").unlink(missing_ok=True)
        self.report(PhaseDone("store", time.monotonic() - started))

    def _assemble(self, build: Path, venv: Path, site: Path, wheel: StoreWheel, record: Sequence[tuple[str, str]],
                  dist_info: str, interp: str, build_python: str, moved: dict[str, tuple[str, str]]) -> None:
        key = self.key(wheel.sha256, interp)
        staging = build / "entries" / key
        root = staging / "root"
        files: list[list[Any]] = []
        scripts: dict[str, dict[str, Any]] = {}
        import importlib.util

        ep_file = site / dist_info / "entry_points.txt"
        entry_points = set(entry_point_targets(ep_file.read_text(encoding="utf-8"))) if ep_file.is_file() else set()
        paths = []
        for path, _digest in record:
            src = Path(os.path.normpath(site / path))
            rel = os.path.relpath(src, venv)
            if rel.startswith(".."):
                raise BuildError(f"{wheel.filename} installs {path} outside its environment; refusing to store it")
            paths.append(rel)
            if path.endswith(".py"):
                pyc = Path(importlib.util.cache_from_source(str(src)))
                if pyc.exists() or str(pyc) in moved:
                    paths.append(os.path.relpath(pyc, venv))
        for rel in sorted(set(paths)):
            src = venv / rel
            dst = root / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if str(src) in moved:  # the same file shipped by two wheels with the same bytes (scan allowed it)
                owner, owner_rel = moved[str(src)]
                done = self.entry_path(owner) / "root" / owner_rel
                shutil.copy2(done if done.exists() else build / "entries" / owner / "root" / owner_rel, dst)
            elif src.exists():
                os.rename(src, dst)
                moved[str(src)] = (key, rel)
            else:
                continue  # RECORD lists a file pip did not write (e.g. a .pyc pip was told not to compile)
            digest = file_hash(dst)
            files.append([rel, digest, dst.stat().st_size])
            if rel.startswith("bin/"):
                found = relocate.script_kind(_head(dst), build_python, rel[4:] in entry_points)
                if found is not None:
                    scripts[rel] = {"kind": found[0], "header": found[1]}
        meta = {
            "format": ENTRY_FORMAT, "key": key, "interpreter": interp, "name": canonical(wheel.name),
            "version": wheel.version, "wheel": wheel.filename, "sha256": wheel.sha256,
            "build_python": build_python, "record": os.path.relpath(site / dist_info / "RECORD", venv),
            "files": files, "scripts": scripts, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "entry.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _make_read_only(staging)
        os.rename(staging, self.entry_path(key))

    # ------------------------------------------------------------------------------------------ roots
    def register(self, generation: Path, keys: Iterable[str]) -> None:
        """Record that ``generation`` uses ``keys`` (before it links them, so gc never takes them away)."""
        self._mkdirs()
        generation = Path(os.path.abspath(generation))
        ident = hashlib.sha256(str(generation).encode()).hexdigest()[:24]
        data = {"generation": str(generation), "entries": sorted(set(keys))}
        with FileLock(str(self.root / ".gc.lock")):
            tmp = self.root / "roots" / f".{ident}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, self.root / "roots" / f"{ident}.json")

    def roots(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        folder = self.root / "roots"
        if not folder.is_dir():
            return out
        for path in sorted(folder.glob("*.json")):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            data["_file"] = str(path)
            data["alive"] = Path(data.get("generation", "")).is_dir()
            out.append(data)
        return out

    # ------------------------------------------------------------------------------------------ commands
    def status(self) -> dict[str, Any]:
        """Entries, their bytes (each store file counted once), and which generations use each."""
        users: dict[str, list[str]] = {}
        for root in self.roots():
            if root["alive"]:
                for key in root.get("entries", []):
                    users.setdefault(key, []).append(root["generation"])
        entries = []
        for key in self.entry_keys():
            try:
                entry = self.load(key)
            except BuildError:
                entries.append({"key": key, "wheel": None, "bytes": 0, "files": 0, "used_by": users.get(key, []),
                                "damaged": True})
                continue
            entries.append({"key": key, "wheel": entry.meta.get("wheel"), "bytes": entry.bytes,
                            "files": len(entry.meta["files"]), "used_by": sorted(users.get(key, []))})
        return {"store": str(self.root), "entries": entries, "count": len(entries),
                "bytes": sum(e["bytes"] for e in entries),
                "unused": sum(1 for e in entries if not e["used_by"])}

    def verify(self, keys: Iterable[str] | None = None) -> list[Damage]:
        """Every file of every entry (or of ``keys``) against the sha256 recorded when it was built."""
        damaged = []
        for key in sorted(keys) if keys is not None else self.entry_keys():
            try:
                entry = self.load(key)
            except BuildError:
                damaged.append(Damage(key, "?", missing=["entry.json"]))
                continue
            damage = Damage(key, str(entry.meta.get("wheel")))
            for rel, digest, _size in entry.files:
                got = file_hash(entry.root / rel)
                if got is None:
                    damage.missing.append(rel)
                elif got != digest:
                    damage.changed.append(rel)
            if damage.changed or damage.missing:
                damaged.append(damage)
        return damaged

    def repair(self, damaged: Sequence[Damage], wheelhouse: Path, find_python: Callable[[str], str]) -> list[str]:
        """Rebuild damaged entries from their wheels in ``wheelhouse`` (found by filename, checked by sha256);
        ``find_python`` gives an interpreter for an entry's ``X.Y``."""
        from installer.wheelhouse.fetch import sha256_file

        rebuilt = []
        for damage in damaged:
            try:
                meta = self.load(damage.key).meta
            except BuildError:
                raise BuildError(f"store entry {damage.key} has no readable entry.json; remove it with "
                                 f"`rm -rf {self.entry_path(damage.key)}` and reinstall") from None
            wheel = wheelhouse / meta["wheel"]
            if not wheel.is_file() or sha256_file(wheel) != meta["sha256"]:
                raise BuildError(f"cannot repair {damage.key}: {meta['wheel']} with sha256 {meta['sha256'][:16]}... "
                                 f"is not in {wheelhouse}",
                                 hint="run `immutable-installer download` first, or pass --wheelhouse")
            lock = FileLock(str(self.root / "locks" / f"{damage.key}.lock"))
            with lock:
                trash = self.root / "tmp" / f"trash-{damage.key}-{secrets.token_hex(4)}"
                os.rename(self.entry_path(damage.key), trash)
                try:
                    self._build([[StoreWheel(meta["name"], meta["version"], meta["wheel"], meta["sha256"], wheel)]],
                                find_python(interpreter_version(meta["interpreter"])), meta["interpreter"])
                finally:
                    _rmtree(trash)
            rebuilt.append(damage.key)
        return rebuilt

    def gc(self) -> dict[str, Any]:
        """Remove entries that no existing generation uses, dead roots and stale builds.

        Runs under the gc lock, which installers also take to register a generation's entries *before* they
        build or link them: an entry an install is about to use is therefore always in a root gc can see.
        """
        if not self.root.is_dir():
            return {"removed": [], "bytes": 0, "kept": 0}
        removed, freed = [], 0
        with FileLock(str(self.root / ".gc.lock")):
            used: set[str] = set()
            for root in self.roots():
                if root["alive"]:
                    used.update(root.get("entries", []))
                else:
                    Path(root["_file"]).unlink(missing_ok=True)
            for key in self.entry_keys():
                if key in used:
                    continue
                lock = FileLock(str(self.root / "locks" / f"{key}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue  # being repaired right now
                try:
                    with contextlib.suppress(BuildError):  # an unreadable entry is removed all the same
                        freed += self.load(key).bytes
                    trash = self.root / "tmp" / f"trash-{key}-{secrets.token_hex(4)}"
                    os.rename(self.entry_path(key), trash)
                    _rmtree(trash)
                    removed.append(key)
                finally:
                    lock.release()
            self.clean_stale_builds()
        return {"removed": removed, "bytes": freed, "kept": len(self.entry_keys())}


# ---------------------------------------------------------------------------------------------- helpers
def pip_install(runner: Runner, python: Path, wheels: Sequence[StoreWheel], workdir: Path) -> None:
    """One strict offline pip call: no index, no deps, hashes required, user config ignored."""
    reqs = workdir / ".install-requirements.txt"
    reqs.write_text("".join(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels), encoding="utf-8")
    links = sorted({str(w.path.parent) for w in wheels})
    try:
        result = runner.run(
            [runner.python(), "-m", "pip", "--python", str(python), "install", "--isolated", "--no-index",
             "--no-deps", "--require-hashes", "--only-binary", ":all:", "--no-compile", "--no-cache-dir",
             "--disable-pip-version-check", "--no-warn-script-location",
             *[arg for link in links for arg in ("--find-links", link)], "-r", str(reqs)],
            env=clean_env(), timeout=3600)
    finally:
        reqs.unlink(missing_ok=True)
    if not result.ok:
        names = ", ".join(w.name for w in wheels[:4])
        raise BuildError(f"pip failed installing {names}{' ...' if len(wheels) > 4 else ''}: {result.tail(2)}",
                         details=result.tail(30).splitlines(),
                         hint="the previous environment is untouched; run with --debug for pip's output")


class BackgroundCompiler:
    """Compiles each installed group with the target interpreter while the next group installs.

    A group's files are split over one compiler process per core (``compileall -j`` parallelises directories
    only, not a file list): the torch group alone is ~8,000 modules, and nothing else is left to overlap with
    once the last group is installed.
    """

    def __init__(self, runner: Runner, processes: int | None = None) -> None:
        self.runner = runner
        self.processes = processes or max(1, os.cpu_count() or 1)
        self.running: list[Any] = []

    def start(self, python: Path, site: Path, records: Sequence[Sequence[tuple[str, str]]], workdir: Path) -> None:
        files = sorted({os.path.normpath(site / p) for record in records for p, _ in record if p.endswith(".py")})
        if not files:
            return
        chunks = max(1, min(self.processes, len(files) // 200))  # small groups: one process is cheaper
        for k in range(chunks):
            listing = workdir / f".compile-{len(self.running)}.txt"
            listing.write_text("\n".join(files[k::chunks]) + "\n", encoding="utf-8")
            proc = self.runner.start([str(python), "-m", "compileall", "-q", "-i", str(listing)], env=clean_env())
            self.running.append((proc, listing))

    def wait(self) -> None:
        for proc, listing in self.running:
            _out, err = proc.communicate(timeout=3600)
            listing.unlink(missing_ok=True)
            # compileall exits 1 when a file does not compile (e.g. py2-only test data in some wheels):
            # those modules stay uncompiled, which costs speed, not correctness
            if proc.returncode not in (0, 1):
                raise BuildError(f"bytecode compilation failed: {err.strip()[-300:]}")
        self.running = []

    def kill(self) -> None:
        for proc, listing in self.running:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            listing.unlink(missing_ok=True)
        self.running = []


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4096)


def _make_read_only(top: Path) -> None:
    """Files lose their write bits (directories keep theirs, so gc can delete entries)."""
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
