"""Deterministic tar streams: the same members give the same bytes on any machine, so the same store entry is
the same layer (the same digest) wherever it is pushed from.

Members are written in the order given (callers sort them), as POSIX pax archives (``tarfile``'s own header
encoding: a pax record only for a name longer than 100 bytes), owner and group 0 with no names, the mode and
mtime given, then the end-of-archive marker. Nothing of the machine (owner, umask, the time) goes in.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterable, Iterator
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


# ------------------------------------------------------------------------------------------------ reading
class TarFormatError(ValueError):
    """Not a tar this reader takes (a bad checksum, a truncated member, a header kind it refuses)."""


@dataclass
class Header:
    """One member's header as the archive (with its pax records) gives it."""

    name: str
    kind: bytes  # tarfile's type byte: REGTYPE, DIRTYPE, SYMTYPE, ...
    mode: int
    size: int
    linkname: str


class Reader:
    """A tar read front to back from ``read`` (chunks of the stream, each seen once, e.g. hashed by the caller):
    headers parsed by ``tarfile.TarInfo.frombuf`` (checksums included), pax extended headers applied to the member
    they precede, GNU long names and global pax headers refused. ``tarfile``'s own stream mode copies its buffer
    on every read; here the bytes are sliced from one buffer and file contents handed out in large chunks."""

    def __init__(self, read: Callable[[int], bytes], chunk: int = CHUNK) -> None:
        self._read, self._chunk = read, chunk
        self._buf = bytearray()
        self._pos = 0

    def _fill(self, n: int) -> None:
        while len(self._buf) - self._pos < n:
            data = self._read(self._chunk)
            if not data:
                raise TarFormatError("the archive ends in the middle of a member")
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += data

    def _take(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return out

    def members(self) -> Iterator[tuple[Header, Iterator[bytes]]]:
        """Each member with an iterator over its contents, which must be consumed before the next member."""
        pax: dict[str, str] = {}
        while True:
            block = self._take(BLOCK)
            if block == b"\0" * BLOCK:
                return  # the end-of-archive marker (what follows is padding)
            try:
                info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            except tarfile.HeaderError as exc:
                raise TarFormatError(f"a member header is damaged ({exc})") from None
            if info.type == tarfile.XHDTYPE:
                pax = _pax_records(self._take(_padded(info.size))[: info.size])
                continue
            if info.type in (tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
                             tarfile.GNUTYPE_SPARSE):
                raise TarFormatError(f"a member uses a header kind this reader refuses ({info.type!r})")
            name = pax.get("path", info.name)
            size = int(pax["size"]) if "size" in pax else info.size
            header = Header(name, info.type, info.mode, size if info.type in tarfile.REGULAR_TYPES else 0,
                            pax.get("linkpath", info.linkname))
            pax = {}
            contents = self._contents(header.size)
            yield header, contents
            for _ in contents:  # whatever the caller left unread
                pass

    def _contents(self, size: int) -> Iterator[bytes]:
        left = size
        while left:
            self._fill(1)
            n = min(left, len(self._buf) - self._pos, self._chunk)
            out = bytes(self._buf[self._pos:self._pos + n])
            self._pos += n
            left -= n
            yield out
        pad = _padded(size) - size
        if pad:
            self._take(pad)

    def rest(self) -> None:
        """Read to the end of the stream (the caller hashes every byte of it)."""
        while self._read(self._chunk):
            pass


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _pax_records(data: bytes) -> dict[str, str]:
    """``"%d %s=%s\\n"`` records (POSIX pax); a malformed one is refused."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("a pax header is malformed") from None
        record = data[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise TarFormatError("a pax header is malformed")
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out
