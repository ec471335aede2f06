"""Pointing the target at a generation, in one of three modes chosen by what the filesystem can do.

``symlink`` (POSIX): a new symbolic link is created under a temporary name and renamed over the target;
``rename(2)`` replaces it atomically, so the target always exists and points at a complete generation.

``junction`` (Windows, NTFS): a directory junction needs no administrator rights, but Windows cannot rename a
link (or anything) over an existing directory. A journal names the old and the new generation; the old link is
renamed aside, the new one made, the aside one removed, the journal deleted.

``rename`` (no link possible: Wine, FAT/exFAT drives, some network shares): the target *is* the current
generation's directory, renamed into place. A journal names both; the current one is renamed back to its slot
in ``<target>.generations``, the new one renamed to the target, the journal deleted. Each generation carries
its name in a file (``installer-generation``), so the next run knows which one the target holds. Console
scripts of a generation in this mode name the target's interpreter (the path it will have once current).

For both journalled modes the next run of any command completes or undoes a switch a crash interrupted
(``recover``), so it always finds either the old or the new generation in place (docs/decisions.md).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from immutable_installer.core.generation_files import generation_name

MODES = ("symlink", "junction", "rename")
HOW = {"symlink": "a symbolic link renamed over it", "junction": "a junction, journalled",
       "rename": "rename mode: no link can be made here, the folder is renamed into place"}  # said by install


class Switcher(Protocol):
    mode: str

    def switch(self, target: Path, generation: Path) -> None: ...


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


def is_junction(path: Path | str) -> bool:
    """A Windows directory junction (``os.path.isjunction`` exists only from 3.12)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return getattr(st, "st_reparse_tag", 0) == getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", -1)


def is_link(path: Path | str) -> bool:
    """A symbolic link or a junction: what the link modes make."""
    return os.path.islink(path) or is_junction(path)


def make_junction(source: Path, link: Path) -> None:
    """A directory junction at ``link`` to ``source`` (Windows only). A failed attempt can leave an empty folder
    behind (Wine, FAT): it is removed, so the caller sees only the error."""
    import _winapi  # type: ignore[import-not-found,unused-ignore]

    try:
        _winapi.CreateJunction(str(source), str(link))  # type: ignore[attr-defined,unused-ignore]
    except OSError:
        if os.path.isdir(link) and not is_link(link):
            os.rmdir(link)
        raise


def remove_link(link: Path) -> None:
    """Remove a symbolic link or a junction (a junction is removed as a directory, its target untouched)."""
    if is_junction(link):
        os.rmdir(link)
    else:
        link.unlink(missing_ok=True)


