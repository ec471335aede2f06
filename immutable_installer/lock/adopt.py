"""Locks people already have become the manifest without a second resolution.

- ``lock --from pylock.toml``: a PEP 751 lock written by uv, pip or PDM (validated by ``packaging.pylock``).
  For each target, its packages whose markers hold are taken as they are, with the wheel the target installs
  (the best match for its tags, as pip ranks them) and the sha256 the lock gives.
- ``lock -r requirements.txt --adopt``: a requirements file that pins everything (every line ``==`` with
  ``--hash``, as ``pip-compile --generate-hashes`` and ``uv pip compile --generate-hashes`` write it). Each file
  is found on the index by its version *and* one of the listed hashes.

Both are ``Resolver``s: everything after resolution (facts, blacklist, closure, groups) is the same as for uv.
What neither file says (which packages the user asked for) is read from the graph: the packages nothing else
requires. A lock that does not pin everything its packages require is refused by the manifest's closure check.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from immutable_installer.core.errors import ResolutionError, SpecError
from immutable_installer.core.names import canonical
from immutable_installer.core.spec import as_requirement, is_wheel_path
from immutable_installer.core.urls import mask_text, strip_credentials
from immutable_installer.dists.hashing import sha256_file
from immutable_installer.lock.index_pages import project_files
from immutable_installer.lock.resolved import Pending, Resolved, ResolveRequest
from immutable_installer.lock.uv_resolver import best_wheel, target_tags
from immutable_installer.lock.wheel_facts import LockFacts, cached_facts

Chosen = tuple[str, str, dict[str, Any]]  # (name, version, pylock-style wheel entry)


def _environment(request: ResolveRequest) -> dict[str, str]:
    from immutable_installer.core.model import PythonTarget

    return PythonTarget(request.python_version, request.implementation).marker_environment(request.platform)


def _finish(chosen: list[Chosen], pool: Executor | None) -> Pending:
    """Read every chosen wheel's facts; the requested packages are the roots of the graph."""
    own = pool is None
    executor = pool or ThreadPoolExecutor(max_workers=16)
    futures = [executor.submit(cached_facts, wheel, name) for name, _, wheel in chosen]

    def finish() -> list[Resolved]:
        try:
            facts: list[LockFacts] = [f.result() for f in futures]
        finally:
            if own:
                executor.shutdown()
        required = {canonical(as_requirement(r).name) for f in facts for r in f.requires_dist}
        out = []
        for (name, version, wheel), fact in zip(chosen, facts, strict=True):
            location = str(wheel.get("url") or wheel.get("path"))
            filename = urllib.parse.unquote(location.rsplit("/", 1)[-1].split("#", 1)[0])
            out.append(Resolved(name=name, version=version, filename=filename, sha256=wheel["hashes"]["sha256"],
                                source_url=location, requires_dist=fact.requires_dist, requested=name not in required,
                                size=wheel.get("size"), facts=fact, direct_url=wheel.get("direct_url"),
                                local_path=wheel.get("local_path"), public_url=wheel.get("public_url")))
        return out

    return Pending([(name, version) for name, version, _ in chosen], finish)


class PylockResolver:
    """``Resolver`` that adopts a PEP 751 lock file."""

    name = "pylock"

    def __init__(self, path: Path) -> None:
        import sys

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        from packaging.pylock import Pylock, PylockValidationError

        self.path = path
        try:
            self.data = tomllib.loads(path.read_text(encoding="utf-8"))
            Pylock.from_dict(self.data)
        except OSError as exc:
            raise SpecError("", f"cannot read: {exc.strerror}", file=str(path)) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError("", f"not a TOML file: {exc}", file=str(path)) from None
        except PylockValidationError as exc:
            raise SpecError("", f"not a valid PEP 751 lock: {exc}", file=str(path)) from None

    def requirements(self) -> list[str]:
        """Every package it pins, as ``name==version`` (for the spec: its extras and markers come from the lock)."""
        return sorted({f"{canonical(p['name'])}=={p['version']}" for p in self.data.get("packages", [])
                       if p.get("version")})

    def resolve(self, request: ResolveRequest, pool: Executor | None = None) -> Pending:
        env = _environment(request)
        tags = target_tags(request.python_version, request.platform)
        chosen: list[Chosen] = []
        base = self.path.parent
        for i, package in enumerate(self.data.get("packages", [])):
            where = f"packages[{i}] ({package.get('name')})"
            marker = package.get("marker")
            try:
                if marker and not Marker(marker).evaluate({**env, "extras": "", "dependency_groups": ""}):
                    continue
            except InvalidMarker as exc:
                raise SpecError(where, f"invalid marker {marker!r}: {exc}", file=str(self.path)) from None
            needs = package.get("requires-python")
            if needs and not SpecifierSet(needs).contains(env["python_full_version"], prereleases=True):
                continue
            name, version = canonical(package["name"]), str(package.get("version") or "")
            wheels = [_located(w, base) for w in package.get("wheels", [])]
            wheel = best_wheel(wheels, tags)
            if wheel is None and package.get("archive") is not None:
                wheel = _direct(package["archive"], base, where, str(self.path))
            if wheel is None:
                what = "an sdist only" if package.get("sdist") else "no wheel for this target"
                raise ResolutionError(f"{self.path}: {where} {version} has {what} ({request.label})",
                                      hint="lock it with uv or pip for this target, or lock from requirements "
                                           "(with --build NAME for an sdist)")
            if not version:
                raise SpecError(where, "has no version", file=str(self.path))
            chosen.append((name, version, dict(wheel)))
        return _finish(chosen, pool)


