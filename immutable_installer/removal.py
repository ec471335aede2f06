"""Deleting a folder tree that holds read-only files: generations (hard links into the read-only store) and
store entries.

On POSIX a read-only file in a writable folder is deleted like any other. Windows refuses to delete a file
with the read-only attribute ("Access denied"), and the attribute belongs to the file, not to one of its
names: clearing it on a generation's hard link clears it on the store's name too. ``remove_tree`` therefore
clears it only where Windows refused, and says whether it touched a file that has other names, so that the
caller can make the store read-only again (``Store.reseal``).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

# how to run ``_remove`` over several subtrees at once (a thread pool's ``map``, given by the caller: core
# starts no threads)
SideBySide = Callable[[Callable[[str], bool], list[str]], Iterable[bool]]


def remove_tree(path: Path | str, side_by_side: SideBySide | None = None) -> bool:
    """Delete ``path`` and everything under it, as far as possible (errors are ignored, like a cleanup must);
    returns True when a read-only file shared with another name (a hard link) had to be made writable.

    A generation holds ~35,000 names in a few hundred package folders; with ``side_by_side`` (a thread pool's
    ``map``) those subtrees are deleted at once (unlink and rmdir wait in the kernel without the GIL: 0.8-1.3 s
    -> 0.6 s for the reference stack here), then what is left."""
    if not os.path.isdir(path) or os.path.islink(path):
        return False
    subtrees = _subtrees(str(path)) if side_by_side is not None else []
    shared = any(list(side_by_side(_remove, subtrees))) if side_by_side is not None and subtrees else False
    return _remove(str(path)) or shared


def _subtrees(path: str, want: int = 16, depth: int = 5) -> list[str]:
    """Folders below ``path`` to delete side by side: the first level down with at least ``want`` of them (a
    virtualenv's site-packages' packages), or none."""
    level = [path]
    try:
        for _ in range(depth):
            below = [e.path for d in level for e in os.scandir(d)
                     if e.is_dir(follow_symlinks=False) and not _is_junction(e)]
            if len(below) >= want:
                return below
            if not below:
                break
            level = below
    except OSError:
        pass
    return []


def _is_junction(entry: os.DirEntry[str]) -> bool:
    """A Windows junction is a link, not a folder to descend into (rmtree refuses it as a root)."""
    return bool(getattr(entry, "is_junction", lambda: False)())


def _remove(path: str) -> bool:
    """One tree, clearing the read-only attribute only where the system refused (see the module's docstring)."""
    shared = False

    def on_error(func: object, name: str, _exc: object) -> None:
        nonlocal shared
        try:
            st = os.lstat(name)
            if not st.st_mode & stat.S_IWRITE:
                shared = shared or st.st_nlink > 1
                os.chmod(name, stat.S_IMODE(st.st_mode) | stat.S_IWRITE)
                if callable(func):
                    func(name)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=on_error)
    else:  # pragma: no cover - one of the two per interpreter
        shutil.rmtree(path, onerror=on_error)
    return shared
