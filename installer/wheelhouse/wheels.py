"""Read-only wheel inspection: filename tags, METADATA, RECORD, importable top-level names.

The scanner trusts the wheels, not the manifest: what a wheel really requires and really installs is
read from its own METADATA and RECORD here.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import parse_wheel_filename

from installer.core.names import canonical
from installer.core.pth import executable_pth_lines


@dataclass(frozen=True)
class WheelInfo:
    """What the scanner needs to know about one wheel file."""

    filename: str
    name: str
    version: str
    requires_dist: tuple[str, ...]
    top_level: tuple[str, ...]


def dist_info_dir(names: list[str], filename: str) -> str:
    """The ``*.dist-info`` directory inside a wheel (PEP 427)."""
    candidates = sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")})
    if len(candidates) != 1:
        raise ValueError(f"{filename}: expected one .dist-info directory, found {len(candidates)}")
    return candidates[0]


def top_level_names(paths: list[str]) -> tuple[str, ...]:
    """Importable top-level packages/modules a wheel installs (from its file list, not top_level.txt)."""
    out: set[str] = set()
    for path in paths:
        head = path.split("/", 1)[0]
        if head.endswith((".dist-info", ".data")):
            # purelib/platlib inside .data install to site-packages too
            parts = path.split("/")
            if head.endswith(".data") and len(parts) > 3 and parts[1] in ("purelib", "platlib"):
                head = parts[2]
            else:
                continue
        if "/" not in path or path.startswith(head + "/"):
            name = head
            if name.endswith(".py"):
                name = name[:-3]
            elif "." in name:  # extension module foo.cpython-311-x86_64-linux-gnu.so
                name = name.split(".", 1)[0]
            if name.isidentifier():
                out.add(name)
    return tuple(sorted(out))


def read_wheel(path: str | Path) -> WheelInfo:
    """Open a wheel and read its metadata; ValueError for anything that is not a sound wheel."""
    path = Path(path)
    name, version, _, _ = parse_wheel_filename(path.name)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            info = dist_info_dir(names, path.name)
            meta_text = zf.read(f"{info}/METADATA").decode("utf-8")
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ValueError(f"{path.name}: not a readable wheel ({exc})") from None
    headers = HeaderParser().parsestr(meta_text)
    requires = tuple(headers.get_all("Requires-Dist") or ())
    return WheelInfo(path.name, canonical(str(name)), str(version), requires, top_level_names(names))


def read_record(text: str) -> list[tuple[str, str, str]]:
    """Rows of a RECORD file: (path, hash, size)."""
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if row:
            rows.append((row[0], row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else ""))
    return rows


def installed_files(path: str | Path) -> dict[str, str]:
    """Where each file of a wheel lands, mapped to its content identity, without installing it.

    Keys are scheme-qualified (``purelib/cv2/__init__.py``, ``scripts/tool``, ``data/share/x``,
    ``headers/pkg/x.h``; purelib and platlib are one folder in a virtualenv, so both map to ``purelib``);
    values are the RECORD hash (or the zip CRC when RECORD has none). Console and GUI scripts pip generates
    from ``entry_points.txt`` are included as ``scripts/<name>`` valued by their target.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        info = dist_info_dir(names, path.name)
        record = {p: h for p, h, _ in read_record(zf.read(f"{info}/RECORD").decode("utf-8"))} \
            if f"{info}/RECORD" in names else {}
        crc = {i.filename: f"crc32={i.CRC:08x}" for i in zf.infolist()}
        entry_points = zf.read(f"{info}/entry_points.txt").decode("utf-8") \
            if f"{info}/entry_points.txt" in names else ""
    data_dir = info[: -len(".dist-info")] + ".data"
    out: dict[str, str] = {}
    for name in names:
        if name.endswith("/"):
            continue
        ident = record.get(name) or crc[name]
        head, _, rest = name.partition("/")
        if head == data_dir:
            scheme, _, sub = rest.partition("/")
            scheme = "purelib" if scheme in ("purelib", "platlib") else scheme
            if scheme == "headers":
                sub = f"{canonical(path.name.split('-')[0])}/{sub}"
            out[f"{scheme}/{sub}"] = ident
        else:
            out[f"purelib/{name}"] = ident
    for script, target in entry_point_targets(entry_points).items():
        out[f"scripts/{script}"] = f"entry-point={target}"
    return out


def entry_point_targets(text: str) -> dict[str, str]:
    """Console and GUI script names -> their ``module:function`` targets."""
    out, section = {}, ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif "=" in line and section in ("console_scripts", "gui_scripts"):
            name, _, target = line.partition("=")
            out[name.strip()] = target.strip()
    return out


def startup_code(path: str | Path) -> dict[str, list[str]]:
    """``.pth`` files a wheel installs at the top of site-packages that run code: name -> executable lines."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    with zipfile.ZipFile(path) as zf:
        data_dir = dist_info_dir(zf.namelist(), path.name)[: -len(".dist-info")] + ".data"
        for name in zf.namelist():
            parts = name.split("/")
            top = parts[-1] if len(parts) == 1 else (
                parts[2] if len(parts) == 3 and parts[0] == data_dir and parts[1] in ("purelib", "platlib") else "")
            if top.endswith(".pth"):
                lines = executable_pth_lines(zf.read(name).decode("utf-8", errors="replace"))
                if lines:
                    out[top] = lines
    return out
