"""The content-addressed store: every wheel unpacked once per interpreter, bytecode compiled once, read-only.

A generation is then built by linking (generation/linking.py) instead of unzipping and compiling again, so a
fresh, verified generation costs seconds and almost no disk (docs/store.md).

Layout under the store root (``~/.cache/immutable-installer/store``, ``--store``, ``IMMUTABLE_INSTALLER_STORE``)::

    entries/<interp>-<wheel sha256>/entry.json   what the entry holds: every file with its sha256, the scripts
    entries/<interp>-<wheel sha256>/root/...      the wheel as pip would install it into a virtualenv, relative to
                                                  the prefix (lib/python3.11/site-packages/..., bin/...), and
                                                  the bytecode the target interpreter compiled for it
    locks/<key>.lock                              one builder per entry; the others wait, then reuse it
    tmp/<build>/ + tmp/<build>.lock               builds in progress; renamed into entries/ when complete
    roots/<id>.json                               which generation uses which entries (status, gc)
    .gc.lock                                      roots are registered and collected under it

An entry is complete exactly when ``entries/<key>`` exists: it is assembled under ``tmp/`` and renamed into
place in one ``rename(2)`` (its files are read-only from the moment they are created), and never changed
afterwards. A killed
build leaves only a ``tmp/`` folder whose lock nobody holds; the next builder or ``store gc`` removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from immutable_installer.core.errors import BuildError, UsageError
from immutable_installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.generation_files import generation_name
from immutable_installer.core.names import canonical
from immutable_installer.core.paths import default_store
from immutable_installer.dists.hashing import file_record_digest
from immutable_installer.dists.wheel import WheelBytes, WheelInfo, open_wheel
from immutable_installer.removal import remove_tree
from immutable_installer.runner import Runner
from immutable_installer.store.fill import EntryBuilder, Staged, entry_digest

_FOLDERS = ("entries", "locks", "tmp", "roots")
ENTRY_KEY_RE = re.compile(r"^[a-z]+\d+-[0-9a-f]{64}$")  # cp311-<wheel sha256>: the only names entries have


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
    def content_digest(self) -> str | None:
        """``sha256:...`` of the entry's canonical listing (``fill.entry_digest``); None for an entry built before
        entries were reproducible."""
        value = self.meta.get("content_digest")
        return value if isinstance(value, str) and value.startswith("sha256:") else None

    @property
    def executables(self) -> list[str]:
        return [str(p) for p in self.meta.get("executables", [])]

    @property
    def record(self) -> str:
        """The prefix-relative path of the entry's RECORD."""
        return str(self.meta["record"])

    @property
    def bytes(self) -> int:
        return sum(int(f[2]) for f in self.meta["files"])

    @property
    def wheel_facts(self) -> WheelInfo | None:
        """What the scan read from the wheel this entry was built from (its sha256 is the key's), or None for
        an entry written before entries kept it (or one whose record of it is unreadable): read the wheel then."""
        data = self.meta.get("wheel_facts")
        if not isinstance(data, dict):
            return None
        try:
            facts = WheelInfo.from_facts(data)
        except ValueError:
            return None
        return facts if facts.sha256 == self.meta.get("sha256") else None


@dataclass
class Damage:
    """What ``store verify`` found wrong with one entry."""

    key: str
    wheel: str
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # files in the entry that its listing does not name
    digest: str = ""  # what is wrong with its content digest, if anything

    @property
    def damaged(self) -> bool:
        return bool(self.changed or self.missing or self.extra or self.digest)

    def describe(self) -> str:
        parts = [self.digest] if self.digest else []
        if self.extra:
            parts.append(f"{len(self.extra)} not in its listing ({', '.join(self.extra[:3])})")
        if self.changed:
            parts.append(f"{len(self.changed)} changed ({', '.join(self.changed[:3])})")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({', '.join(self.missing[:3])})")
        return f"{self.key} ({self.wheel}): " + "; ".join(parts)


@dataclass(frozen=True)
class Rebuilt:
    """``store verify --rebuild``: an entry against the same wheel built again."""

    key: str
    same: bool
    recorded: str | None  # the entry's content digest
    rebuilt: str  # the rebuild's
    differences: list[str]  # paths whose bytes or mode differ, or that only one side has

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "same": self.same, "recorded": self.recorded, "rebuilt": self.rebuilt,
                "differences": self.differences}


