"""Resolution for any target with uv: markers evaluated for the target platform and Python, not this machine.

``uv pip compile --python-platform P --python-version X.Y --format pylock.toml`` gives the pinned set with every
wheel of each pin (url or path, sha256, size). From those we pick the file the target installs (the best match
for its tags, as pip would), and read its ``Requires-Dist`` from the index's PEP 658 metadata file, a local
wheel, or — where an index serves no metadata — the wheel itself (small ones whole, large ones by HTTP range
requests on the zip's directory). The result is the same ``Resolved`` list pip's report gives, so everything
after resolution (blacklist chains, groups, merging) is shared.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from email.parser import HeaderParser
from pathlib import Path
from typing import Any, TypeVar

from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from immutable_installer.core.errors import ResolutionError
from immutable_installer.core.manifest import Platform
from immutable_installer.core.names import canonical
from immutable_installer.core.tags import expand_platform_tags
from immutable_installer.core.targets import uv_platform
from immutable_installer.core.urls import mask_text
from immutable_installer.lock.resolved import Pending, Resolved, ResolveRequest
from immutable_installer.runner import Runner, clean_env

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")
WHOLE_WHEEL_LIMIT = 32 * 1024 * 1024  # above this, read a wheel's METADATA by range requests


def uv_binary() -> str:
    """The uv executable shipped with the uv package (a dependency), else one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        if not Path(found).exists():
            raise ResolutionError("uv is not installed",
                                  hint="pip install uv (a dependency of immutable-installer)") from None
        return found


def target_tags(python_version: str, platform: Platform) -> list[Tag]:
    """Every tag the target accepts, best first (the order pip ranks wheels by)."""
    major, minor = (int(p) for p in python_version.split(".")[:2])
    platforms = expand_platform_tags(platform.tags)
    return [*cpython_tags((major, minor), platforms=platforms),
            *compatible_tags((major, minor), interpreter=f"cp{major}{minor}", platforms=platforms)]


def best_wheel(wheels: Sequence[Mapping[str, Any]], tags: Sequence[Tag]) -> Mapping[str, Any] | None:
    rank = {t: i for i, t in enumerate(tags)}
    best: tuple[int, Mapping[str, Any]] | None = None
    for wheel in wheels:
        location = str(wheel.get("url") or wheel.get("path") or "")
        filename = urllib.parse.unquote(location.rsplit("/", 1)[-1].split("#", 1)[0])
        try:
            _, _, _, wheel_tags = parse_wheel_filename(filename)
        except ValueError:
            continue
        score = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if score is not None and (best is None or score < best[0]):
            best = (score, wheel)
    return best[1] if best else None


class UvResolver:
    """``Resolver`` for any target: uv evaluates markers for the target platform and Python."""

    name = "uv"

    def __init__(self) -> None:
        self.runner = Runner()

    def resolve(self, request: ResolveRequest, pool: Executor) -> Pending:
        settings = [*(["--prerelease", request.prerelease] if request.prerelease else []),
                    *(["--exclude-newer", request.exclude_newer] if request.exclude_newer else [])]
        return resolve(self.runner, request.python_version, request.platform, request.requirements,
                       request.constraints, request.index_url, request.extra_index_urls, request.find_links,
                       request.no_index, pool, settings)


