"""What `lock` needs to know of each pinned wheel, read where the wheel lies and cached by its sha256.

One read of a wheel's zip directory gives everything the lock reports and records: its ``Requires-Dist``
(the graph, blacklist chains, groups), the modules it is known by (``verify.imports``, dists/import_names.py)
and the start-up code it would install (what `install` will refuse unless ``verify.allowed_pth`` allows it).
A local wheel is opened in place; a remote one is read through HTTP range requests (only the zip's directory
and the few members read travel), or whole when it is small or the server ignores ranges.

A file's contents never change, so the facts are cached by its sha256 (in memory, and on disk under
``~/.cache/immutable-installer/wheel-metadata`` or ``IMMUTABLE_INSTALLER_CACHE``): a re-lock reads nothing over
the network. The cache is a speed-up, never a trust anchor: before anything is installed the scan reads every
wheel's own METADATA, RECORD and start-up files again.
"""

from __future__ import annotations

import io
import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, TypeVar

from immutable_installer.core.errors import ResolutionError
from immutable_installer.core.names import canonical
from immutable_installer.core.paths import cache_root
from immutable_installer.core.urls import mask_text
from immutable_installer.dists.import_names import ImportNames, import_names
from immutable_installer.dists.wheel import (
    METADATA_CAP,
    dist_info_dirs,
    own_dist_info,
    read_capped,
    startup_code,
    top_level_names,
)

T = TypeVar("T")
WHOLE_WHEEL_LIMIT = 2 * 1024 * 1024  # above this, a remote wheel is read by range requests
FACTS_FORMAT = 3  # 1: Requires-Dist only; 2: no top-level names (read again for the rest)


@dataclass(frozen=True)
class LockFacts:
    """One wheel as the lock sees it."""

    requires_dist: tuple[str, ...]
    imports: ImportNames = field(default_factory=lambda: ImportNames((), ()))
    startup: Mapping[str, str] = field(default_factory=dict)  # allow-list name -> what runs at every start
    top_level: tuple[str, ...] = ()  # every top-level name it installs (a renamed fork shipping torchao/)
    names: tuple[str, ...] = ()  # every name it goes by: file name, METADATA, .dist-info folders

    def to_json(self, sha: str) -> dict[str, Any]:
        return {"format": FACTS_FORMAT, "sha256": sha, "requires_dist": list(self.requires_dist),
                "imports": {"primary": list(self.imports.primary), "secondary": list(self.imports.secondary)},
                "startup": dict(self.startup), "top_level": list(self.top_level), "names": list(self.names)}

    @classmethod
    def from_json(cls, data: Any, sha: str) -> LockFacts | None:
        """The cached facts of ``sha``; None for anything else (another file's entry, an older format)."""
        try:
            if data["sha256"] != sha or data.get("format") != FACTS_FORMAT:
                return None
            imports = ImportNames(tuple(map(str, data["imports"]["primary"])),
                                  tuple(map(str, data["imports"]["secondary"])))
            return cls(tuple(map(str, data["requires_dist"])), imports,
                       {str(k): str(v) for k, v in data["startup"].items()}, tuple(map(str, data["top_level"])),
                       tuple(map(str, data["names"])))
        except (KeyError, TypeError, AttributeError):
            return None


def facts_from_zip(zf: zipfile.ZipFile, filename: str, dist: str) -> LockFacts:
    """Everything the lock needs from an open wheel (each metadata member read with a size cap)."""
    names = zf.namelist()
    infos = dist_info_dirs(names)
    if not infos:
        raise ValueError(f"{filename}: not a wheel (no .dist-info folder)")
    info = own_dist_info(infos, canonical(dist))
    meta = read_capped(zf, f"{info}/METADATA", METADATA_CAP).decode("utf-8", errors="replace")
    top = f"{info}/top_level.txt"
    top_level = read_capped(zf, top, METADATA_CAP).decode("utf-8", errors="replace") if top in names else None
    crc = {i.filename: f"crc32={i.CRC:08x}" for i in zf.infolist()}
    startup = {name: what[0] for name, what in startup_code(zf, filename, names, info, {}, crc).items()}
    headers = HeaderParser().parsestr(meta)
    requires = tuple(headers.get_all("Requires-Dist") or ())
    claimed = tuple(dict.fromkeys([canonical(dist), canonical(headers.get("Name", "") or dist),
                                   *(canonical(d[: -len(".dist-info")].rsplit("-", 1)[0]) for d in infos)]))
    return LockFacts(requires, import_names(dist, names, top_level), startup, top_level_names(names), claimed)


