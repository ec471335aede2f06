"""The few installed files that name their environment's interpreter: console scripts and their RECORD rows.

pip writes a console script (from ``entry_points.txt``) with distlib's shebang rule, and rewrites ``#!python``
in a wheel's ``.data/scripts`` to a plain ``#!<interpreter>`` line; both land in RECORD with their hash. A store
entry holds them as pip wrote them for the store's build environment; each generation gets its own copy with
its own interpreter, byte for byte what pip would have written there, and a RECORD whose rows for those files
carry the new hash and size. Everything else is linked unchanged.

On Windows a console script is ``<name>.exe``: distlib's launcher (the one PyPA ``installer`` ships), then a
``#!<python.exe>`` line, then a zip holding ``__main__.py``. The launcher reads the line that precedes the zip,
and a zip is read from its end, so a generation's copy only replaces the line. pip stamps the zip member with
the time of the install; ours carries a fixed date, so that the same entry gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import sys
import zipfile

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


def launcher_shebang(python: str, gui: bool = False) -> bytes:
    """distlib's line for a Windows launcher: the interpreter (``pythonw.exe`` for a GUI script) quoted when its
    path has a space."""
    exe = gui_python(python) if gui else python
    exe = f'"{exe}"' if " " in exe else exe
    return f"#!{exe}\n".encode()


def gui_python(python: str) -> str:
    """``pythonw.exe`` beside ``python.exe``: a GUI script opens no console window."""
    folder, name = os.path.split(python)
    return os.path.join(folder, name.replace("python", "pythonw", 1))


def launcher_bytes(gui: bool) -> bytes:
    """The Windows launcher for this machine's architecture, as PyPA ``installer`` ships it."""
    from importlib.resources import files

    arm = platform.machine().lower() in ("arm64", "aarch64")
    name = ("w" if gui else "t") + ("64-arm" if arm else "64") + ".exe"
    return (files("installer._scripts") / name).read_bytes()


def windows_launcher(python: str, code: bytes, gui: bool) -> tuple[bytes, dict[str, object]]:
    """``<name>.exe`` for one entry point, and how a generation rewrites it (``script_info``)."""
    launcher = launcher_bytes(gui)
    header = launcher_shebang(python, gui)
    stream = io.BytesIO()
    with zipfile.ZipFile(stream, "w") as zf:
        zf.writestr(zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0)), code)
    info: dict[str, object] = {"kind": "launcher", "start": len(launcher), "header": len(header), "gui": gui}
    return launcher + header + stream.getvalue(), info


def rewrite_script(content: bytes, info: dict[str, object], python: str) -> bytes:
    """``content`` (a script a store entry holds) naming ``python`` instead; ``info`` says which rule wrote it."""
    kind, header_len = str(info["kind"]), int(str(info["header"]))
    if kind == "launcher":
        start = int(str(info["start"]))
        line = launcher_shebang(python, bool(info.get("gui")))
        return content[:start] + line + content[start + header_len:]
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
