"""The few installed files that name their environment's interpreter: console scripts and their RECORD rows.

pip writes a console script (from ``entry_points.txt``) with distlib's shebang rule, and rewrites ``#!python``
in a wheel's ``.data/scripts`` to a plain ``#!<interpreter>`` line; both land in RECORD with their hash. A store
entry holds them as pip wrote them for the store's build environment; each generation gets its own copy with
its own interpreter, byte for byte what pip would have written there, and a RECORD whose rows for those files
carry the new hash and size. Everything else is linked unchanged.
"""

from __future__ import annotations

import csv
import io
import sys

from immutable_installer.dists.hashing import record_digest

MAX_SHEBANG = 512 if sys.platform == "darwin" else 127


def console_shebang(python: str) -> bytes:
    """distlib's ``_build_shebang`` (what pip uses for console scripts) on POSIX."""
    exe = f'"{python}"' if " " in python else python
    if " " not in exe and len(exe) + 3 <= MAX_SHEBANG:
        return f"#!{exe}\n".encode()
    return f"#!/bin/sh\n'''exec' {exe} \"$0\" \"$@\"\n' '''\n".encode()


def fixed_shebang(python: str) -> bytes:
    """pip's ``fix_script`` for ``#!python`` scripts shipped in ``.data/scripts``: always the plain form."""
    return f"#!{python}\n".encode()


def script_kind(content: bytes, python: str, entry_point: bool) -> tuple[str, int] | None:
    """Which rule wrote this script's header for ``python`` and how long the header is; None when the script
    does not name that interpreter (it is then linked unchanged). The two rules give the same bytes for a short
    path, so the caller says whether the script is one pip generated from ``entry_points.txt``."""
    kind = "console" if entry_point else "fixed"
    header = console_shebang(python) if entry_point else fixed_shebang(python)
    return (kind, len(header)) if content.startswith(header) else None


def rewrite_script(content: bytes, kind: str, header_len: int, python: str) -> bytes:
    header = console_shebang(python) if kind == "console" else fixed_shebang(python)
    return header + content[header_len:]


def rewrite_record(text: str, new_rows: dict[str, bytes]) -> str:
    """RECORD with the hash and size of the rows named in ``new_rows`` (path -> new content) replaced; every
    other line is kept byte for byte, including its line ending."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        row = next(csv.reader(io.StringIO(body)), None) if body else None
        if row and row[0] in new_rows:
            data = new_rows[row[0]]
            buf = io.StringIO()
            csv.writer(buf, lineterminator="").writerow([row[0], record_digest(data), str(len(data))])
            line = buf.getvalue() + line[len(body):]
        out.append(line)
    return "".join(out)
