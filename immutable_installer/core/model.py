"""The frozen manifest's data model: what `lock` writes and every other command reads (docs/manifest.md).

Frozen dataclasses with the lookups every stage needs; loading and validating them is core/manifest.py, writing
them core/serialize.py. Pure: no subprocess, no network, no terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.requirements import Requirement

from immutable_installer.core.errors import ManifestError
from immutable_installer.core.markers import marker_holds, parse_requirement
from immutable_installer.core.names import pattern_matches

IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy"}
@dataclass(frozen=True)
class PythonTarget:
    """The interpreter the environment is built for."""

    version: str  # "3.11", or "3.11.7" for a lock whose markers need the patch level
    implementation: str = "cpython"

    @property
    def minor(self) -> str:
        """``X.Y``: what picks the interpreter, the wheel tags and the store's entries."""
        return ".".join(self.version.split(".")[:2])

    def marker_environment(self, platform: Platform) -> dict[str, str]:
        """The PEP 508 environment for evaluating markers on ``platform``.

        Like pip's ``--python-version``, a two-part version is taken as ``X.Y.0``.
        """
        parts = self.version.split(".")
        full = self.version if len(parts) >= 3 else f"{self.version}.0"
        env = {
            "python_version": ".".join(parts[:2]),
            "python_full_version": full,
            "implementation_name": self.implementation,
            "implementation_version": full,
            "platform_python_implementation": IMPLEMENTATIONS.get(self.implementation, self.implementation),
            "platform_release": "",
            "platform_version": "",
        }
        env.update(platform.environment)
        return env


@dataclass(frozen=True)
class Platform:
    """A target platform: wheel tags pip may pick and the marker values that hold there."""

    name: str
    tags: tuple[str, ...]
    environment: Mapping[str, str]


@dataclass(frozen=True)
class Index:
    """A named package index (PEP 503 simple API root)."""

    name: str
    url: str


@dataclass(frozen=True)
class Variant:
    """A hardware variant: which index the torch family comes from and what driver it needs."""

    name: str
    index: str
    torch_packages: tuple[str, ...]
    cuda: str | None = None
    min_driver: str | None = None
    min_compute_capability: str | None = None  # the oldest GPU architecture its torch build runs on

    @property
    def is_cuda(self) -> bool:
        return self.cuda is not None


@dataclass(frozen=True)
class BlacklistRule:
    """A forbidden distribution (name or glob) with the reason and the import names it would install."""

    pattern: str
    reason: str
    import_names: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        return pattern_matches(self.pattern, name)


@dataclass(frozen=True)
class BuildRequirement:
    """One pinned wheel of the environment a wheel was built in."""

    filename: str
    sha256: str
    url: str | None = None


@dataclass(frozen=True)
class BuiltFrom:
    """Where a wheel built by ``lock --build`` came from: its sdist, build backend and pinned build requirements.
    A rebuild follows it and must give the pinned bytes (wheelhouse/sdist_build.py)."""

    sdist: str
    sdist_sha256: str
    sdist_url: str | None
    backend: str
    requires: tuple[BuildRequirement, ...] = ()


@dataclass(frozen=True)
class WheelFile:
    """One exact wheel: the identity is filename + sha256; the url is where it is published (a hint, or for a
    direct-URL requirement the source), ``path`` a local wheel as the user named it, ``build`` its provenance
    when the lock built it from an sdist."""

    filename: str
    sha256: str
    size: int | None
    platforms: tuple[str, ...]
    url: str | None = None
    path: str | None = None
    build: BuiltFrom | None = None


@dataclass(frozen=True)
class Package:
    """A pinned distribution."""

    name: str
    version: str
    group: str
    order: int
    index: str | None  # None: not from an index (a direct URL or a local wheel: each file says where)
    variants: tuple[str, ...]
    files: tuple[WheelFile, ...]
    requires_dist: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    marker: str | None = None

    def file_for(self, platform: str) -> WheelFile | None:
        for wheel in self.files:
            if platform in wheel.platforms:
                return wheel
        return None

    def requirements(self) -> list[Requirement]:
        return [parse_requirement(r) for r in self.requires_dist]


