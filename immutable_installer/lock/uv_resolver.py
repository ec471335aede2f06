"""Resolution for any target with uv: markers evaluated for the target platform and Python, not this machine.

``uv pip compile --python-platform P --python-version X.Y --format pylock.toml`` gives the pinned set with every
wheel of each pin (url or path, sha256, size). From those we pick the file the target installs (the best match
for its tags, as pip would), and read its ``Requires-Dist``, import names and start-up code from the wheel's
zip directory where it lies (lock/wheel_facts.py, cached by sha256). The result is the same ``Resolved`` list
pip's report gives, so everything after resolution (blacklist chains, groups, merging) is shared.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename

from immutable_installer import net_settings
from immutable_installer.core.errors import ResolutionError
from immutable_installer.core.model import Platform
from immutable_installer.core.names import canonical
from immutable_installer.core.spec import as_requirement, is_wheel_path
from immutable_installer.core.tags import expand_platform_tags
from immutable_installer.core.targets import uv_platform
from immutable_installer.core.urls import mask_text, strip_credentials
from immutable_installer.lock.resolved import Pending, Resolved, ResolveRequest
from immutable_installer.lock.wheel_facts import LockFacts, cached_facts
from immutable_installer.runner import Runner, clean_env, uv_binary

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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

    def resolve(self, request: ResolveRequest, pool: Executor | None = None) -> Pending:
        settings = [*(["--prerelease", request.prerelease] if request.prerelease else []),
                    *(["--exclude-newer", request.exclude_newer] if request.exclude_newer else [])]
        return resolve(self.runner, request.python_version, request.platform, request.requirements,
                       request.constraints, request.index_url, request.extra_index_urls, request.find_links,
                       request.no_index, pool, settings, request.hashes)


def resolve(runner: Runner, python_version: str, platform: Platform, requirements: Sequence[str],
            constraints: Sequence[str], index_url: str | None, extra_index_urls: Sequence[str],
            find_links: Sequence[str], no_index: bool, pool: Executor | None = None,
            settings: Sequence[str] = (), hashes: Mapping[str, frozenset[str]] | None = None) -> Pending:
    """Resolve for the target; raise ResolutionError with uv's own explanation when it cannot.

    The versions are back as soon as uv answers; each wheel's ``Requires-Dist`` is fetched on ``pool`` while
    the caller resolves its next target (``Pending.finish`` waits for them)."""
    with tempfile.TemporaryDirectory(prefix="immutable-lock-") as tmp:
        reqs = Path(tmp) / "requirements.in"
        local = {os.path.realpath(r): r for r in requirements if is_wheel_path(r)}  # real path -> as the user wrote it
        reqs.write_text("\n".join(str(as_requirement(r)) if is_wheel_path(r) else r for r in requirements) + "\n",
                        encoding="utf-8")
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
        extra.update(net_settings.current().uv_env())  # trust and proxy as every request and child has them
        result = runner.run(args, env=clean_env(extra), timeout=1800)
        if not result.ok:
            raise ResolutionError(f"uv could not resolve for {platform.name} (python {python_version}): "
                                  f"{_uv_error(result.stderr)}", details=mask_text(result.stderr).splitlines()[-200:])
        lock = tomllib.loads(out.read_text(encoding="utf-8"))
        base = out.parent
    tags = target_tags(python_version, platform)
    chosen: list[tuple[str, str, Mapping[str, Any]]] = []
    for package in lock.get("packages", []):
        archive = package.get("archive")
        if archive is not None:  # a direct URL or a local path, pinned by the hash uv took of it
            chosen.append((canonical(package["name"]), str(package.get("version")),
                           _direct(package["name"], archive, base, local)))
            continue
        name = canonical(package["name"])
        wheels = package.get("wheels", [])
        if hashes and name in hashes:  # -r FILE with --hash: only those files may be pinned
            wheels = [w for w in wheels if (w.get("hashes") or {}).get("sha256") in hashes[name]]
            if not wheels:
                raise ResolutionError(f"{name} {package.get('version')}: no wheel for {platform.name} has one of the "
                                      f"{len(hashes[name])} hashes the requirements file lists",
                                      hint="the file was compiled for another version, platform or Python; remove "
                                           "its --hash lines to lock afresh")
        wheel = best_wheel(wheels, tags)
        if wheel is None:
            raise ResolutionError(f"{package['name']} {package.get('version')} has no wheel for {platform.name} "
                                  f"(python {python_version})", hint="pin a version that publishes one")
        chosen.append((canonical(package["name"]), str(package.get("version")), wheel))
    top = [as_requirement(r) for r in requirements]
    requested = {canonical(r.name): tuple(sorted(canonical(e) for e in r.extras)) for r in top}
    own = pool is None
    executor = pool or ThreadPoolExecutor(max_workers=16)  # network-bound: one small GET per wheel
    futures = [executor.submit(cached_facts, wheel, name) for name, _, wheel in chosen]

    def finish() -> list[Resolved]:
        try:
            metas = [f.result() for f in futures]
        finally:
            if own:
                executor.shutdown()
        return _resolved(chosen, metas, requested)

    return Pending([(name, version) for name, version, _ in chosen], finish, uv_warnings(result.stderr))


def _direct(name: str, archive: Mapping[str, Any], base: Path, local: Mapping[str, str]) -> dict[str, Any]:
    """A direct reference of uv's lock as a wheel entry: its URL, or its path (absolute, to read it now) with the
    text the user wrote (what the manifest records)."""
    location = str(archive.get("url") or archive.get("path") or "")
    if not location.split("#", 1)[0].endswith(".whl"):
        raise ResolutionError(f"{name}: {mask_text(location)} is not a wheel",
                              hint="a direct reference must name a wheel file; sdists are built only with --build")
    entry = dict(archive)
    if archive.get("url"):
        entry["direct_url"] = strip_credentials(str(archive["url"]))
    else:
        absolute = os.path.realpath(base / str(archive["path"]))
        entry["path"] = absolute
        entry["local_path"] = local.get(absolute) or absolute
    return entry


def uv_warnings(stderr: str) -> list[str]:
    """The warnings of uv's output worth repeating (a yanked release chosen because it is pinned with ==)."""
    return [mask_text(line.split(":", 1)[1].strip()) for line in stderr.splitlines()
            if line.startswith("warning:") and "yanked" in line]


def _resolved(chosen: Sequence[tuple[str, str, Mapping[str, Any]]], metas: Sequence[LockFacts],
              requested: Mapping[str, tuple[str, ...]]) -> list[Resolved]:
    out_list = []
    for (name, version, wheel), facts in zip(chosen, metas, strict=True):
        location = str(wheel.get("url") or wheel.get("path"))
        filename = urllib.parse.unquote(location.rsplit("/", 1)[-1].split("#", 1)[0])
        sha = (wheel.get("hashes") or {}).get("sha256")
        if not sha:
            raise ResolutionError(f"{filename}: the index gave no sha256", hint="use an index that publishes hashes")
        out_list.append(Resolved(name=name, version=version, filename=filename, sha256=sha, source_url=location,
                                 requires_dist=facts.requires_dist, requested=name in requested,
                                 size=wheel.get("size"), facts=facts, direct_url=wheel.get("direct_url"),
                                 local_path=wheel.get("local_path")))
    return out_list


def _uv_error(stderr: str) -> str:
    lines = [ln.strip() for ln in mask_text(stderr).splitlines() if ln.strip() and not ln.startswith("warning")]
    for line in lines:
        if line.startswith(("×", "error:")):
            return line.lstrip("× ").removeprefix("error: ")
    return lines[0] if lines else "no output"
