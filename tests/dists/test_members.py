"""Reading wheel members from memory: the same bytes as zipfile, and every lie a zip can tell refused."""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import make_wheel
from immutable_installer.core.errors import UnsoundWheelError
from immutable_installer.dists import members
from immutable_installer.dists.members import BadMember, data_limits, open_member
from immutable_installer.dists.wheel import open_wheel
from immutable_installer.store import fill

BIG = b"".join(b"line %d of something compressible\n" % i for i in range(120_000))  # ~4 MB, many inflate calls


def archive(entries: dict[str, tuple[bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, (data, method) in entries.items():
            zf.writestr(name, data, compress_type=method)
    return buf.getvalue()


def read_all(data: bytes, name: str, chunk: int = -1, **changes: int) -> bytes:
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo(name)
    for field, value in changes.items():
        setattr(info, field, value)
    stream = open_member(data, zf, info, data_limits(zf)[name])
    if chunk < 0:
        return stream.read()
    out = b""
    while piece := stream.read(chunk):
        out += piece
    return out


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2])
@pytest.mark.parametrize("chunk", [-1, 1, 4096, 1 << 20])
def test_members_read_as_zipfile_reads_them(method: int, chunk: int) -> None:
    data = archive({"a/empty.txt": (b"", method), "a/big.bin": (BIG, method), "a/small.py": (b"x = 1\n", method)})
    for name, expected in (("a/empty.txt", b""), ("a/big.bin", BIG), ("a/small.py", b"x = 1\n")):
        if chunk == 1 and name == "a/big.bin":
            continue  # four million calls: the 4096 case covers the same paths
        assert read_all(data, name, chunk) == expected


def test_a_member_that_inflates_past_its_declared_size_is_cut_off_and_refused() -> None:
    """A zip bomb's way: a small declared size over a large stream. The reader never yields more than
    declared and refuses the member at its end."""
    data = archive({"bomb.bin": (b"\0" * (8 << 20), zipfile.ZIP_DEFLATED)})
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo("bomb.bin")
    info.file_size = 1000
    stream = open_member(data, zf, info, data_limits(zf)["bomb.bin"])
    with pytest.raises(BadMember, match="longer than its zip entry says"):
        stream.read(4096)
    stored = archive({"s.bin": (b"0123456789", zipfile.ZIP_STORED)})
    with pytest.raises(BadMember, match="longer"):
        read_all(stored, "s.bin", file_size=4)


def test_a_member_shorter_than_declared_or_with_a_wrong_crc_is_refused() -> None:
    data = archive({"m.txt": (b"hello\n" * 100, zipfile.ZIP_DEFLATED)})
    with pytest.raises(BadMember, match="shorter"):
        read_all(data, "m.txt", file_size=601)
    with pytest.raises(BadMember, match="CRC"):
        read_all(data, "m.txt", CRC=0)


def test_directories_that_disagree_encryption_and_overlaps_are_refused() -> None:
    data = archive({"one.py": (b"a = 1\n", zipfile.ZIP_DEFLATED), "two.py": (b"b = 2\n", zipfile.ZIP_DEFLATED)})
    with pytest.raises(BadMember, match="disagree"):
        read_all(data, "one.py", orig_filename="evil.py")  # the central name is not the local one
    with pytest.raises(BadMember, match="encrypted"):
        read_all(data, "one.py", flag_bits=0x1)
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo("one.py")
    info.compress_size += 40  # its data would run into two.py's local header
    with pytest.raises(BadMember, match="overlaps"):
        open_member(data, zf, info, data_limits(zf)["one.py"])
    info = zf.getinfo("two.py")
    info.header_offset += 1  # no local header there
    with pytest.raises(BadMember, match="no local header"):
        open_member(data, zf, info, data_limits(zf)["two.py"])


def test_a_wheel_whose_central_directory_lies_is_refused_before_anything_of_it_is_installed(tmp_path: Path) -> None:
    """The central directory's CRC of one member patched: the store refuses the whole wheel."""
    wheel = make_wheel(tmp_path / "w", "pkg", "1.0", files={"pkg/__init__.py": "", "pkg/data.txt": "x" * 1000})
    raw = bytearray(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as zf:
        target = zf.getinfo("pkg/data.txt")
    entry = raw.find(b"PK\x01\x02")  # the first central header; then on to the member's
    while struct.unpack_from("<H", raw, entry + 28)[0] != len(b"pkg/data.txt") or \
            raw[entry + 46:entry + 46 + 12] != b"pkg/data.txt":
        entry = raw.find(b"PK\x01\x02", entry + 4)
    struct.pack_into("<L", raw, entry + 16, target.CRC ^ 0xFFFF)
    wheel.write_bytes(bytes(raw))
    with pytest.raises(UnsoundWheelError, match="bad CRC-32"):
        fill.unpack(open_wheel(wheel), "pkg", tmp_path / "root", "3.11", sys.executable)
    site = tmp_path / "root" / "lib" / "python3.11" / "site-packages"
    assert not (site / "pkg" / "data.txt").exists()


def test_isal_inflates() -> None:
    assert members.INFLATE.__name__ == "isal.isal_zlib"  # a dependency: the system zlib only where it has no wheel
