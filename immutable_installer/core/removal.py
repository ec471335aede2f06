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
from pathlib import Path


def remove_tree(path: Path | str) -> bool:
    """Delete ``path`` and everything under it, as far as possible (errors are ignored, like a cleanup must);
    returns True when a read-only file shared with another name (a hard link) had to be made writable."""
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

    if not os.path.isdir(path) or os.path.islink(path):
        return False
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=on_error)
    else:  # pragma: no cover - one of the two per interpreter
        shutil.rmtree(path, onerror=on_error)
    return shared
