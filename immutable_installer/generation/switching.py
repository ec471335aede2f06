"""Pointing the target at a generation: an atomic link swap on POSIX, a journalled swap where that is impossible.

POSIX: a new symbolic link is created under a temporary name and renamed over the target; ``rename(2)``
replaces it atomically, so the target always exists and always points at a complete generation.

Windows cannot rename a directory link (junction) over an existing one. ``JournalSwitcher`` therefore writes a
journal naming the old and the new generation, renames the old link aside, creates the new link, removes the
old one and deletes the journal. The next run finds any journal left by a crash and completes the switch (the
new link exists) or undoes it (it does not). Its logic is unit-tested on Linux with symbolic links standing in
for junctions; **it has never run on Windows** (docs/decisions.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol


class Switcher(Protocol):
    def switch(self, target: Path, generation: Path) -> None: ...

    def recover(self, target: Path) -> None: ...


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class PosixSwitcher:
    """Symlink + rename: atomic, no recovery needed beyond removing a stray temporary link."""

    def switch(self, target: Path, generation: Path) -> None:
        relative = os.path.relpath(generation, target.parent)
        tmp = target.with_name(f".{target.name}.link-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(relative, tmp, target_is_directory=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    def recover(self, target: Path) -> None:
        for tmp in target.parent.glob(f".{target.name}.link-*"):
            tmp.unlink(missing_ok=True)


def _default_make_link(source: Path, link: Path) -> None:
    if os.name == "nt":  # pragma: no cover - not run here
        import _winapi

        _winapi.CreateJunction(str(source), str(link))  # type: ignore[attr-defined,unused-ignore]
    else:
        os.symlink(os.path.relpath(source, link.parent), link, target_is_directory=True)


def _remove_link(link: Path) -> None:
    if link.is_symlink() or os.name != "nt":
        link.unlink(missing_ok=True)
    else:  # pragma: no cover - a junction is removed with rmdir
        os.rmdir(link)


class JournalSwitcher:
    """Rename-aside with a journal, for platforms without an atomic link replace."""

    def __init__(self, make_link: Callable[[Path, Path], None] = _default_make_link,
                 step: Callable[[str], None] = lambda name: None) -> None:
        self.make_link = make_link
        self.step = step  # tests raise here to simulate a crash after a given step

    @staticmethod
    def journal(target: Path) -> Path:
        return target.with_name(f".{target.name}.switch-journal.json")

    @staticmethod
    def aside(target: Path) -> Path:
        return target.with_name(f".{target.name}.old")

    def switch(self, target: Path, generation: Path) -> None:
        self.recover(target)
        old = os.path.realpath(target) if os.path.lexists(target) else None
        journal = self.journal(target)
        tmp = journal.with_name(journal.name + ".tmp")
        tmp.write_text(json.dumps({"old": old, "new": str(generation)}), encoding="utf-8")
        os.replace(tmp, journal)
        self.step("journal")
        if os.path.lexists(target):
            os.rename(target, self.aside(target))
        self.step("aside")
        self.make_link(generation, target)
        self.step("link")
        if os.path.lexists(self.aside(target)):
            _remove_link(self.aside(target))
        self.step("cleanup")
        journal.unlink()

    def recover(self, target: Path) -> None:
        """Finish (new link present) or undo (absent) a switch that a crash interrupted."""
        journal = self.journal(target)
        if not journal.exists():
            return
        try:
            data = json.loads(journal.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
        aside = self.aside(target)
        if os.path.lexists(target):
            if os.path.lexists(aside):
                _remove_link(aside)
        elif os.path.lexists(aside):
            os.rename(aside, target)
        elif data.get("old"):
            self.make_link(Path(data["old"]), target)
        journal.unlink()


def default_switcher() -> Switcher:
    return JournalSwitcher() if os.name == "nt" else PosixSwitcher()