def _located(wheel: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """A pylock wheel entry: a relative ``path`` is relative to the lock file; the URL is its public place."""
    entry = dict(wheel)
    if entry.get("path") and not entry.get("url"):
        local = os.path.normpath(base / str(entry["path"]))
        entry["path"] = str(Path(local).absolute())
        entry["local_path"] = local
    elif entry.get("url"):
        entry["public_url"] = strip_credentials(str(entry["url"])) if str(entry["url"]).startswith(
            ("http://", "https://")) else None
    return entry


def _direct(archive: Mapping[str, Any], base: Path, where: str, file: str) -> dict[str, Any]:
    location = str(archive.get("url") or archive.get("path") or "")
    if not location.split("#", 1)[0].endswith(".whl"):
        raise SpecError(where, f"{mask_text(location)} is not a wheel", file=file,
                        hint="sdists are built only by lock --build, from requirements")
    entry = _located(archive, base)
    if entry.get("url"):
        entry["direct_url"] = strip_credentials(str(entry["url"]))
        entry.pop("public_url", None)
    return entry


class PinnedResolver:
    """``Resolver`` that adopts a requirements file pinning everything with ``==`` and ``--hash``."""

    name = "adopt"

    def resolve(self, request: ResolveRequest, pool: Executor | None = None) -> Pending:
        env = _environment(request)
        tags = target_tags(request.python_version, request.platform)
        sources = [u for u in (request.index_url, *request.extra_index_urls) if u and not request.no_index]
        chosen: list[Chosen] = []
        for text in request.requirements:
            req = as_requirement(text)
            name = canonical(req.name)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            allowed = set(request.hashes.get(name, ()))
            if not allowed:
                raise SpecError("", f"--adopt: {text!r} has no --hash", hint="adopt a file whose every line is "
                                                                             "pinned with == and --hash")
            if req.url is not None:
                chosen.append((name, "", self._direct(text, req.url, allowed)))
                continue
            exact = [s.version for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
            if len(exact) != 1:
                raise SpecError("", f"--adopt: {text!r} is not pinned with ==",
                                hint="adopt a file whose every line is pinned (pip-compile --generate-hashes)")
            version = exact[0]
            files = [f for f in project_files(name, sources, request.find_links)
                     if f.is_wheel and f.version == Version(version)]
            candidates = []
            for f in files:
                sha = f.sha256 or (sha256_file(f.url) if not f.url.startswith(("http://", "https://")) else None)
                if sha in allowed:
                    public = strip_credentials(f.url) if f.url.startswith(("http://", "https://")) else None
                    candidates.append({"url" if public else "path": f.url, "hashes": {"sha256": sha},
                                       "public_url": public})
            wheel = best_wheel(candidates, tags)
            if wheel is None:
                raise ResolutionError(f"--adopt: {name}=={version} has no wheel for {request.platform.name} with one "
                                      f"of the {len(allowed)} hashes listed ({len(files)} files of that version on "
                                      "the indexes)", hint="the file was compiled for another platform or Python; "
                                                           "lock from its top-level requirements instead")
            chosen.append((name, version, dict(wheel)))
        pending = _finish(chosen, pool)
        finish = pending.finish

        def with_versions() -> list[Resolved]:
            from packaging.utils import parse_wheel_filename

            return [r if r.version else _versioned(r, str(parse_wheel_filename(r.filename)[1])) for r in finish()]

        return Pending([(n, v) for n, v in pending.pins], with_versions)

    @staticmethod
    def _direct(text: str, url: str, allowed: set[str]) -> dict[str, Any]:
        if len(allowed) != 1:
            raise SpecError("", f"--adopt: {text!r} is a direct reference: give exactly one --hash")
        sha = next(iter(allowed))
        if url.startswith("file:"):
            path = urllib.parse.unquote(urllib.parse.urlparse(url).path)
            return {"path": path, "hashes": {"sha256": sha}, "local_path": text if is_wheel_path(text) else path}
        return {"url": url, "hashes": {"sha256": sha}, "direct_url": strip_credentials(url)}


def _versioned(resolved: Resolved, version: str) -> Resolved:
    from dataclasses import replace

    return replace(resolved, version=version)

