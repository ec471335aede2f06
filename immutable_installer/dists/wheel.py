"""The one wheel reader: a wheel file read once (one ``read``), hashed from those bytes, and parsed from them
(filename tags, METADATA, RECORD, entry points, the installed paths and start-up code).

The scanner trusts the wheels, not the manifest: what a wheel really requires and really installs is read
from its own METADATA and RECORD here. The store fills its entries from the same bytes (``WheelBytes``), so
a cold install reads each wheel from the wheelhouse exactly once.
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from installer.utils import parse_entrypoints
from packaging.utils import parse_wheel_filename

from immutable_installer.core.names import canonical
from immutable_installer.core.startup import site_relative, startup_finding
from immutable_installer.dists.installed import record_rows

# The largest a metadata member (METADATA, RECORD, WHEEL, entry_points.txt, top_level.txt) or a start-up file
# (.pth, .start, sitecustomize.py) may declare: torch's RECORD, among the largest published, is 1.6 MB. A member
# declaring more is refused before a byte of it is inflated, and zipfile never yields more than a member
# declares (a deflate bomb that lies about its size fails its CRC check), so reading a wheel's metadata takes
# bounded memory whatever the wheel holds.
METADATA_CAP = 16 * 1024 * 1024


def read_capped(zf: zipfile.ZipFile, name: str, cap: int = METADATA_CAP) -> bytes:
    """One member's bytes; ValueError when it declares more than ``cap`` bytes."""
    info = zf.getinfo(name)
    if info.file_size > cap:
        raise ValueError(f"{name} declares {info.file_size} bytes, over the {cap // (1024 * 1024)} MiB bound for a "
                         "metadata or start-up file")
    with zf.open(info) as fh:
        return fh.read(cap + 1)[:cap]


@dataclass(frozen=True)
class WheelInfo:
    """What one wheel is and installs, read once from its bytes."""

    filename: str
    name: str
    version: str
    sha256: str
    size: int
    requires_dist: tuple[str, ...]
    top_level: tuple[str, ...]
    entry_points: dict[str, str] = field(default_factory=dict)
    installed: dict[str, str] = field(default_factory=dict)
    startup: dict[str, list[str]] = field(default_factory=dict)
    record: dict[str, str] = field(default_factory=dict)  # archive path -> "sha256=..." from the wheel's RECORD
    unpacked: int = 0  # bytes its files take once unpacked (the zip's own sizes): what a new store entry costs
    metadata_name: str = ""  # the Name its METADATA gives (canonical)
    dist_infos: tuple[str, ...] = ()  # the distribution names of its *.dist-info folders (canonical)
    problems: tuple[str, ...] = ()  # why it is not a sound wheel (RECORD, member contents, script names)

    @property
    def claimed_names(self) -> tuple[str, ...]:
        """Every name the wheel goes by: its file name, its METADATA, its .dist-info folders."""
        return tuple(dict.fromkeys([self.name, *(n for n in (self.metadata_name,) if n), *self.dist_infos]))

    def facts(self) -> dict[str, Any]:
        """What the scan needs of this wheel, as JSON: kept in the store entry built from these bytes, so a
        later install scans a wheel the store holds without reading it again (``record`` serves only the
        unpacking and is left out)."""
        return {"filename": self.filename, "name": self.name, "version": self.version, "sha256": self.sha256,
                "size": self.size, "requires_dist": list(self.requires_dist), "top_level": list(self.top_level),
                "entry_points": self.entry_points, "installed": self.installed, "startup": self.startup,
                "unpacked": self.unpacked, "metadata_name": self.metadata_name, "dist_infos": list(self.dist_infos),
                "problems": list(self.problems)}

    @classmethod
    def from_facts(cls, data: dict[str, Any]) -> WheelInfo:
        """The inverse of ``facts`` (without ``record``); ValueError when ``data`` is not such a document."""
        try:
            return cls(str(data["filename"]), str(data["name"]), str(data["version"]), str(data["sha256"]),
                       int(data["size"]), tuple(map(str, data["requires_dist"])), tuple(map(str, data["top_level"])),
                       {str(k): str(v) for k, v in data["entry_points"].items()},
                       {str(k): str(v) for k, v in data["installed"].items()},
                       {str(k): [str(x) for x in v] for k, v in data["startup"].items()}, {}, int(data["unpacked"]),
                       # entries made before these were kept: the wheel was installed under the rules of then
                       str(data.get("metadata_name") or data["name"]),
                       tuple(map(str, data.get("dist_infos") or [data["name"]])),
                       tuple(map(str, data.get("problems") or [])))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a wheel's facts ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class WheelBytes:
    """A wheel's bytes as read from disk, with what was parsed from them."""

    info: WheelInfo
    data: bytes

    def zipfile(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(self.data))