@dataclass(frozen=True)
class VerifySettings:
    """What `verify` checks beyond the package set."""

    cuda: str = "auto"
    imports: tuple[str, ...] = ("torch", "transformers")
    gpu_alloc_mb: int = 64
    model_smoke_test: bool = True
    allowed_pth: tuple[str, ...] = ()  # .pth files allowed to run code at start-up (e.g. distutils-precedence.pth)
    secondary_imports: tuple[str, ...] = ()  # imported too; one that fails is a warning (it may need an extra)


@dataclass(frozen=True)
class BlockedModule:
    """A module the import blocker keeps out of every environment."""

    name: str
    mode: str = "absent"
    reason: str = ""


@dataclass(frozen=True)
class ShimSettings:
    """Runtime shims shipped into every environment."""

    blocked_modules: tuple[BlockedModule, ...] = ()
    transformers_patcher: bool = True
    model_cache: str | None = None
    local_files_only: bool = False


PRERELEASE_MODES = ("disallow", "allow", "if-necessary", "explicit", "if-necessary-or-explicit")  # uv's


@dataclass(frozen=True)
class LockSettings:
    """Resolver settings the lock was made with, so that a re-lock reproduces it (``lock`` reads them back)."""

    prerelease: str | None = None  # one of PRERELEASE_MODES; None: the resolver's default
    exclude_newer: str | None = None  # an RFC 3339 date or timestamp: files uploaded later are ignored

    @property
    def empty(self) -> bool:
        return self.prerelease is None and self.exclude_newer is None


@dataclass(frozen=True)
class HeldBackNote:
    """A requested package the lock pinned below its newest release (it said so, with why): kept so that an
    environment that then fails can name it, and the option that moves it."""

    package: str
    pinned: str
    newest: str
    reason: str
    hint: str = ""

    def describe(self) -> str:
        return f"the lock held back {self.package} at {self.pinned} (newest {self.newest}): {self.reason}" + (
            f"; {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Manifest:
    """The frozen manifest. ``raw_sha256`` is the hash of the bytes it was loaded from (receipts use it)."""

    name: str
    python: PythonTarget
    platforms: tuple[Platform, ...]
    indexes: tuple[Index, ...]
    default_index: str
    variants: tuple[Variant, ...]
    default_variant: str
    groups: tuple[str, ...]
    blacklist: tuple[BlacklistRule, ...]
    packages: tuple[Package, ...]
    verify: VerifySettings = field(default_factory=VerifySettings)
    shims: ShimSettings = field(default_factory=ShimSettings)
    lock: LockSettings = field(default_factory=LockSettings)
    held_back: tuple[HeldBackNote, ...] = ()
    raw_sha256: str = ""
    raw: bytes = field(default=b"", repr=False, compare=False)

    # -- lookups
    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ManifestError("variants", f"no variant named {name!r}; the manifest has {self.variant_names()}",
                            hint="pass --variant with one of the names listed")

    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    def platform(self, name: str) -> Platform:
        for p in self.platforms:
            if p.name == name:
                return p
        raise ManifestError("platforms", f"no platform named {name!r}")

    def index(self, name: str) -> Index:
        for i in self.indexes:
            if i.name == name:
                return i
        raise ManifestError("indexes", f"no index named {name!r}")

    def packages_for(self, variant: str, platform: str | None = None) -> list[Package]:
        """Packages of a variant (and platform, markers evaluated) in install order."""
        group_pos = {g: i for i, g in enumerate(self.groups)}
        env_items = (tuple(sorted(self.python.marker_environment(self.platform(platform)).items()))
                     if platform is not None else ())
        chosen = []
        for pkg in self.packages:
            if variant not in pkg.variants:
                continue
            if platform is not None:
                if pkg.file_for(platform) is None:
                    continue
                if pkg.marker and not marker_holds(pkg.marker, env_items):
                    continue
            chosen.append(pkg)
        return sorted(chosen, key=lambda p: (group_pos[p.group], p.order, p.name))

    def blacklist_rule_for(self, name: str) -> BlacklistRule | None:
        for rule in self.blacklist:
            if rule.matches(name):
                return rule
        return None