def probe_mode(folder: Path) -> str:
    """The first mode that really works in ``folder``: a link is made, checked to exist (Wine's ``os.symlink``
    reports success and makes nothing) and removed."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f".probe-{os.getpid()}"
    link = folder / f".probe-{os.getpid()}.link"
    source.mkdir(exist_ok=True)
    try:
        for mode in (("junction",) if os.name == "nt" else ("symlink",)):
            try:
                if mode == "junction":
                    make_junction(source, link)
                else:
                    os.symlink(source.name, link, target_is_directory=True)
            except (OSError, NotImplementedError):
                continue
            works = is_link(link) and os.path.samefile(link, source)
            remove_link(link)
            if works:
                return mode
        return "rename"
    finally:
        if os.path.lexists(link):
            if is_link(link):
                remove_link(link)
            else:
                shutil.rmtree(link, ignore_errors=True)
        shutil.rmtree(source, ignore_errors=True)


def mode_of(target: Path) -> str | None:
    """The mode an existing target was made in; None for a new target (or one the tool did not make)."""
    if os.path.islink(target):
        return "symlink"
    if is_junction(target):
        return "junction"
    if target.is_dir() and generation_name(target) is not None:
        return "rename"
    if not os.path.lexists(target):  # a switch interrupted between its renames: the journal says which mode
        try:
            mode = json.loads(journal_path(target).read_text(encoding="utf-8")).get("mode")
        except (OSError, ValueError, AttributeError):
            return None
        return mode if mode in MODES else None
    return None


class PosixSwitcher:
    """Symlink + rename: atomic, no recovery needed beyond removing a stray temporary link."""

    mode = "symlink"

    def switch(self, target: Path, generation: Path) -> None:
        relative = os.path.relpath(generation, target.parent)
        tmp = target.with_name(f".{target.name}.link-{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(relative, tmp, target_is_directory=True)
        os.replace(tmp, target)
        _fsync_dir(target.parent)


def journal_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.switch-journal.json")


def aside_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _write_journal(target: Path, data: dict[str, str | None]) -> None:
    journal = journal_path(target)
    tmp = journal.with_name(journal.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, journal)
    _fsync_dir(target.parent)


class JunctionSwitcher:
    """Rename-aside with a journal, for links that cannot be renamed over an existing one (junctions)."""

    mode = "junction"

    def __init__(self, make_link: Callable[[Path, Path], None] = make_junction,
                 step: Callable[[str], None] = lambda name: None) -> None:
        self.make_link = make_link
        self.step = step  # tests raise here to simulate a crash after a given step

    def switch(self, target: Path, generation: Path) -> None:
        recover(target, self.make_link)
        old = os.path.realpath(target) if os.path.lexists(target) else None
        _write_journal(target, {"mode": self.mode, "old": old, "new": str(generation)})
        self.step("journal")
        if os.path.lexists(target):
            os.rename(target, aside_path(target))
        self.step("aside")
        self.make_link(generation, target)
        self.step("link")
        if os.path.lexists(aside_path(target)):
            remove_link(aside_path(target))
        self.step("cleanup")
        journal_path(target).unlink()


class RenameSwitcher:
    """The target is the current generation's folder; switching renames folders, journalled."""

    mode = "rename"

    def __init__(self, step: Callable[[str], None] = lambda name: None) -> None:
        self.step = step

    def switch(self, target: Path, generation: Path) -> None:
        recover(target)
        root = generation.parent
        old = generation_name(target) if target.is_dir() else None
        _write_journal(target, {"mode": self.mode, "old": old, "new": generation.name, "root": str(root)})
        self.step("journal")
        if old is not None:
            os.rename(target, root / old)  # the current generation back to its slot
        self.step("aside")
        os.rename(generation, target)
        self.step("link")
        _fsync_dir(target.parent)
        journal_path(target).unlink()


def recover(target: Path, make_link: Callable[[Path, Path], None] = make_junction) -> str | None:
    """Finish or undo a journalled switch a crash interrupted; returns what was done (None: nothing to do).

    Junction mode: the new link exists -> the aside one is removed (finished); it does not -> the aside link is
    renamed back (undone), or the old link made again. Rename mode: the target holds the new generation
    (finished) or the old one (nothing moved yet); no target -> the new generation is renamed into place if it
    is still in its slot (finished), else the old one (undone)."""
    for tmp in target.parent.glob(f".{target.name}.link-*"):  # a killed symlink switch
        tmp.unlink(missing_ok=True)
    journal = journal_path(target)
    if not journal.exists():
        return None
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if data.get("mode") == "rename":
        outcome = _recover_rename(target, data)
    else:
        outcome = _recover_junction(target, data, make_link)
    journal.unlink()
    _fsync_dir(target.parent)
    return outcome


def _recover_junction(target: Path, data: dict[str, str], make_link: Callable[[Path, Path], None]) -> str:
    aside = aside_path(target)
    if os.path.lexists(target):
        if os.path.lexists(aside):
            remove_link(aside)
        return "finished"
    if os.path.lexists(aside):
        os.rename(aside, target)
    elif data.get("old"):
        make_link(Path(data["old"]), target)
    return "undone"


def _recover_rename(target: Path, data: dict[str, str]) -> str:
    root = Path(data.get("root") or target.with_name(target.name + ".generations"))
    new, old = data.get("new"), data.get("old")
    if target.is_dir():
        return "finished" if generation_name(target) == new else "undone"
    if new and (root / new).is_dir():
        os.rename(root / new, target)
        return "finished"
    if old and (root / old).is_dir():
        os.rename(root / old, target)
    return "undone"


def switcher_for(mode: str) -> Switcher:
    if mode == "junction":
        return JunctionSwitcher()
    return RenameSwitcher() if mode == "rename" else PosixSwitcher()

