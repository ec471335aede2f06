"""Generation directories beside the target, the switch, rollback, pruning and the target lock.

Layout (link modes): ``.venv`` is a link to ``.venv.generations/g0007`` (a relative symbolic link on POSIX, a
junction on Windows). Rename mode (no link possible): ``.venv`` is the current generation's own folder and the
others wait in ``.venv.generations`` (switching.py). A generation being built has a sibling marker
``g0007.incomplete`` created *before* the directory and removed only after the generation verified, so a crash
at any instant leaves either a marker (the next run deletes that generation) or a complete generation; a
crash during a switch is completed or undone by the next run (``switching.recover``).
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from immutable_installer.core.errors import LockHeldError, UsageError
from immutable_installer.core.events import Message, Reporter, null_reporter
from immutable_installer.core.generation_files import GENERATION_NAME, GENERATION_RE, RECEIPT, generation_name
from immutable_installer.core.receipt import Receipt, read_receipt
from immutable_installer.generation.switching import (
    is_link,
    journal_path,
    mode_of,
    probe_mode,
    recover,
    switcher_for,
)
from immutable_installer.removal import remove_tree

GEN_RE = GENERATION_RE


@dataclass(frozen=True)
class Generation:
    """A complete generation and what its receipt says."""

    name: str
    path: Path
    receipt: Receipt

    @property
    def number(self) -> int:
        match = GEN_RE.match(self.name)
        return int(match.group(1)) if match else -1


_SYSTEM_FOLDERS = {"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc", "/root",
                   "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/var"}


# characters a shell or a ``#!`` line reads as syntax: a target holding one would give console scripts whose
# launcher breaks or runs the text (a newline, ``$(...)``, backquotes, quotes; a backslash outside Windows)
_UNSAFE_PATH = re.compile(r"[\x00-\x1f\x7f$`'\"]" + ("" if os.name == "nt" else r"|\\"))
_MARKER_RE = re.compile(r"^g\d{4,}\.incomplete$")


def _refuse_system_folder(target: Path) -> None:
    bad = _UNSAFE_PATH.search(str(target))
    if bad:
        raise UsageError(f"--venv {str(target)!r} holds {bad.group()!r}, which console scripts' launchers would "
                         "read as shell syntax", hint="name the environment's folder with plain characters")
    real = os.path.realpath(target)
    if real in _SYSTEM_FOLDERS or real == os.path.realpath(os.path.expanduser("~")) or not target.name:
        raise UsageError(f"--venv {target} is {real}, a system or home folder",
                         hint="name a new folder for the environment, e.g. --venv .venv")


def made_by_us(folder: Path) -> bool:
    """Whether ``folder`` is a generation this tool made: it carries its own name (``installer-generation``),
    or, for generations made before that marker existed, the receipt and the virtualenv's ``pyvenv.cfg``. A link
    is never one (nothing is ever deleted through it)."""
    if os.path.islink(folder) or is_link(folder) or not folder.is_dir():
        return False
    name = generation_name(folder)
    if name is not None:
        return name == folder.name or not GEN_RE.match(folder.name)  # rename mode: the target carries its name
    return (folder / RECEIPT).is_file() and (folder / "pyvenv.cfg").is_file()


REMOVING_THREADS = 4


class Generations:
    """All generations of one target."""

    def __init__(self, target: Path, reporter: Reporter = null_reporter) -> None:
        self.target = Path(os.path.abspath(target))
        _refuse_system_folder(self.target)
        self.root = self.target.with_name(self.target.name + ".generations")
        self.report = reporter
        self._mode: str | None = None
        self.removed_shared = False  # a deletion made store files writable: the store reseals them

    def mode(self) -> str:
        """How the target points at its generation: ``symlink``, ``junction`` or ``rename`` (switching.py).
        An existing target keeps its mode; a new one gets the first that works here."""
        if self._mode is None:
            self._mode = mode_of(self.target) or probe_mode(self.root)
        return self._mode

    def script_target(self, generation: Path) -> Path:
        """Where ``generation`` will be when it is current: its interpreter is what its console scripts name
        (in rename mode the target itself, since the folder is renamed there)."""
        return self.target if self.mode() == "rename" else generation

    def _remove(self, path: Path) -> None:
        """Delete a generation: only one this tool made (``made_by_us``), never through a link."""
        if not made_by_us(path):
            raise UsageError(f"{path} is not a generation immutable-installer made; it is left alone",
                             hint="remove it yourself if it is not needed")
        with ThreadPoolExecutor(max_workers=REMOVING_THREADS) as pool:  # a generation's packages side by side
            if remove_tree(path, pool.map):
                self.removed_shared = True

    def check_root(self) -> None:
        """The generations folder is a real folder holding only what this tool made (generations, their markers,
        the lock): never a link to someone's folder, never a folder of theirs. Exit 2 otherwise, untouched."""
        if os.path.islink(self.root) or is_link(self.root):
            raise UsageError(f"{self.root} is a link to {os.readlink(self.root)}; immutable-installer keeps its "
                             "generations in a folder of its own and never works through a link",
                             hint="remove the link (or pick another --venv)")
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise UsageError(f"{self.root} is not a folder", hint="move it away or pick another --venv")
        foreign = sorted(entry.name for entry in self.root.iterdir() if not self._ours(entry))
        if foreign:
            raise UsageError(f"{self.root} holds {len(foreign)} thing(s) immutable-installer did not make: "
                             f"{', '.join(foreign[:5])}", hint="move them elsewhere (nothing was touched), or pick "
                                                               "another --venv")

    def _ours(self, entry: Path) -> bool:
        name = entry.name
        if name in (".lock",) or name.startswith(".probe-"):
            return not entry.is_symlink()
        if _MARKER_RE.match(name):
            return entry.is_file() and not entry.is_symlink()
        if GEN_RE.match(name):
            # a generation, or the empty folder of one a crash interrupted before it carried its name
            return made_by_us(entry) or (entry.is_dir() and not entry.is_symlink()
                                         and (self.root / f"{name}.incomplete").is_file()
                                         and not any(entry.iterdir()))
        return False

    # -- locking
    def lock(self, wait: bool = True) -> FileLock:
        """Serialise installers on this target. The OS releases the lock when its holder dies."""
        self.check_root()
        self.root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.root / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not wait:
                raise LockHeldError(f"another installer is working on {self.target}") from None
            self.report(Message("info", f"another installer is working on {self.target}; waiting ..."))
            lock.acquire()
        return lock

    def settle(self) -> None:
        """Complete or undo a switch that a crash interrupted, for commands that only read the target (status,
        verify); a switch in progress right now (the lock is held) is left alone."""
        if not journal_path(self.target).exists():
            return
        try:
            lock = self.lock(wait=False)
        except LockHeldError:
            return
        try:
            self._recover()
        finally:
            lock.release()

    def _recover(self) -> None:
        outcome = recover(self.target)
        if outcome is not None:
            self.report(Message("info", f"an interrupted switch of {self.target} was {outcome}"))

    # -- inspection
    def current(self) -> Generation | None:
        name = self._linked_current() if is_link(self.target) else self._renamed_current()
        return self._load(name) if name else None

    def _linked_current(self) -> str | None:
        """Link modes: the generation the target links to, if it is one of this target's."""
        resolved = Path(os.path.realpath(self.target))
        if resolved.parent != Path(os.path.realpath(self.root)) or not GEN_RE.match(resolved.name):
            return None
        return resolved.name

    def _renamed_current(self) -> str | None:
        """Rename mode: the name of the generation whose folder is the target."""
        if is_link(self.target) or not self.target.is_dir():
            return None
        return generation_name(self.target)

    def _load(self, name: str) -> Generation | None:
        path = self.root / name
        if not path.is_dir():
            if self._renamed_current() != name:
                return None
            path = self.target
        if (self.root / f"{name}.incomplete").exists() or not made_by_us(path):
            return None
        return Generation(name, path, read_receipt(path / RECEIPT))

    def complete(self) -> list[Generation]:
        """Complete generations, oldest first."""
        if not self.root.is_dir():
            return []
        names = {entry.name for entry in self.root.iterdir() if GEN_RE.match(entry.name)}
        renamed = self._renamed_current()
        if renamed:
            names.add(renamed)
        out = [gen for name in names if (gen := self._load(name)) is not None]
        return sorted(out, key=lambda g: g.number)

    def get(self, name: str) -> Generation:
        if not re.fullmatch(r"g\d{4,}", name):  # never a path: only this target's generations
            raise UsageError(f"--to {name!r} is not a generation name (gNNNN, e.g. g0003)",
                             hint="see `immutable-installer status` for the list")
        gen = self._load(name)
        if gen is None:
            known = ", ".join(g.name for g in self.complete()) or "none"
            raise UsageError(f"no complete generation named {name!r} (known: {known})",
                             hint="see `immutable-installer status` for the list")
        return gen

    # -- building
    def check_target(self) -> None:
        """Only a target the tool manages (or a new one) is ever switched: never a real directory (someone's
        venv), a symlink the tool did not make, or a system folder; and its generations folder is the tool's
        own (``check_root``)."""
        _refuse_system_folder(self.target)
        self.check_root()
        if is_link(self.target):
            if self._linked_current() is None:
                raise UsageError(f"{self.target} is a link to {os.readlink(self.target)}, which immutable-installer "
                                 "did not make", hint="remove it yourself if it is not needed, or pick another --venv")
        elif self._renamed_current() is not None and self.root.is_dir():
            return  # rename mode: the current generation's own folder
        elif self.target.exists():
            raise UsageError(f"{self.target} is a directory, not a link managed by immutable-installer",
                             hint=f"move it away (e.g. mv {self.target.name} {self.target.name}.old) or pick another "
                                  "--venv")

    def new(self) -> Path:
        """Reserve the next generation: marker first, then the directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        names = [p.name for p in self.root.iterdir()] + [self._renamed_current() or ""]
        numbers = [int(m.group(1)) for n in names if (m := re.match(r"^g(\d{4,})", n))]
        name = f"g{max(numbers, default=0) + 1:04d}"
        (self.root / f"{name}.incomplete").write_text(str(os.getpid()), encoding="utf-8")
        path = self.root / name
        path.mkdir()
        (path / GENERATION_NAME).write_text(name + "\n", encoding="utf-8")
        return path

    def mark_complete(self, path: Path) -> None:
        (self.root / f"{path.name}.incomplete").unlink(missing_ok=True)

    def discard(self, path: Path) -> None:
        """Delete a generation that failed; the marker goes last, so a crash here is finished next time."""
        self._remove(path)
        (self.root / f"{path.name}.incomplete").unlink(missing_ok=True)

    def clean_leftovers(self) -> list[str]:
        """Remove what killed runs left: incomplete generations and temporary links (lock held)."""
        removed = []
        if self.root.is_dir():
            for marker in self.root.glob("g*.incomplete"):
                if not _MARKER_RE.match(marker.name):
                    continue  # check_root refused any other name before this runs
                name = marker.name.removesuffix(".incomplete")
                folder = self.root / name
                if made_by_us(folder):
                    self._remove(folder)
                elif folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                    folder.rmdir()  # made, then killed before it carried its name: empty, so nothing lost
                elif os.path.lexists(folder):
                    continue  # not provably ours: left alone (check_root names it)
                marker.unlink(missing_ok=True)
                removed.append(name)
        self._recover()
        if removed:
            self.report(Message("info", f"removed incomplete generation(s) left by an interrupted run: "
                                        f"{', '.join(sorted(removed))}"))
        return removed

    # -- switching
    def switch(self, generation: Path) -> None:
        """Point the target at ``generation`` (switching.py: atomic on POSIX, journalled elsewhere)."""
        self.check_target()
        if os.path.lexists(self.target) and os.path.realpath(generation) == os.path.realpath(self.target):
            return  # already current (in rename mode its path *is* the target: renaming it would lose it)
        switcher_for(self.mode()).switch(self.target, generation)

    def prune(self, keep: int) -> list[str]:
        """Keep the current generation and the newest ``keep`` others; delete the rest."""
        current = self.current()
        others = [g for g in self.complete() if current is None or g.name != current.name]
        doomed = others[:-keep] if keep > 0 else others
        for gen in doomed:
            marker = self.root / f"{gen.name}.incomplete"
            marker.write_text("pruning", encoding="utf-8")  # a crash mid-delete is finished next run
            self._remove(gen.path)
            marker.unlink(missing_ok=True)
        return [g.name for g in doomed]

    def previous(self) -> Generation:
        """The newest complete generation older than the current one."""
        current = self.current()
        older = [g for g in self.complete() if current is None or g.number < current.number]
        if not older:
            raise UsageError("there is no previous generation to roll back to",
                             hint="`immutable-installer status` lists the generations")
        return older[-1]
