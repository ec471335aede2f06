"""Deterministic tar streams: the same members give the same bytes on any machine, so the same store entry is
the same layer (the same digest) wherever it is pushed from.

Members are written in the order given (callers sort them), as POSIX pax archives (``tarfile``'s own header
encoding: a pax record only for a name longer than 100 bytes), owner and group 0 with no names, the mode and
mtime given, then the end-of-archive marker. Nothing of the machine (owner, umask, the time) goes in.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20
BLOCK = 512


@dataclass(frozen=True)
class Member:
    """One member: a folder, a file (its bytes from ``source`` or ``data``) or a symbolic link."""

    name: str  # relative, "/"-separated, no trailing slash
    kind: str  # "dir", "file" or "link"
    mode: int
    mtime: int
    size: int = 0
    source: Path | None = None
    data: bytes | None = None
    target: str = ""


def header(member: Member) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.mode, info.mtime = member.mode, member.mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if member.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif member.kind == "link":
        info.type, info.linkname = tarfile.SYMTYPE, member.target
    else:
        info.size = member.size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def stream(members: Iterable[Member]) -> Iterator[bytes]:
    """The archive, in chunks; a file that changed size since it was listed is an error, not a corrupt tar."""
    for member in members:
        yield header(member)
        if member.kind != "file":
            continue
        written = 0
        if member.data is not None:
            written = len(member.data)
            yield member.data
        elif member.source is not None:
            with open(member.source, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    written += len(chunk)
                    yield chunk
        if written != member.size:
            raise OSError(f"{member.source or member.name} changed while it was archived "
                          f"({written} bytes, {member.size} expected)")
        if written % BLOCK:
            yield b"\0" * (BLOCK - written % BLOCK)
    yield b"\0" * (2 * BLOCK)


def digest_and_size(members: Iterable[Member]) -> tuple[str, int]:
    """``sha256:...`` and the byte count of the archive, without writing it anywhere."""
    h = hashlib.sha256()
    size = 0
    for chunk in stream(members):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size