def resolve(runner: Runner, python_version: str, platform: Platform, requirements: Sequence[str],
            constraints: Sequence[str], index_url: str | None, extra_index_urls: Sequence[str],
            find_links: Sequence[str], no_index: bool, pool: Executor | None = None,
            settings: Sequence[str] = ()) -> Pending:
    """Resolve for the target; raise ResolutionError with uv's own explanation when it cannot.

    The versions are back as soon as uv answers; each wheel's ``Requires-Dist`` is fetched on ``pool`` while
    the caller resolves its next target (``Pending.finish`` waits for them)."""
    with tempfile.TemporaryDirectory(prefix="immutable-lock-") as tmp:
        reqs = Path(tmp) / "requirements.in"
        reqs.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        out = Path(tmp) / "pylock.toml"
        args = [uv_binary(), "pip", "compile", str(reqs), "-o", str(out), "--format", "pylock.toml",
                "--python-version", python_version, "--python-platform", uv_platform(platform),
                "--python", sys.executable, "--no-python-downloads",  # markers come from the target, not this python
                "--only-binary", ":all:", "--no-header", "--no-config",  # not --quiet: it hides yank warnings
                "--index-strategy", "unsafe-best-match",  # pip's rule: the best version from any index
                *settings]  # --prerelease / --exclude-newer, as the lock records them
        if no_index:
            args.append("--no-index")
        elif index_url:
            args += ["--index-url", index_url]
        for url in extra_index_urls:
            args += ["--extra-index-url", url]
        for folder in find_links:
            args += ["--find-links", folder]
        if constraints:
            cpath = Path(tmp) / "constraints.txt"
            cpath.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            args += ["-c", str(cpath)]
        extra = {k: os.environ[k] for k in ("UV_CACHE_DIR",) if os.environ.get(k)}
        result = runner.run(args, env=clean_env(extra), timeout=1800)
        if not result.ok:
            raise ResolutionError(f"uv could not resolve for {platform.name} (python {python_version}): "
                                  f"{_uv_error(result.stderr)}", details=mask_text(result.stderr).splitlines()[-30:])
        lock = tomllib.loads(out.read_text(encoding="utf-8"))
    tags = target_tags(python_version, platform)
    chosen: list[tuple[str, str, Mapping[str, Any]]] = []
    for package in lock.get("packages", []):
        wheel = best_wheel(package.get("wheels", []), tags)
        if wheel is None:
            raise ResolutionError(f"{package['name']} {package.get('version')} has no wheel for {platform.name} "
                                  f"(python {python_version})", hint="pin a version that publishes one")
        chosen.append((canonical(package["name"]), str(package.get("version")), wheel))
    top = [Requirement(r) for r in requirements]
    requested = {canonical(r.name): tuple(sorted(canonical(e) for e in r.extras)) for r in top}
    own = pool is None
    executor = pool or ThreadPoolExecutor(max_workers=16)  # network-bound: one small GET per wheel
    futures = [executor.submit(_cached_requires, wheel) for _, _, wheel in chosen]

    def finish() -> list[Resolved]:
        try:
            metas = [f.result() for f in futures]
        finally:
            if own:
                executor.shutdown()
        return _resolved(chosen, metas, requested)

    return Pending([(name, version) for name, version, _ in chosen], finish, uv_warnings(result.stderr))


def uv_warnings(stderr: str) -> list[str]:
    """The warnings of uv's output worth repeating (a yanked release chosen because it is pinned with ==)."""
    return [mask_text(line.split(":", 1)[1].strip()) for line in stderr.splitlines()
            if line.startswith("warning:") and "yanked" in line]


def _resolved(chosen: Sequence[tuple[str, str, Mapping[str, Any]]], metas: Sequence[tuple[str, ...]],
              requested: Mapping[str, tuple[str, ...]]) -> list[Resolved]:
    out_list = []
    for (name, version, wheel), requires in zip(chosen, metas, strict=True):
        location = str(wheel.get("url") or wheel.get("path"))
        filename = urllib.parse.unquote(location.rsplit("/", 1)[-1].split("#", 1)[0])
        sha = (wheel.get("hashes") or {}).get("sha256")
        if not sha:
            raise ResolutionError(f"{filename}: the index gave no sha256", hint="use an index that publishes hashes")
        out_list.append(Resolved(name=name, version=version, filename=filename, sha256=sha, source_url=location,
                                 requires_dist=requires, requested=name in requested, size=wheel.get("size")))
    return out_list


# ------------------------------------------------------------------------------------------- metadata
_REQUIRES: dict[str, tuple[str, ...]] = {}  # wheel sha256 -> Requires-Dist (variants share most of their wheels)


def _cached_requires(wheel: Mapping[str, Any]) -> tuple[str, ...]:
    """``Requires-Dist`` of a wheel, from memory, the on-disk metadata cache, or the index (then cached).

    Keyed by the wheel's sha256: a file's metadata never changes, so the cache never goes stale (a re-lock
    reads no metadata over the network). Whatever it holds is checked again at install time: the scan reads
    every wheel's own METADATA and refuses a manifest that does not describe it (exit 2)."""
    sha = str((wheel.get("hashes") or {}).get("sha256") or "")
    if sha and sha in _REQUIRES:
        return _REQUIRES[sha]
    cached = _disk_cache_get(sha) if sha else None
    requires = cached if cached is not None else wheel_requires(wheel)
    if sha:
        _REQUIRES[sha] = requires
        if cached is None:
            _disk_cache_put(sha, requires)
    return requires


def _metadata_cache_file(sha: str) -> Path | None:
    if len(sha) != 64 or not all(c in "0123456789abcdef" for c in sha):
        return None
    return metadata_cache_root() / sha[:2] / f"{sha}.json"