# ------------------------------------------------------------------------------------------------ cache
_MEMORY: dict[str, LockFacts] = {}  # wheel sha256 -> facts (variants and platforms share most of their wheels)


def wheel_location(wheel: Mapping[str, Any]) -> str:
    """Where a pylock-style wheel entry lies: its url, or its path."""
    return str(wheel.get("url") or wheel.get("path"))


def cached_facts(wheel: Mapping[str, Any], dist: str) -> LockFacts:
    """The facts of a pylock-style wheel entry (``url`` or ``path``, ``size``, ``hashes``), from memory, the
    disk cache, or the wheel itself (then cached)."""
    sha = str((wheel.get("hashes") or {}).get("sha256") or "")
    if sha and sha in _MEMORY:
        return _MEMORY[sha]
    cached = _disk_get(sha) if sha else None
    if cached is None:
        location = wheel_location(wheel)
        filename = urllib.parse.unquote(location.rsplit("/", 1)[-1].split("#", 1)[0])
        cached = read_wheel_at(location, wheel.get("size"), lambda zf: facts_from_zip(zf, filename, dist))
        if sha:
            _disk_put(sha, cached)
    if sha:
        _MEMORY[sha] = cached
    return cached


def forget_memory() -> None:
    """A new process, as far as the facts go (tests)."""
    _MEMORY.clear()


def metadata_cache_root() -> Path:
    """The cache's ``wheel-metadata`` folder (core/paths.py)."""
    return cache_root() / "wheel-metadata"


def _cache_file(sha: str) -> Path | None:
    if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        return None
    return metadata_cache_root() / sha[:2] / f"{sha}.json"


def _disk_get(sha: str) -> LockFacts | None:
    path = _cache_file(sha)
    if path is None:
        return None
    try:
        return LockFacts.from_json(json.loads(path.read_text(encoding="utf-8")), sha)
    except (OSError, ValueError):
        return None


def _disk_put(sha: str, facts: LockFacts) -> None:
    path = _cache_file(sha)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(facts.to_json(sha)), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next lock some time


# ------------------------------------------------------------------------------------------ reading
def read_wheel_at(location: str, size: Any, read: Callable[[zipfile.ZipFile], T]) -> T:
    """Open a wheel where it lies (a local file, a small remote one whole, a large one by HTTP range requests)
    and apply ``read`` to it; ResolutionError (exit 1) naming the location when it cannot be read."""
    parsed = urllib.parse.urlparse(location)
    try:
        if parsed.scheme in ("", "file"):
            path = urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else location
            with zipfile.ZipFile(path) as zf:
                return read(zf)
        url = _plain(location)
        if size is None or int(size) <= WHOLE_WHEEL_LIMIT:
            with _open(url, {}) as response:
                data = response.read()
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return read(zf)
        reader = io.BufferedReader(_HttpRange(url, int(size)), buffer_size=256 * 1024)
        with zipfile.ZipFile(reader) as zf:
            return read(zf)
    except _RangesIgnored:
        with _open(_plain(location), {}) as response:
            data = response.read()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return read(zf)
    except (urllib.error.URLError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ResolutionError(f"cannot read the wheel {mask_text(location)}: {exc}") from None


def _plain(url: str) -> str:
    """The URL without credentials (net remembers them for its host and sends them as a Basic header)."""
    from immutable_installer.net import remember

    return remember(url)


def _open(url: str, headers: Mapping[str, str]) -> Any:
    from immutable_installer.net import open_url

    return open_url(url, timeout=60, headers=headers)


class _RangesIgnored(Exception):
    """The server answered a range request with the whole file: read it whole instead."""


class _HttpRange(io.RawIOBase):
    """A seekable read-only view of a remote file through HTTP range requests (for zipfile)."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size, self.pos = url, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset if whence == 1 else self.size + offset
        return self.pos

    def readinto(self, buffer: Any) -> int:
        if self.pos >= self.size:
            return 0
        end = min(self.size, self.pos + len(buffer)) - 1
        with _open(self.url, {"Range": f"bytes={self.pos}-{end}"}) as response:
            if response.status != 206:
                raise _RangesIgnored(f"the server ignored a range request for {mask_text(self.url)}")
            data = response.read(end - self.pos + 1)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)