class Store:
    """The store at one root."""

    def __init__(self, root: Path | None = None, reporter: Reporter = null_reporter) -> None:
        self.root = Path(os.path.abspath(root if root is not None else default_store()))
        for path in (self.root, *(self.root / sub for sub in _FOLDERS)):
            if path.exists() and not path.is_dir():  # a store that "verifies clean" because it has no entries
                raise UsageError(f"the store {self.root} is not usable: {path} is not a folder",
                                 hint="pass --store with a folder (or a path that does not exist yet), or set "
                                      "IMMUTABLE_INSTALLER_STORE")
        self.runner = Runner()
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

    def wheel_facts(self, key: str) -> WheelInfo | None:
        """What the scan read from the wheel of entry ``key`` when it was built; None when the store does not
        hold it or the entry cannot tell (``Entry.wheel_facts``)."""
        try:
            return self.load(key).wheel_facts
        except BuildError:
            return None

    def entry_keys(self) -> list[str]:
        """The entries: folders named like one (``cp311-<wheel sha256>``), never a link."""
        if not self.entries_dir.is_dir():
            return []
        return sorted(p.name for p in self.entries_dir.iterdir()
                      if ENTRY_KEY_RE.match(p.name) and p.is_dir() and not p.is_symlink())

    def strangers(self) -> list[str]:
        """What ``entries/`` holds that is not an entry (a folder someone put there, an environment built into
        the store by mistake): reported, never verified as damage, never deleted."""
        if not self.entries_dir.is_dir():
            return []
        keys = set(self.entry_keys())
        return sorted(p.name for p in self.entries_dir.iterdir() if p.name not in keys)

    def contains(self, path: Path) -> bool:
        """Whether ``path`` is the store or lies inside it (links resolved)."""
        root, other = os.path.realpath(self.root), os.path.realpath(path)
        return other == root or other.startswith(root.rstrip(os.sep) + os.sep)

    def _mkdirs(self) -> None:
        try:
            for sub in _FOLDERS:
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"the store {self.root} cannot be created ({exc.strerror}: {exc.filename})",
                             hint="pass a writable --store PATH or set IMMUTABLE_INSTALLER_STORE") from None

    # ------------------------------------------------------------------------------------------ filling
    def fill(self, keys: Iterable[str], python: str, interp: str,
             on_ready: Callable[[Entry], None] | None = None) -> PendingEntries:
        """A session that builds whichever of ``keys`` the store lacks (``with store.fill(...) as s``);
        ``on_ready`` hears of each entry as soon as it is complete in its staging folder (a generation may link
        it from there; ``commit`` renames it into the store, so the caller links nothing from it after
        ``wait``)."""
        self._mkdirs()
        return PendingEntries(self, sorted(set(keys)), python, interp, on_ready=on_ready)

    def _fill_locked(self, key: str, wheel: StoreWheel, opened: WheelBytes, python: str, interp: str) -> None:
        with PendingEntries(self, [key], python, interp, locked=True) as session:
            session.add(key, wheel, opened)
            session.commit()

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

    # ------------------------------------------------------------------------------------------ roots
    def register(self, generation: Path, keys: Iterable[str], target: Path | None = None) -> None:
        """Record that ``generation`` uses ``keys`` (before it links them, so gc never takes them away).
        ``target``: where the generation's folder goes when it becomes current in rename mode (its root stays
        alive there)."""
        self._mkdirs()
        generation = Path(os.path.abspath(generation))
        ident = hashlib.sha256(str(generation).encode()).hexdigest()[:24]
        data: dict[str, Any] = {"generation": str(generation), "entries": sorted(set(keys))}
        if target is not None:
            data["target"] = str(os.path.abspath(target))
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
            generation = Path(data.get("generation", ""))
            data["alive"] = generation.is_dir() or (
                bool(data.get("target")) and generation_name(Path(data["target"])) == generation.name)
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
        """Every file of every entry (or of ``keys``): a read-only regular file with the sha256 recorded when it
        was built. A symlink in place of a file, or a file made writable, is damage too (the next write through
        a generation's hard link would change every generation)."""
        damaged = []
        for key in sorted(keys) if keys is not None else self.entry_keys():
            try:
                entry = self.load(key)
            except BuildError:
                damaged.append(Damage(key, "?", missing=["entry.json"]))
                continue
            damage = Damage(key, str(entry.meta.get("wheel")))
            actual: list[list[Any]] = []
            executables: list[str] = []
            for rel, digest, _size in entry.files:
                path = entry.root / rel
                try:
                    mode = os.lstat(path).st_mode
                except OSError:
                    damage.missing.append(rel)
                    continue
                if not stat.S_ISREG(mode):  # a symlink (even to identical bytes) or anything else
                    damage.changed.append(f"{rel} (not a regular file)")
                    continue
                if mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):  # root ignores modes: check the bits
                    damage.changed.append(f"{rel} (writable)")
                got = file_record_digest(path)
                if got != digest:
                    damage.changed.append(rel)
                actual.append([rel, got, os.lstat(path).st_size])
                if mode & 0o111:
                    executables.append(rel)
            damage.extra = unlisted(entry)
            damage.digest = _digest_problem(entry, actual, executables, complete=not (damage.missing or damage.changed))
            if damage.damaged:
                damaged.append(damage)
        return damaged

    def reseal(self) -> None:
        """Make every entry's files read-only again. Needed only on Windows, after a generation's hard links were
        deleted: Windows refuses to delete a read-only file, and clearing the attribute on one name of a file
        clears it on all of them, the store's included (removal.py)."""
        for key in self.entry_keys():
            _make_read_only(self.entry_path(key) / "root")

    def repair(self, damaged: Sequence[Damage], wheelhouse: Path, find_python: Callable[[str], str]) -> list[str]:
        """Rebuild damaged entries from their wheels in ``wheelhouse`` (found by filename, checked by sha256);
        ``find_python`` gives an interpreter for an entry's ``X.Y``."""
        rebuilt = []
        for damage in damaged:
            try:
                meta = self.load(damage.key).meta
            except BuildError:
                raise BuildError(f"store entry {damage.key} has no readable entry.json; remove it with "
                                 f"`rm -rf {self.entry_path(damage.key)}` and reinstall") from None
            wheel = wheelhouse / meta["wheel"]
            try:
                opened: WheelBytes | None = open_wheel(wheel)  # one read: its hash and the bytes to unpack
            except (OSError, ValueError):
                opened = None
            if opened is None or opened.info.sha256 != meta["sha256"]:
                raise BuildError(f"cannot repair {damage.key}: {meta['wheel']} with sha256 {meta['sha256'][:16]}... "
                                 f"is not in {wheelhouse}",
                                 hint="run `immutable-installer download` first, or pass --wheelhouse")
            lock = FileLock(str(self.root / "locks" / f"{damage.key}.lock"))
            with lock:
                trash = self.root / "tmp" / f"trash-{damage.key}-{secrets.token_hex(4)}"
                os.rename(self.entry_path(damage.key), trash)
                try:
                    self._fill_locked(damage.key, StoreWheel(meta["name"], meta["version"], meta["wheel"],
                                                             meta["sha256"], wheel), opened,
                                      find_python(interpreter_version(meta["interpreter"])), meta["interpreter"])
                finally:
                    _rmtree(trash)
            rebuilt.append(damage.key)
        return rebuilt

    def rebuild_check(self, key: str, wheel: Path, python: str) -> Rebuilt:
        """Build entry ``key`` again from ``wheel`` in a scratch store with ``python``, and compare: an audit of
        the entry independent of how it came to be here (built, repaired or pulled from a registry), like Nix's
        ``--check``. The entry itself is not touched."""
        entry = self.load(key)
        try:
            opened = open_wheel(wheel)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot rebuild {key}: {wheel} is not a readable wheel ({exc})") from None
        if opened.info.sha256 != entry.meta.get("sha256"):
            raise UsageError(f"cannot rebuild {key}: {wheel.name} has sha256 {opened.info.sha256[:16]}..., the entry "
                             f"was built from {str(entry.meta.get('sha256'))[:16]}...",
                             hint="pass --wheelhouse with the wheel the entry's key names")
        self._mkdirs()
        name = f"rebuild-{os.getpid()}-{secrets.token_hex(4)}"
        lock = FileLock(str(self.root / "tmp" / f"{name}.lock"))  # clean_stale_builds leaves a held one alone
        lock.acquire()
        scratch = Store(self.root / "tmp" / name)
        try:
            interp = str(entry.meta["interpreter"])
            with scratch.fill([key], python, interp) as pending:
                pending.add(key, StoreWheel(str(entry.meta["name"]), str(entry.meta["version"]),
                                            str(entry.meta["wheel"]), str(entry.meta["sha256"]), wheel), opened)
                pending.commit()
            fresh = scratch.load(key)
        finally:
            _rmtree(scratch.root)
            lock.release()
            Path(str(scratch.root) + ".lock").unlink(missing_ok=True)

        def listing(e: Entry) -> dict[str, tuple[str, bool]]:
            marked = set(e.executables)
            return {str(f[0]): (str(f[1]), str(f[0]) in marked) for f in e.files}

        ours, theirs = listing(entry), listing(fresh)
        differences = sorted(rel for rel in set(ours) | set(theirs) if ours.get(rel) != theirs.get(rel))
        rebuilt = str(fresh.content_digest)
        return Rebuilt(key, entry.content_digest == rebuilt and not differences, entry.content_digest, rebuilt,
                       differences)

    def gc(self) -> dict[str, Any]:
        """Remove entries that no existing generation uses, dead roots and stale builds.

        Runs under the gc lock, which installers also take to register a generation's entries *before* they
        build or link them: an entry an install is about to use is therefore always in a root gc can see.
        """
        if not self.root.is_dir():
            return {"removed": [], "bytes": 0, "kept": 0, "left_alone": []}
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
        return {"removed": removed, "bytes": freed, "kept": len(self.entry_keys()), "left_alone": self.strangers()}