def metadata_cache_root() -> Path:
    """``IMMUTABLE_INSTALLER_CACHE`` or ``~/.cache/immutable-installer`` (XDG_CACHE_HOME honoured), then
    ``wheel-metadata``."""
    root = os.environ.get("IMMUTABLE_INSTALLER_CACHE")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "immutable-installer")
    return Path(root) / "wheel-metadata"


def _disk_cache_get(sha: str) -> tuple[str, ...] | None:
    path = _metadata_cache_file(sha)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("sha256") != sha or not isinstance(data.get("requires_dist"), list):
        return None
    return tuple(str(r) for r in data["requires_dist"])


def _disk_cache_put(sha: str, requires: tuple[str, ...]) -> None:
    path = _metadata_cache_file(sha)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps({"sha256": sha, "requires_dist": list(requires)}), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs the next lock some time


def wheel_requires(wheel: Mapping[str, Any]) -> tuple[str, ...]:
    """``Requires-Dist`` of one wheel: the index's PEP 658 metadata file, else the wheel's own METADATA."""
    location = str(wheel.get("url") or wheel.get("path"))
    if urllib.parse.urlparse(location).scheme not in ("", "file"):
        url, headers = _plain(location), dict[str, str]()
        try:
            with _open(url + ".metadata", headers) as response:
                return _requires(response.read().decode("utf-8", errors="replace"))
        except (urllib.error.URLError, OSError, ValueError):
            pass  # no PEP 658 metadata on this index
    return _requires(_read_wheel(location, wheel.get("size"), lambda zf: _metadata_from_zip(zf, location)))


def wheel_names(location: str, size: int | None) -> list[str]:
    """The file list of a wheel (local, or remote: only its zip directory is read, by range requests when large)."""
    return _read_wheel(location, size, lambda zf: zf.namelist())


def _read_wheel(location: str, size: Any, read: Callable[[zipfile.ZipFile], T]) -> T:
    """Open a wheel where it lies — a local file, a small remote one whole, a large one by HTTP range requests
    (only the zip directory and the members read are transferred) — and apply ``read`` to it."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme in ("", "file"):
        path = urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else location
        with zipfile.ZipFile(path) as zf:
            return read(zf)
    url, headers = _plain(location), dict[str, str]()
    try:
        if size is None or int(size) <= WHOLE_WHEEL_LIMIT:
            with _open(url, headers) as response:
                data = response.read()
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return read(zf)
        reader = io.BufferedReader(_HttpRange(url, int(size), headers), buffer_size=256 * 1024)
        with zipfile.ZipFile(reader) as zf:
            return read(zf)
    except (urllib.error.URLError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ResolutionError(f"cannot read the wheel {mask_text(url)}: {exc}") from None


def _metadata_from_zip(zf: zipfile.ZipFile, where: str) -> str:
    names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(names) != 1:
        raise ResolutionError(f"{mask_text(where)}: not a wheel (no single .dist-info/METADATA)")
    return zf.read(names[0]).decode("utf-8", errors="replace")


def _requires(text: str) -> tuple[str, ...]:
    return tuple(HeaderParser().parsestr(text).get_all("Requires-Dist") or ())


def _plain(url: str) -> str:
    """The URL without credentials (net remembers them for its host and sends them as a Basic header)."""
    from immutable_installer.net import remember

    return remember(url)


def _open(url: str, headers: Mapping[str, str], extra: Mapping[str, str] | None = None) -> Any:
    from immutable_installer.net import open_url

    return open_url(url, timeout=60, headers={**headers, **(extra or {})})


class _HttpRange(io.RawIOBase):
    """A seekable read-only view of a remote file through HTTP range requests (for zipfile)."""

    def __init__(self, url: str, size: int, headers: Mapping[str, str]) -> None:
        self.url, self.size, self.headers, self.pos = url, size, headers, 0

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
        with _open(self.url, self.headers, {"Range": f"bytes={self.pos}-{end}"}) as response:
            data = response.read()
        if response.status != 206:
            raise OSError(f"the server ignored a range request for {mask_text(self.url)}")
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def _uv_error(stderr: str) -> str:
    lines = [ln.strip() for ln in mask_text(stderr).splitlines() if ln.strip() and not ln.startswith("warning")]
    for line in lines:
        if line.startswith(("×", "error:")):
            return line.lstrip("× ").removeprefix("error: ")
    return lines[0] if lines else "no output"
