"""``lock --build NAME``: the sdists the resolution needs, built once into wheels uv then resolves from.

uv itself never builds anything here (it resolves with ``--only-binary :all:``, so it never runs an sdist's
code). When the resolver explains that a version it needs has no usable wheel (``antlr4-python3-runtime==4.9.*``
for hydra-core 1.3) and the user allowed NAME, the newest sdist of NAME in that range is downloaded (by the
sha256 the index gives), its build requirements are pinned to wheels by uv, and the wheel is built in the
sandbox (wheelhouse/sdist_build.py); the lock then resolves again with the built wheels as a find-links folder.
Each built wheel is pinned by its own sha256, with its provenance.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import parse_wheel_filename

from immutable_installer.core.errors import SdistBuildError
from immutable_installer.core.events import Message, Reporter, null_reporter
from immutable_installer.core.model import BuildRequirement, BuiltFrom
from immutable_installer.core.spec import ALL, LockSpec, target_platforms
from immutable_installer.core.targets import host_platform_tag
from immutable_installer.core.urls import strip_credentials
from immutable_installer.dists.hashing import sha256_file
from immutable_installer.lock.index_pages import IndexFile, project_files
from immutable_installer.wheelhouse.built import BuiltWheel, BuiltWheels
from immutable_installer.wheelhouse.sdist_build import SdistBuilder, read_build_system

BUILD_PASSES = 4  # a built wheel may reveal one more sdist-only dependency; give up after this many rounds


@dataclass(frozen=True)
class Sources:
    """Where packages come from in this lock: index, extra indexes, find-links folders."""

    index_url: str | None
    extra_index_urls: tuple[str, ...]
    find_links: tuple[str, ...]
    no_index: bool

    @property
    def indexes(self) -> list[str]:
        return [u for u in (self.index_url, *self.extra_index_urls) if u and not self.no_index] + (
            list(self.extra_index_urls) if self.no_index else [])


def allowed(spec: LockSpec, name: str) -> bool:
    return ALL in spec.build or name in spec.build


class LockBuilds:
    """The wheels built during one lock, in a folder uv resolves from (``options``)."""

    def __init__(self, spec: LockSpec, python: Callable[[], str], reporter: Reporter = null_reporter,
                 cache: BuiltWheels | None = None) -> None:
        """``python``: finds the target's interpreter (needed only once something is built)."""
        self.spec = spec
        self.python = python
        self.report = reporter
        self.cache = cache or BuiltWheels()
        self.folder = Path(tempfile.mkdtemp(prefix="immutable-built-"))
        self.built: dict[str, BuiltWheel] = {}  # wheel sha256 -> the built wheel

    def find_links(self) -> list[str]:
        """The folder of the wheels built so far, as a find-links folder (none before the first build)."""
        return [str(self.folder)] if self.built else []

    def provenance(self) -> dict[str, BuiltFrom]:
        return {sha: wheel.provenance for sha, wheel in self.built.items()}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def build(self, wanted: Sequence[tuple[str, str]], sources: Sources) -> None:
        """Build the newest sdist of each ``(name, specifier)`` (or take what an earlier lock built from it)."""
        for name, spec in wanted:
            sdist = self._choose(name, spec, sources)
            done = self.cache.for_sdist(str(sdist.sha256))
            if done is None:
                done = self._build(sdist, sources)
                self.report(Message("warn", f"built {done.path.name} from {sdist.filename} (its code ran in the "
                                            "build sandbox, because --build allows it)"))
            else:
                self.report(Message("info", f"{sdist.filename}: its wheel was built before "
                                            f"({done.path.name}, sha256 {done.sha256[:16]}...)"))
            self._check_portable(done)
            shutil.copyfile(done.path, self.folder / done.path.name)
            self.built[done.sha256] = done

    def _choose(self, name: str, spec: str, sources: Sources) -> IndexFile:
        try:
            wanted = SpecifierSet(spec)
        except InvalidSpecifier:
            wanted = SpecifierSet()
        files = project_files(name, sources.indexes, sources.find_links)
        sdists = [f for f in files if not f.is_wheel and not f.yanked and f.version is not None
                  and wanted.contains(f.version, prereleases=True)]
        if not sdists:
            raise SdistBuildError(f"--build {name}: no sdist of {name}{spec} on the indexes",
                                  hint="check the name and the index, or pin a version that publishes one")
        best = max(sdists, key=lambda f: (f.version, f.filename.endswith(".tar.gz")))
        if not best.sha256 and not best.url.startswith(("http://", "https://")):  # a find-links folder's file
            best = replace(best, sha256=sha256_file(best.url.removeprefix("file://")))
        if not best.sha256:
            raise SdistBuildError(f"{best.filename}: the index gives no sha256 for it, so it cannot be pinned",
                                  hint="use an index that publishes hashes")
        return best

    def _build(self, sdist: IndexFile, sources: Sources) -> BuiltWheel:
        work = Path(tempfile.mkdtemp(prefix="immutable-build-"))
        try:
            path = work / sdist.filename
            _download(sdist, path)
            system = read_build_system(path)
            self.report(Message("info", f"building {sdist.filename} ({system.backend}; build requirements: "
                                        f"{', '.join(system.requires) or 'none'})"))
            builder = SdistBuilder(work / "build", self.python(), reporter=self.report)
            (work / "build").mkdir()
            requires = self._pin(list(system.requires), sources)
            wheel, used = builder.build(path, requires, system, more=lambda extra: self._pin(extra, sources))
            provenance = BuiltFrom(sdist.filename, str(sdist.sha256), _public(sdist.url), system.backend,
                                    tuple(sorted(used, key=lambda r: r.filename)))
            return self.cache.put(wheel, provenance)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _pin(self, requirements: list[str], sources: Sources) -> list[BuildRequirement]:
        """Build requirements pinned to wheels for the build's interpreter on this machine (by uv)."""
        if not requirements:
            return []
        from immutable_installer.lock.uv_resolver import resolve
        from immutable_installer.runner import Runner

        host = target_platforms([host_platform_tag()])[0]
        pending = resolve(Runner(), self.spec.python.minor, host, requirements, [], sources.index_url,
                          sources.extra_index_urls, sources.find_links, sources.no_index)
        return [BuildRequirement(d.filename, d.sha256, d.source_url) for d in pending.finish()]

    def _check_portable(self, built: BuiltWheel) -> None:
        tags = parse_wheel_filename(built.path.name)[3]
        if not any(t.platform == "any" for t in tags):
            raise SdistBuildError(f"{built.provenance.sdist} built {built.path.name}, a wheel for this machine only: "
                                  "lock --build pins pure-Python builds (a compiled one needs auditwheel to run "
                                  "elsewhere)", hint="pin a version of it that publishes wheels")


def _download(sdist: IndexFile, path: Path) -> None:
    from immutable_installer.net import fetch

    if sdist.url.startswith(("http://", "https://")):
        fetch(sdist.url, path, str(sdist.sha256))
        return
    source = Path(sdist.url.removeprefix("file://"))
    shutil.copyfile(source, path)
    if sha256_file(path) != sdist.sha256:
        raise SdistBuildError(f"{sdist.filename}: sha256 mismatch with the index's")


def _public(url: str) -> str | None:
    """A URL fit for the manifest: http(s) without credentials; a local path is not recorded."""
    return strip_credentials(url) if url.startswith(("http://", "https://")) else None