# ---------------------------------------------------------------------------------------------- helpers
def unlisted(entry: Entry) -> list[str]:
    """Files (or links, or anything) under the entry's root that its listing does not name: a generation
    never links them, but an entry holds exactly what its digest says."""
    listed = {str(f[0]) for f in entry.files}
    found = []
    for folder, _dirs, names in os.walk(entry.root):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), entry.root).replace(os.sep, "/")
            if rel not in listed:
                found.append(rel)
    return sorted(found)


def _digest_problem(entry: Entry, actual: list[list[Any]], executables: list[str], complete: bool) -> str:
    """What is wrong with an entry's content digest: none recorded (an entry from before entries were
    reproducible: ``--repair`` rebuilds it), or one its listing or its files do not give."""
    recorded = entry.content_digest
    if recorded is None:
        return "no content digest (built before store entries were reproducible; --repair rebuilds it)"
    if entry_digest(entry.files, entry.executables) != recorded:
        return "its entry.json does not give its content digest (the listing was changed)"
    if complete and entry_digest(actual, executables) != recorded:
        return "its files do not give its content digest"
    return ""


class PendingEntries:
    """The entries one install is missing: locked (one builder per entry; the others wait, then reuse it),
    unpacked and compiled in the background as their wheels are handed in, and renamed into the store only by
    ``commit``. Leaving the ``with`` block without a commit (an error, a failed scan, Ctrl-C) removes them."""

    def __init__(self, store: Store, keys: list[str], python: str, interp: str, locked: bool = False,
                 on_ready: Callable[[Entry], None] | None = None) -> None:
        self.store, self.keys, self.python, self.interp = store, keys, python, interp
        self.locked = locked  # the caller holds the entries' locks already (repair)
        self.on_ready = on_ready
        self.locks: list[FileLock] = []
        self.todo: set[str] = set()
        self.filler: EntryBuilder | None = None
        self.build: Path | None = None
        self.build_lock: FileLock | None = None
        self.added: list[str] = []
        self.started = 0.0

    def __enter__(self) -> PendingEntries:
        missing = [k for k in self.keys if not self.store.entry_path(k).is_dir()]
        if self.locked:
            self.todo = set(missing)
            return self
        try:
            for key in missing:  # sorted: two installers never deadlock
                lock = FileLock(str(self.store.root / "locks" / f"{key}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    self.store.report(Message("info", f"another installer is building store entry {key[:20]}...; "
                                                      "waiting to reuse it"))
                    lock.acquire()
                self.locks.append(lock)
            if missing:
                self.store.clean_stale_builds()
            self.todo = {k for k in missing if not self.store.entry_path(k).is_dir()}
        except BaseException:
            self._release()
            raise
        return self

    def needs(self, key: str) -> bool:
        return key in self.todo

    def add(self, key: str, wheel: StoreWheel, opened: WheelBytes) -> None:
        """Unpack ``opened`` (the wheel's bytes, read once by the caller) into a staged entry, in the background."""
        if self.filler is None:
            self._start()
        assert self.filler is not None
        self.filler.add(key, canonical(wheel.name), opened, wheel.sha256)
        self.added.append(key)

    def _start(self) -> None:
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.build = self.store.root / "tmp" / name
        self.build_lock = FileLock(str(self.store.root / "tmp" / f"{name}.lock"))
        self.build_lock.acquire()
        self.build.mkdir()
        self.started = time.monotonic()
        count = len(self.todo)
        self.store.report(Phase("store", f"{count} new store entr{'y' if count == 1 else 'ies'} (unpacked and "
                                         "compiled once, then linked into every generation)"))
        on_ready = None
        if self.on_ready is not None:
            hand_on = self.on_ready

            def on_ready(staged: Staged) -> None:
                hand_on(Entry(staged.key, staged.root.parent, staged.meta))
        self.filler = EntryBuilder(self.store.runner, self.build, self.python, self.interp,
                             interpreter_version(self.interp), on_ready=on_ready)

    def wait(self) -> list[Staged]:
        """Every added entry unpacked, compiled and complete in its staging folder (``on_ready`` has heard of
        each); the first error is raised."""
        if self.filler is None:
            return []
        total = len(self.added)
        return self.filler.wait(lambda done, _all: self.store.report(
            Progress("store", done, total, "entries", "compiled")))

    def commit(self) -> None:
        """Rename every added entry into the store, once it is complete (``wait``)."""
        if self.filler is None:
            return
        for item in self.wait():
            os.rename(item.root.parent, self.store.entry_path(item.key))
        self.store.report(PhaseDone("store", time.monotonic() - self.started))

    def __exit__(self, *exc: object) -> None:
        try:
            if self.filler is not None:
                if exc[0] is None:
                    self.filler.close()
                else:
                    self.filler.kill()
        finally:
            if self.build is not None:
                _rmtree(self.build)
            self._release()

    def _release(self) -> None:
        if self.build_lock is not None:
            self.build_lock.release()
            assert self.build is not None
            Path(str(self.build) + ".lock").unlink(missing_ok=True)
        for lock in self.locks:
            lock.release()
        self.locks = []


