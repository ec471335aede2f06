"""A wheel member's bytes, straight from the wheel already in memory, inflated by ISA-L.

Why not ``zipfile.ZipFile.open``: inflating is most of the cost of unpacking a wheel in-process, and reading
the reference wheelhouse's 914 MB through ``zipfile`` (the system zlib) takes 3.27 s of CPU where ISA-L
(``isal``, the pycompression project's binding of Intel's library) takes 1.55 s (``benchmarks/inflate.py``);
on a cold install every core is busy compiling bytecode, so each second saved is half a second of the install.

The reader keeps every check ``zipfile`` makes and adds none of its trust: the local header must carry the
central directory's name (a zip whose two directories disagree is refused), encrypted members are refused, a
member never yields more than the size its entry declares and must end exactly there (a member that would
inflate past it, a "zip bomb", is cut off and refused), and its CRC-32 must match. Other compression
methods (bzip2, lzma: legal in a zip, unseen in wheels) go through ``zipfile``.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from types import ModuleType
from typing import BinaryIO, cast

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader
_LOCAL_SIGNATURE = b"PK\x03\x04"
_INPUT = 1 << 20  # compressed bytes handed to the inflater at a time


def _inflater() -> ModuleType:
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - a platform without isal wheels: the system zlib, slower
        return zlib
    return isal_zlib


INFLATE = _inflater()


class BadMember(ValueError):
    """A member that is not what its zip entry says."""


def data_limits(archive: zipfile.ZipFile) -> dict[str, int]:
    """Where each member's data must end at the latest: the next local header, or the central directory (two
    members whose data overlap, another zip bomb, are refused like ``zipfile`` does)."""
    starts = sorted({i.header_offset for i in archive.infolist()} | {archive.start_dir})
    following = {start: starts[n + 1] for n, start in enumerate(starts[:-1])}
    return {i.filename: following.get(i.header_offset, archive.start_dir) for i in archive.infolist()}


def open_member(data: bytes, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> BinaryIO:
    """A stream of ``info``'s bytes; ``data`` holds the whole zip that ``archive`` was opened on, ``limit`` is
    where the member's data must end at the latest (``data_limits``)."""
    if info.flag_bits & 0x1:
        raise BadMember(f"{info.filename} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        return cast(BinaryIO, archive.open(info))
    header = data[info.header_offset:info.header_offset + _LOCAL_HEADER.size]
    if len(header) != _LOCAL_HEADER.size:
        raise BadMember(f"{info.filename}: its local header lies outside the archive")
    fields = _LOCAL_HEADER.unpack(header)
    if fields[0] != _LOCAL_SIGNATURE:
        raise BadMember(f"{info.filename}: no local header where the central directory points")
    name_length, extra_length = fields[10], fields[11]
    start = info.header_offset + _LOCAL_HEADER.size
    local_name = data[start:start + name_length].decode("utf-8" if info.flag_bits & 0x800 else "cp437",
                                                        errors="replace")
    if local_name != info.orig_filename:
        raise BadMember(f"{info.filename}: the local header names {local_name!r}; the two directories disagree")
    begin = start + name_length + extra_length
    if begin + info.compress_size > limit:
        raise BadMember(f"{info.filename}: its data overlaps the next member")
    return cast(BinaryIO, _Member(memoryview(data)[begin:begin + info.compress_size], info))


class _Member:
    """``read(n)`` of one member: stored bytes sliced, deflated bytes inflated on demand, at most the
    declared size, checked at the end."""

    def __init__(self, raw: memoryview, info: zipfile.ZipInfo) -> None:
        self.raw, self.name, self.expected_crc = raw, info.filename, info.CRC
        self.left = info.file_size
        self.pos = 0
        self.tail = b""
        self.crc = 0
        self.checked = False
        self.inflater = INFLATE.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None

    def read(self, size: int | None = -1) -> bytes:
        want = self.left if size is None or size < 0 else min(size, self.left)
        parts: list[bytes] = []
        while want > 0:
            chunk = self._next(want)
            parts.append(chunk)
            want -= len(chunk)
            self.left -= len(chunk)
            self.crc = INFLATE.crc32(chunk, self.crc)
        if self.left == 0 and not self.checked:
            self._end()
            self.checked = True
        return b"".join(parts)

    def close(self) -> None:
        """Nothing to release (the bytes are the wheel's, in memory)."""

    def _next(self, want: int) -> bytes:
        if self.inflater is None:
            chunk = bytes(self.raw[self.pos:self.pos + want])
            self.pos += len(chunk)
            if not chunk:
                raise BadMember(f"{self.name} is shorter than its zip entry says")
            return chunk
        while True:
            source = self._input()
            chunk = self.inflater.decompress(source, want)
            self.tail = self.inflater.unconsumed_tail
            if chunk:
                return cast(bytes, chunk)
            if not source or self.inflater.eof:
                raise BadMember(f"{self.name} is shorter than its zip entry says")

    def _input(self) -> bytes | memoryview:
        if self.tail:
            return self.tail
        source = self.raw[self.pos:self.pos + _INPUT]
        self.pos += len(source)
        return source

    def _end(self) -> None:
        """The declared size is reached: the data must end here, with the declared CRC."""
        if self.inflater is not None:
            while not self.inflater.eof:
                source = self._input()
                extra = self.inflater.decompress(source, 1)
                self.tail = self.inflater.unconsumed_tail
                if extra:
                    raise BadMember(f"{self.name} is longer than its zip entry says")
                if not source:
                    raise BadMember(f"{self.name}: its compressed data ends too early")
        elif self.pos != len(self.raw):
            raise BadMember(f"{self.name} is longer than its zip entry says")
        if self.crc != self.expected_crc:
            raise BadMember(f"{self.name}: bad CRC-32")