def open_wheel(path: str | Path) -> WheelBytes:
    """Read a wheel file once, hash it and parse it; ValueError for anything that is not a sound wheel, OSError
    when it cannot be read."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return WheelBytes(parse_wheel(path.name, data), data)


def read_wheel(path: str | Path) -> WheelInfo:
    """``open_wheel`` without keeping the bytes."""
    return open_wheel(path).info


def parse_wheel(filename: str, data: bytes) -> WheelInfo:
    """Everything the scanner and the store need from one wheel's bytes, and every name it goes by. What makes
    it unsound without inflating a member (RECORD's rows, console script names) is in ``problems``;
    ``verify_contents`` checks the members against RECORD."""
    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except ValueError as exc:
        raise ValueError(f"{filename}: not a wheel file name ({exc})") from None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            infos = dist_info_dirs(names)
            if not infos:
                raise ValueError(f"{filename}: not a wheel (no .dist-info folder)")
            info = own_dist_info(infos, canonical(str(name)))
            meta_text = read_capped(zf, f"{info}/METADATA").decode("utf-8")
            rows = record_rows(read_capped(zf, f"{info}/RECORD").decode("utf-8")) if f"{info}/RECORD" in names else []
            record = {p: h for p, h, _ in rows}
            members = zf.infolist()
            crc = {i.filename: f"crc32={i.CRC:08x}" for i in members}
            unpacked = sum(i.file_size for i in members)
            entry_points = entry_point_targets(read_capped(zf, f"{info}/entry_points.txt").decode("utf-8")) \
                if f"{info}/entry_points.txt" in names else {}
            startup = startup_code(zf, filename, names, info, record, crc)
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"{filename}: not a readable wheel ({exc})") from None
    headers = HeaderParser().parsestr(meta_text)
    problems = ([] if f"{info}/RECORD" in names else [f"{info}/RECORD is missing"]) + record_problems(
        names, rows, info) + _script_problems(entry_points)
    return WheelInfo(filename, canonical(str(name)), str(version), hashlib.sha256(data).hexdigest(), len(data),
                     tuple(headers.get_all("Requires-Dist") or ()), top_level_names(names), entry_points,
                     _installed_files(filename, names, info, record, crc, entry_points), startup, record,
                     unpacked, canonical(headers.get("Name", "") or ""),
                     tuple(canonical(d[: -len(".dist-info")].rsplit("-", 1)[0]) for d in infos), tuple(problems))


def dist_info_dirs(names: list[str]) -> list[str]:
    """Every ``*.dist-info`` folder at the top of a wheel."""
    return sorted({n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")})


def own_dist_info(infos: list[str], name: str) -> str:
    """The .dist-info folder of the distribution the file name says (else the only one, else the first): the
    others are reported by the identity check, never silently ignored."""
    for info in infos:
        if canonical(info[: -len(".dist-info")].rsplit("-", 1)[0]) == name:
            return info
    return infos[0]


# RECORD hashes PEP 376 and the wheel spec allow: sha256 or stronger (md5 and sha1 are refused)
ALLOWED_HASHES = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512", "blake2b", "blake2s")
_SIGNATURES = ("RECORD.jws", "RECORD.p7s")  # signature files are not listed in RECORD


def record_problems(names: list[str], rows: list[tuple[str, str, str]], info: str) -> list[str]:
    """What makes a RECORD unsound: a member listed twice, a row without a hash (RECORD itself aside), a hash
    weaker than sha256 or of no known algorithm, a member of the wheel it does not list."""
    problems: list[str] = []
    listed: set[str] = set()
    for path, digest, _size in rows:
        if path in listed:
            problems.append(f"{path} is listed twice in RECORD")
            continue
        listed.add(path)
        if not digest:
            if path != f"{info}/RECORD":
                problems.append(f"{path} has no hash in RECORD")
            continue
        algorithm, _, value = digest.partition("=")
        if algorithm not in ALLOWED_HASHES or not value:
            problems.append(f"{path} is hashed with {algorithm!r} in RECORD: sha256 or stronger is required")
    for name in names:
        if name.endswith("/") or name in listed or name == f"{info}/RECORD":
            continue
        if name.startswith(info + "/") and name.rsplit("/", 1)[-1] in _SIGNATURES:
            continue
        problems.append(f"{name} is in the wheel but not in its RECORD")
    return problems


def _script_problems(entry_points: dict[str, str]) -> list[str]:
    """A console script name is a file name in ``bin/``: never a path that leaves it."""
    return [f"the console script {name!r} would be written outside bin/" for name in sorted(entry_points)
            if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".")]


def digest_of(algorithm: str, data: bytes) -> str:
    """``algorithm=<urlsafe base64, no padding>`` of ``data``, as RECORD writes a hash."""
    import base64

    return f"{algorithm}=" + base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()


def verify_contents(wheel: WheelBytes) -> list[str]:
    """Every member against its RECORD hash (whatever allowed algorithm the row names), inflated from the bytes
    in memory with zipfile's checks (dists/members.py): what the store checks while it unpacks, for `scan` and
    `install --dry-run`."""
    from immutable_installer.dists.members import data_limits, open_member

    problems: list[str] = []
    with wheel.zipfile() as zf:
        limits = data_limits(zf)
        for item in zf.infolist():
            expected = wheel.info.record.get(item.filename, "")
            if item.filename.endswith("/") or "=" not in expected:
                continue
            algorithm = expected.partition("=")[0]
            if algorithm not in ALLOWED_HASHES:
                continue  # already a problem of its RECORD
            digest = hashlib.new(algorithm)
            try:
                stream = open_member(wheel.data, zf, item, limits[item.filename])
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                problems.append(f"{item.filename} cannot be read from the wheel ({exc})")
                continue
            import base64

            got = f"{algorithm}=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
            if got != expected:
                problems.append(f"{item.filename} does not match its hash in RECORD")
    return problems


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


def entry_point_targets(text: str) -> dict[str, str]:
    """Console and GUI script names -> their ``module:function`` targets, read by PyPA ``installer``'s own parser
    (the one that writes the scripts into the store): what is scanned is what gets written. ValueError names an
    ``entry_points.txt`` it cannot read, rather than the assertion the library would fail with."""
    try:
        return {name: f"{module}:{attrs}" for name, module, attrs, _kind in parse_entrypoints(text)}
    except (configparser.Error, AssertionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "an entry point is not module:attribute"
        raise ValueError(f"entry_points.txt cannot be read ({first})") from None


def _installed_files(filename: str, names: list[str], info: str, record: dict[str, str], crc: dict[str, str],
                     entry_points: dict[str, str]) -> dict[str, str]:
    """Where each file of a wheel lands, mapped to its content identity, without installing it.

    Keys are scheme-qualified *final* places (``purelib/cv2/__init__.py``, ``scripts/tool``, ``data/share/x``,
    ``headers/pkg/x.h``): purelib and platlib are one folder in a virtualenv, and a data-scheme path into
    ``lib/pythonX.Y/site-packages/`` lands there too, so all three are ``purelib/...`` (two wheels reaching
    one file by different routes are a clash). Values are the RECORD hash (or the zip CRC when RECORD has
    none). Console and GUI scripts generated from ``entry_points.txt`` are ``scripts/<name>`` valued by their
    target.
    """
    return {key: ident for key, (ident, _member) in _placed(filename, names, info, record, crc).items()} | {
        f"scripts/{script}": f"entry-point={target}" for script, target in entry_points.items()}


def _placed(filename: str, names: list[str], info: str, record: dict[str, str],
            crc: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Final place -> (content identity, archive member) for every file of the wheel."""
    data_dir = info[: -len(".dist-info")] + ".data"
    out: dict[str, tuple[str, str]] = {}
    for name in names:
        if name.endswith("/"):
            continue
        ident = record.get(name) or crc[name]
        head, _, rest = name.partition("/")
        if head == data_dir:
            scheme, _, sub = rest.partition("/")
            scheme = "purelib" if scheme in ("purelib", "platlib") else scheme
            if scheme == "headers":
                sub = f"{canonical(filename.split('-')[0])}/{sub}"
            key = f"{scheme}/{sub}"
            in_site = site_relative(key)
            out[f"purelib/{in_site}" if in_site is not None else key] = (ident, name)
        else:
            out[f"purelib/{name}"] = (ident, name)
    return out


def startup_code(zf: zipfile.ZipFile, filename: str, names: list[str], info: str, record: dict[str, str],
                  crc: dict[str, str]) -> dict[str, list[str]]:
    """Start-up code the wheel would install, by any route (core/startup.py): allow-list name -> what runs."""
    out: dict[str, list[str]] = {}
    for key, (_ident, member) in sorted(_placed(filename, names, info, record, crc).items()):
        rel = site_relative(key)
        if rel is None:
            continue
        found = startup_finding(rel, functools.partial(read_capped, zf, member))
        if found is not None:
            out.setdefault(found[0], []).append(found[1])
    return out
