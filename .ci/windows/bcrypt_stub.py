"""Write a code-less Windows DLL ``bcryptprimitives.dll`` whose one export, ``ProcessPrng``, forwards to
``advapi32.SystemFunction036`` (RtlGenRandom).

Why: Wine 8 (Debian 12) has no ``bcryptprimitives.dll``, and every Windows binary built by a recent Rust
imports ``ProcessPrng`` from it: ``uv.exe`` and ``pydantic_core`` (which typer pulls in) fail to load without it.
The DLL holds headers and one export table, no code: the loader resolves the forwarder to Wine's own
RtlGenRandom. Used only to prepare the Wine prefix of the CI's Windows suite (.ci/windows/setup.sh).

Usage: python bcrypt_stub.py <path of the DLL to write>
"""

from __future__ import annotations

import struct
import sys

FILE_ALIGN = 0x200
SECTION_RVA = 0x1000
DLL_NAME = b"bcryptprimitives.dll\0"
EXPORT = b"ProcessPrng\0"
FORWARD = b"advapi32.SystemFunction036\0"


def export_section() -> tuple[bytes, int]:
    """The export directory, its three tables and its strings; returns (bytes, directory size)."""
    directory_size = 40
    functions = SECTION_RVA + directory_size
    names = functions + 4
    ordinals = names + 4
    dll_name = ordinals + 2
    export_name = dll_name + len(DLL_NAME)
    forward = export_name + len(EXPORT)
    end = forward + len(FORWARD)
    directory = struct.pack("<IIHHIIIIIII", 0, 0, 0, 0, dll_name, 1, 1, 1, functions, names, ordinals)
    # the function's address lies inside the export directory's range: the loader reads it as a forwarder
    body = directory + struct.pack("<I", forward) + struct.pack("<I", export_name) + struct.pack("<H", 0)
    body += DLL_NAME + EXPORT + FORWARD
    return body, end - SECTION_RVA


def dll() -> bytes:
    section, export_size = export_section()
    raw_size = -(-len(section) // FILE_ALIGN) * FILE_ALIGN
    dos = b"MZ" + b"\0" * 58 + struct.pack("<I", 0x40)
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x2022)  # x86-64, one section, DLL | executable
    optional = struct.pack(
        "<HBBIIIIIQIIHHHHHHIIIIHHQQQQII",
        0x20B, 14, 0, 0, raw_size, 0, 0, SECTION_RVA,  # PE32+, no code, no entry point
        0x180000000, 0x1000, FILE_ALIGN,  # image base, section and file alignment
        6, 0, 0, 0, 6, 0, 0,  # OS, image and subsystem versions, Win32VersionValue
        SECTION_RVA + 0x1000, FILE_ALIGN, 0, 3, 0x0140,  # image and header sizes, checksum, console, NX+dynbase
        0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    directories = struct.pack("<II", SECTION_RVA, export_size) + b"\0" * 8 * 15
    header = struct.pack("<8sIIIIIIHHI", b".rdata", len(section), SECTION_RVA, raw_size, FILE_ALIGN, 0, 0, 0, 0,
                         0x40000040)  # initialized data, readable
    headers = dos + b"PE\0\0" + coff + optional + directories + header
    return headers.ljust(FILE_ALIGN, b"\0") + section.ljust(raw_size, b"\0")


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as fh:
        fh.write(dll())
