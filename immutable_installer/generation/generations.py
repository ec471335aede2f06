"""Generation directories beside the target, the atomic switch, rollback, pruning and the target lock.

Layout: ``.venv`` is a relative symbolic link to ``.venv.generations/g0007``. A generation being built has a
sibling marker ``g0007.incomplete`` created *before* the directory and removed only after the generation
verified, so a crash at any instant leaves either a marker (the next run deletes that generation) or a
complete generation. The switch writes a new link under a temporary name and renames it over ``.venv``:
``rename(2)`` replaces it atomically, so ``.venv`` always points at a complete generation (switching.py, which
also holds the journalled fallback for platforms without an atomic link replace).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from immutable_installer.core.errors import LockHeldError, UsageError
from immutable_installer.core.events import Message, Reporter, null_reporter
from immutable_installer.core.layout import RECEIPT
from immutable_installer.core.receipt import Receipt, read_receipt
from immutable_installer.generation.switching import Switcher, default_switcher

GEN_RE = re.compile(r"^g(\d{4,})$")


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


def _refuse_system_folder(target: Path) -> None:
    real = os.path.realpath(target)
    if real in _SYSTEM_FOLDERS or real == os.path.realpath(os.path.expanduser("~")) or not target.name:
        raise UsageError(f"--venv {target} is {real}, a system or home folder",
                         hint="name a new folder for the environment, e.g. --venv .venv")


class Generations:
    """All generations of one target."""

    def __init__(self, target: Path, reporter: Reporter = null_reporter, switcher: Switcher | None = None) -> None:
        self.target = Path(os.path.abspath(target))
        _refuse_system_folder(self.target)
        self.root = self.target.with_name(self.target.name + ".generations")
        self.report = reporter
        self.switcher = switcher or default_switcher()

    # -- locking
    def lock(self, wait: bool = True) -> FileLock:
        """Serialise installers on this target. The OS releases the lock when its holder dies."""
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

    # -- inspection
    def current(self) -> Generation | None:
        if not self.target.is_symlink():
            return None
        resolved = Path(os.path.realpath(self.target))
        if resolved.parent != Path(os.path.realpath(self.root)) or not GEN_RE.match(resolved.name):
            return None
        return self._load(resolved.name)

    def _load(self, name: str) -> Generation | None:
        path = self.root / name
        if not path.is_dir() or (self.root / f"{name}.incomplete").exists():
            return None
        return Generation(name, path, read_receipt(path / RECEIPT))

    def complete(self) -> list[Generation]:
        """Complete generations, oldest first."""
        if not self.root.is_dir():
            return []
        out = []
        for entry in self.root.iterdir():
            if GEN_RE.match(entry.name):
                gen = self._load(entry.name)
                if gen is not None:
                    out.append(gen)
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
        venv), a symlink the tool did not make, or a system folder."""
        _refuse_system_folder(self.target)
        if self.target.is_symlink():
            link = os.readlink(self.target)
            if not re.fullmatch(re.escape(self.target.name) + r"\.generations[/\\]g\d{4,}", link):
                raise UsageError(f"{self.target} is a symlink to {link}, which immutable-installer did not make",
                                 hint="remove it yourself if it is not needed, or pick another --venv")
        elif self.target.exists():
            raise UsageError(f"{self.target} is a directory, not a link managed by immutable-installer",
                             hint=f"move it away (e.g. mv {self.target.name} {self.target.name}.old) or pick another "
                                  "--venv")

    def new(self) -> Path:
        """Reserve the next generation: marker first, then the directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.root.iterdir() if (m := re.match(r"^g(\d{4,})", p.name))]
        name = f"g{max(numbers, default=0) + 1:04d}"
        (self.root / f"{name}.incomplete").write_text(str(os.getpid()), encoding="utf-8")
        path = self.root / name
        path.mkdir()
        return path

    def mark_complete(self, path: Path) -> None:
        (self.root / f"{path.name}.incomplete").unlink(missing_ok=True)

    def discard(self, path: Path) -> None:
        """Delete a generation that failed; the marker goes last, so a crash here is finished next time."""
        shutil.rmtree(path, ignore_errors=True)
        (self.root / f"{path.name}.incomplete").unlink(missing_ok=True)

    def clean_leftovers(self) -> list[str]:
        """Remove what killed runs left: incomplete generations and temporary links (lock held)."""
        removed = []
        if self.root.is_dir():
            for marker in self.root.glob("g*.incomplete"):
                name = marker.name.removesuffix(".incomplete")
                shutil.rmtree(self.root / name, ignore_errors=True)
                marker.unlink(missing_ok=True)
                removed.append(name)
        self.switcher.recover(self.target)
        if removed:
            self.report(Message("info", f"removed incomplete generation(s) left by an interrupted run: "
                                        f"{', '.join(sorted(removed))}"))
        return removed

    # -- switching
    def switch(self, generation: Path) -> None:
        """Point the target at ``generation`` atomically (POSIX rename of a new link over the old one)."""
        self.check_target()
        self.switcher.switch(self.target, generation)

    def prune(self, keep: int) -> list[str]:
        """Keep the current generation and the newest ``keep`` others; delete the rest."""
        current = self.current()
        others = [g for g in self.complete() if current is None or g.name != current.name]
        doomed = others[:-keep] if keep > 0 else others
        for gen in doomed:
            marker = self.root / f"{gen.name}.incomplete"
            marker.write_text("pruning", encoding="utf-8")  # a crash mid-delete is finished next run
            shutil.rmtree(gen.path, ignore_errors=True)
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