class IncomingEntries:
    """Entries arriving whole from elsewhere (a registry's layers, oci/pull.py): the same locks and staging as a
    build (one writer per entry; a killed pull leaves only a ``tmp/`` folder whose lock nobody holds), and an
    entry enters ``entries/`` only by ``commit``, after its files were checked."""

    def __init__(self, store: Store, keys: Iterable[str]) -> None:
        self.store = store
        self.keys = sorted(set(keys))
        self.locks: list[FileLock] = []
        self.build = store.root / "tmp" / f"pull-{os.getpid()}-{secrets.token_hex(4)}"
        self.build_lock = FileLock(str(self.build) + ".lock")
        self.todo: set[str] = set()
        self.cancelled = False  # set when one writer failed: the others stop
        self._made: set[Path] = set()
        self._made_lock = threading.Lock()

    def __enter__(self) -> IncomingEntries:
        self.store._mkdirs()
        try:
            for key in (k for k in self.keys if not self.store.entry_path(k).is_dir()):  # sorted: no deadlock
                lock = FileLock(str(self.store.root / "locks" / f"{key}.lock"))
                lock.acquire()
                self.locks.append(lock)
            self.todo = {k for k in self.keys if not self.store.entry_path(k).is_dir()}
            if self.todo:
                self.store.clean_stale_builds()  # what a killed build or pull left
            self.build_lock.acquire()
            self.build.mkdir()
        except BaseException:
            self._release()
            raise
        return self

    def root(self, key: str) -> Path:
        """Where entry ``key``'s files are written before the commit."""
        return self.build / key / "root"

    def folder(self, path: Path) -> None:
        """``path`` exists (made once per folder, whichever writer thread asks first)."""
        if path in self._made:
            return
        path.mkdir(parents=True, exist_ok=True)
        with self._made_lock:
            self._made.add(path)

    def commit(self, key: str, meta: dict[str, Any]) -> Entry:
        """Write the entry's ``entry.json`` and rename it into the store (its files are checked by the caller)."""
        from immutable_installer.store.fill import write_entry_json

        folder = self.build / key
        write_entry_json(folder, meta)
        os.rename(folder, self.store.entry_path(key))
        self.todo.discard(key)
        return self.store.load(key)

    def __exit__(self, *exc: object) -> None:
        try:
            _rmtree(self.build)
        finally:
            self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self.build_lock.release()
        Path(str(self.build) + ".lock").unlink(missing_ok=True)
        for lock in self.locks:
            lock.release()
        self.locks = []


def _make_read_only(top: Path) -> None:
    """Files lose their write bits (directories keep theirs, so gc can delete entries)."""
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _rmtree(path: Path) -> None:
    remove_tree(path)  # read-only files included (Windows refuses to delete them as they are)
