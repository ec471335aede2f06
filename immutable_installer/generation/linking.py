"""Placing a store file into a generation: hard link, copy-on-write clone, or copy (``--link-mode``).

A hard link shares the inode, so the file's mtime (and with it every timestamp ``.pyc``) stays valid and the
generation costs no data blocks. Across filesystems hard links fail; a clone (``FICLONE``, btrfs/XFS) is the
next best; a copy keeps the mtime (``copy2``) so the bytecode is still used as is. ``auto`` tries them in that
order on the first file and keeps the first that works for the rest; a later per-file failure (too many
links on one inode) falls back to a copy for that file only.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Callable

from immutable_installer.core.errors import BuildError, UsageError

MODES = ("auto", "hardlink", "clone", "copy")
FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
_FALLBACK_ERRNOS = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL,
                    errno.ENOTTY, errno.EACCES, errno.ENOSYS}


def hardlink(src: str, dst: str) -> None:
    os.link(src, dst)


def clone(src: str, dst: str) -> None:
    """Copy-on-write clone where the filesystem supports it (OSError otherwise); mode and mtime kept."""
    try:
        import fcntl
    except ImportError:  # Windows: no FICLONE (ReFS block cloning is not offered)
        raise OSError(errno.ENOTSUP, "copy-on-write clones are not available on this host", dst) from None

    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, fin.fileno())
        except OSError:
            os.close(fd)
            os.unlink(dst)
            raise
        os.close(fd)
    shutil.copystat(src, dst)


def copy(src: str, dst: str) -> None:
    """A plain copy that keeps the mtime, so timestamp bytecode of the copied source stays valid. Like a link
    it never replaces a file already there (FileExistsError): a clash must not be settled by the last writer."""
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    shutil.copystat(src, dst)


_FUNCTIONS: dict[str, Callable[[str, str], None]] = {"hardlink": hardlink, "clone": clone, "copy": copy}


class Linker:
    """Places files with one mode; ``auto`` settles on the first mode that works."""

    def __init__(self, requested: str = "auto") -> None:
        if requested not in MODES:
            raise UsageError(f"--link-mode {requested!r} is not one of {', '.join(MODES)}")
        self.requested = requested
        self.mode: str | None = None if requested == "auto" else requested
        self.fallbacks = 0
        self._count = threading.Lock()  # populate places files on several threads

    def place(self, src: str, dst: str) -> None:
        try:
            self._place(src, dst)
        except OSError as exc:
            if exc.filename is None:  # a write that failed (a full disk): say which file
                raise OSError(exc.errno, exc.strerror, dst) from None
            raise

    def _place(self, src: str, dst: str) -> None:
        if self.mode is None:
            self._settle(src, dst)
            return
        try:
            _FUNCTIONS[self.mode](src, dst)
        except OSError as exc:
            if exc.errno == errno.EMLINK and self.mode == "hardlink":  # this inode has too many links
                copy(src, dst)
                with self._count:
                    self.fallbacks += 1
                return
            if self.requested != "auto" and exc.errno in _FALLBACK_ERRNOS:
                raise BuildError(f"--link-mode {self.mode} is not possible here ({exc.strerror}: {dst})",
                                 hint="use --link-mode auto (or copy) when the store and the target are on "
                                      "different filesystems") from None
            raise

    def _settle(self, src: str, dst: str) -> None:
        last: OSError | None = None
        for mode in ("hardlink", "clone", "copy"):
            try:
                _FUNCTIONS[mode](src, dst)
            except OSError as exc:
                if exc.errno not in _FALLBACK_ERRNOS or mode == "copy":
                    raise
                last = exc
                continue
            self.mode = mode
            return
        raise last or OSError(f"cannot place {dst}")  # pragma: no cover - copy raised above
