"""The frozen manifest (``metadata/dependencies.json``): load, validate, write.

The loader is strict on purpose: the manifest is the single source of truth for what gets installed, so a
typo must stop everything with a message naming the exact JSON path (``packages[7].files[0].sha256``), the
bad value and what was expected. Every field is documented in docs/manifest.md.

This module is pure: no subprocess, no network, no terminal.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from immutable_installer.core.errors import BlacklistedPin, ManifestError
from immutable_installer.core.names import VARIANT_NAMES, canonical, is_variant_name, pattern_matches
from immutable_installer.core.startup import startup_name
from immutable_installer.core.urls import credentials_in, mask_url

SCHEMA_VERSION = 2  # 2: a package may have a different entry (version, dependencies) per platform
READABLE_SCHEMA_VERSIONS = (1, 2)
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
EXCLUDE_NEWER_RE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# the manifest's own name: a plain label (it names bundles and shows in scripts' messages)
NAME_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*( [A-Za-z0-9._+-]+)*")
# platform, group and index names: keys that may become parts of file names
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EXTRA_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 685 extra names
URL_UNSAFE_RE = re.compile(r"[\s'\"`\\<>{}|^$]")
CUDA_MODES = ("auto", "required", "optional", "forbidden")
BLOCK_MODES = ("absent", "stub")
IMPLEMENTATIONS = {"cpython": "CPython", "pypy": "PyPy"}
PLATFORM_ENV_KEYS = ("os_name", "sys_platform", "platform_system", "platform_machine")


# --------------------------------------------------------------------------------------------- data model
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


@functools.lru_cache(maxsize=8192)
def parse_requirement(text: str) -> Requirement:
    """Parsed once: validation, lock, scan and verify evaluate the same few thousand strings many times."""
    return Requirement(text)


@functools.lru_cache(maxsize=1024)
def parse_marker(text: str) -> Marker:
    return Marker(text)


@functools.lru_cache(maxsize=65536)
def marker_holds(marker: str, env_items: tuple[tuple[str, str], ...]) -> bool:
    """A marker's value in an environment (cached: the same pairs recur for every variant)."""
    return parse_marker(marker).evaluate(dict(env_items))


# ------------------------------------------------------------------------------------------- the reader
class ManifestReader:
    """Typed access to a JSON tree that names the exact path of any bad value."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def fail(self, path: str, message: str, hint: str | None = None) -> ManifestError:
        return ManifestError(path, message, file=self.file, hint=hint)

    def obj(self, value: Any, path: str, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_kind(value)}")
        required = list(required)
        allowed = set(required) | set(optional)
        missing = [key for key in required if key not in value]
        if len(missing) == 1:
            raise self.fail(_join(path, missing[0]), "required field is missing")
        if missing:  # every one at once: a hand-written file is fixed in one go, not one field per try
            raise self.fail(path, f"{len(missing)} required fields are missing: {', '.join(missing)}")
        for key in value:
            if key not in allowed:
                raise self.fail(_join(path, key), f"unknown field (allowed: {', '.join(sorted(allowed))})")
        return value

    def string(self, value: Any, path: str, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)} {_show(value)}")
        if not empty and not value.strip():
            raise self.fail(path, "expected a non-empty string")
        bad = CONTROL_RE.search(value)
        if bad:  # a newline starts a new line of a generated script; an escape sequence rewrites the terminal
            raise self.fail(path, f"holds a control character ({bad.group()!r}) at offset {bad.start()}",
                            hint="manifest strings are single lines of printable text")
        return value

    def label(self, value: Any, path: str, what: str, pattern: re.Pattern[str]) -> str:
        """A string that ends up in file names, scripts or other files: only the characters ``pattern`` allows."""
        text = self.string(value, path)
        if not pattern.fullmatch(text):
            raise self.fail(path, f"{text[:80]!r} is not {what}")
        return text

    def url(self, value: Any, path: str, schemes: tuple[str, ...]) -> str:
        """A URL with one of ``schemes`` and nothing a shell or a file format would read as syntax."""
        text = self.string(value, path)
        if not text.startswith(schemes):
            raise self.fail(path, f"{text[:80]!r} is not an {'/'.join(s.rstrip(':/') for s in schemes)} URL")
        if credentials_in(text):
            raise self.fail(path, f"{mask_url(text)[:80]!r} holds credentials, which never belong in a file",
                            hint="remove them; they are read at run time from ~/.netrc, IMMUTABLE_INSTALLER_INDEX_"
                                 "<NAME>_USERNAME / _PASSWORD, or keyring (docs/security.md)")
        bad = URL_UNSAFE_RE.search(text)
        if bad:
            raise self.fail(path, f"{text[:80]!r} holds {bad.group()!r}, which a URL carries percent-encoded",
                            hint="percent-encode it (a space is %20, a quote %27)")
        return text

    def opt_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)} {_show(value)}")
        return value

    def integer(self, value: Any, path: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)} {_show(value)}")
        if value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {value}")
        return value

    def array(self, value: Any, path: str, *, nonempty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {_kind(value)}")
        if nonempty and not value:
            raise self.fail(path, "expected a non-empty array")
        return value

    def strings(self, value: Any, path: str, *, nonempty: bool = False, unique: bool = True) -> tuple[str, ...]:
        items = self.array(value, path, nonempty=nonempty)
        out = tuple(self.string(v, f"{path}[{i}]") for i, v in enumerate(items))
        if not unique:
            return out
        seen: set[str] = set()
        for i, v in enumerate(out):
            if v in seen:
                raise self.fail(f"{path}[{i}]", f"duplicate entry {v!r}")
            seen.add(v)
        return out

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str:
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"{text!r} is not one of {', '.join(choices)}")
        return text


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else ""
    return f"({text[:60]})" if text else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ------------------------------------------------------------------------------------------------ parse
def load_manifest(path: str | Path) -> Manifest:
    """Read, parse and fully validate a manifest file."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ManifestError("", "file not found", file=file,
                            hint="create it with `immutable-installer lock`, or pass --manifest") from None
    except OSError as exc:
        raise ManifestError("", f"cannot read: {exc.strerror}", file=file) from None
    return parse_manifest(raw, file=file)


def parse_manifest(raw: bytes, file: str | None = None) -> Manifest:
    """Parse manifest bytes; every problem raises ManifestError naming its JSON path."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError("", f"not UTF-8 (bad byte at offset {exc.start})", file=file) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError("", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                            file=file) from None
    except RecursionError:
        raise ManifestError("", "invalid JSON: nested too deeply", file=file) from None
    manifest = manifest_from_data(data, file=file)
    object.__setattr__(manifest, "raw_sha256", hashlib.sha256(raw).hexdigest())
    object.__setattr__(manifest, "raw", raw)
    return manifest


def manifest_from_data(data: Any, file: str | None = None) -> Manifest:
    """Build and validate a Manifest from decoded JSON."""
    r = ManifestReader(file)
    top = r.obj(
        data, "",
        required=("schema_version", "name", "python", "platforms", "indexes", "default_index", "variants",
                  "default_variant", "groups", "packages"),
        optional=("blacklist", "verify", "shims", "build", "generated_by", "lock", "held_back"),
    )
    if "schema_version" in top:
        version = top["schema_version"]
        if isinstance(version, bool) or not isinstance(version, int):
            raise r.fail("schema_version", f"expected an integer, got {_kind(version)} {_show(version)}")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise r.fail("schema_version", f"unsupported schema version {version} (this tool reads "
                                           f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))})",
                         hint="upgrade immutable-installer, or re-lock with this version")

    name = r.label(top["name"], "name", "a plain label (letters, digits, . _ + - and single spaces, at most 100)",
                   NAME_LABEL_RE)
    if len(name) > 100:
        raise r.fail("name", f"is {len(name)} characters long (at most 100)")
    py = r.obj(top["python"], "python", required=("version",), optional=("implementation",))
    py_version = r.string(py["version"], "python.version")
    if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,2})?", py_version):
        raise r.fail("python.version", f"{py_version!r} is not a python version like 3.11")
    impl = r.choice(py.get("implementation", "cpython"), "python.implementation", tuple(IMPLEMENTATIONS))
    python = PythonTarget(py_version, impl)

    platforms = _parse_platforms(r, top["platforms"])
    indexes = _parse_indexes(r, top["indexes"])
    index_names = {i.name for i in indexes}
    default_index = r.string(top["default_index"], "default_index")
    if default_index not in index_names:
        raise r.fail("default_index", f"{default_index!r} is not a declared index ({', '.join(sorted(index_names))})")
    variants = _parse_variants(r, top["variants"], index_names)
    variant_names = [v.name for v in variants]
    default_variant = r.string(top["default_variant"], "default_variant")
    if default_variant not in variant_names:
        raise r.fail("default_variant", f"{default_variant!r} is not a declared variant ({', '.join(variant_names)})")
    groups = r.strings(top["groups"], "groups", nonempty=True)
    for i, group in enumerate(groups):
        r.label(group, f"groups[{i}]", "a group name (letters, digits, . _ -)", KEY_RE)
    blacklist = _parse_blacklist(r, top.get("blacklist", []))
    packages = _parse_packages(r, top["packages"], groups, index_names, variant_names, {p.name for p in platforms})
    verify = _parse_verify(r, top.get("verify", {}))
    shims = _parse_shims(r, top.get("shims", {}))
    # "build": {"clear_pycache": ...} of manifests before 0.2.0 had no effect: accepted, ignored, not written
    r.obj(top.get("build", {}), "build", required=(), optional=("clear_pycache",))
    lock = parse_lock_settings(top.get("lock", {}), "lock", file)
    held_back = _parse_held_back(r, top.get("held_back", []))

    manifest = Manifest(
        name=name, python=python, platforms=platforms, indexes=indexes, default_index=default_index,
        variants=variants, default_variant=default_variant, groups=groups, blacklist=blacklist,
        packages=packages, verify=verify, shims=shims, lock=lock, held_back=held_back,
    )
    validate_semantics(manifest, file=file)
    return manifest


def _parse_held_back(r: ManifestReader, value: Any) -> tuple[HeldBackNote, ...]:
    out = []
    for i, item in enumerate(r.array(value, "held_back")):
        path = f"held_back[{i}]"
        obj = r.obj(item, path, required=("package", "pinned", "newest", "reason"), optional=("hint",))
        out.append(HeldBackNote(r.string(obj["package"], f"{path}.package"), r.string(obj["pinned"], f"{path}.pinned"),
                                r.string(obj["newest"], f"{path}.newest"), r.string(obj["reason"], f"{path}.reason"),
                                r.string(obj.get("hint", ""), f"{path}.hint", empty=True)))
    return tuple(out)


def parse_lock_settings(value: Any, path: str, file: str | None = None) -> LockSettings:
    """The ``lock`` object (also the lock's command-line flags, checked the same way: ``path`` names them)."""
    r = ManifestReader(file)
    obj = r.obj(value, path, required=(), optional=("prerelease", "exclude_newer"))
    prerelease = None if obj.get("prerelease") is None else r.choice(obj["prerelease"], f"{path}.prerelease",
                                                                     PRERELEASE_MODES)
    cutoff = r.opt_string(obj.get("exclude_newer"), f"{path}.exclude_newer")
    if cutoff is not None and not EXCLUDE_NEWER_RE.fullmatch(cutoff):
        raise r.fail(f"{path}.exclude_newer", f"{cutoff!r} is not a date like 2026-06-01 or 2026-06-01T00:00:00Z")
    return LockSettings(prerelease, cutoff)


def _parse_platforms(r: ManifestReader, value: Any) -> tuple[Platform, ...]:
    out = []
    seen: set[str] = set()
    for i, item in enumerate(r.array(value, "platforms", nonempty=True)):
        path = f"platforms[{i}]"
        obj = r.obj(item, path, required=("name", "tags", "environment"))
        name = r.label(obj["name"], f"{path}.name", "a platform name (letters, digits, . _ -)", KEY_RE)
        if name in seen:
            raise r.fail(f"{path}.name", f"duplicate platform {name!r}")
        seen.add(name)
        tags = r.strings(obj["tags"], f"{path}.tags", nonempty=True)
        env = r.obj(obj["environment"], f"{path}.environment", required=PLATFORM_ENV_KEYS)
        environment = {k: r.string(env[k], f"{path}.environment.{k}") for k in PLATFORM_ENV_KEYS}
        out.append(Platform(name, tags, environment))
    return tuple(out)


def _parse_indexes(r: ManifestReader, value: Any) -> tuple[Index, ...]:
    obj = r.obj(value, "indexes", required=(), optional=value.keys() if isinstance(value, dict) else ())
    if not obj:
        raise r.fail("indexes", "expected at least one index")
    out = []
    for key in sorted(obj):
        r.label(key, f"indexes.{key}", "an index name (letters, digits, . _ -)", KEY_RE)
        url = r.url(obj[key], f"indexes.{key}", ("https://", "http://", "file://"))
        out.append(Index(key, url.rstrip("/")))
    return tuple(out)


def _parse_variants(r: ManifestReader, value: Any, index_names: set[str]) -> tuple[Variant, ...]:
    obj = r.obj(value, "variants", required=(), optional=value.keys() if isinstance(value, dict) else ())
    if not obj:
        raise r.fail("variants", "expected at least one variant (e.g. cpu)")
    out = []
    for key in sorted(obj):
        path = f"variants.{key}"
        if not is_variant_name(key):
            raise r.fail(path, f"{key!r} is not a variant name ({VARIANT_NAMES})")
        v = r.obj(obj[key], path, required=("index", "torch_packages"),
                  optional=("cuda", "min_driver", "min_compute_capability"))
        index = r.string(v["index"], f"{path}.index")
        if index not in index_names:
            raise r.fail(f"{path}.index", f"{index!r} is not a declared index ({', '.join(sorted(index_names))})")
        torch_packages = r.strings(v["torch_packages"], f"{path}.torch_packages")
        for j, n in enumerate(torch_packages):
            if canonical(n) != n:
                raise r.fail(f"{path}.torch_packages[{j}]", f"{n!r} is not canonical (expected {canonical(n)!r})")
        cuda = r.opt_string(v.get("cuda"), f"{path}.cuda")
        if cuda is not None and not re.fullmatch(r"\d+\.\d+", cuda):
            raise r.fail(f"{path}.cuda", f"{cuda!r} is not a CUDA version like 12.4")
        if (cuda is None) != (key == "cpu" or key.startswith("rocm")):
            raise r.fail(f"{path}.cuda", "a cu* variant needs its CUDA version, cpu has none")
        min_driver = r.opt_string(v.get("min_driver"), f"{path}.min_driver")
        if min_driver is not None and not re.fullmatch(r"\d+(\.\d+){0,2}", min_driver):
            raise r.fail(f"{path}.min_driver", f"{min_driver!r} is not a driver version like 550.54")
        min_cc = r.opt_string(v.get("min_compute_capability"), f"{path}.min_compute_capability")
        if min_cc is not None and not re.fullmatch(r"\d+\.\d+", min_cc):
            raise r.fail(f"{path}.min_compute_capability", f"{min_cc!r} is not a compute capability like 7.5")
        out.append(Variant(key, index, torch_packages, cuda, min_driver, min_cc))
    return tuple(out)


def _parse_blacklist(r: ManifestReader, value: Any) -> tuple[BlacklistRule, ...]:
    out = []
    for i, item in enumerate(r.array(value, "blacklist")):
        path = f"blacklist[{i}]"
        obj = r.obj(item, path, required=("name", "reason"), optional=("import_names",))
        pattern = r.string(obj["name"], f"{path}.name")
        if not re.fullmatch(r"[A-Za-z0-9._*?\[\]-]+", pattern):
            raise r.fail(f"{path}.name", f"{pattern!r} is not a distribution name or glob")
        reason = r.string(obj["reason"], f"{path}.reason")
        imports = r.strings(obj.get("import_names", []), f"{path}.import_names")
        for j, mod in enumerate(imports):
            if not mod.isidentifier():
                raise r.fail(f"{path}.import_names[{j}]", f"{mod!r} is not a top-level module name")
        out.append(BlacklistRule(pattern, reason, imports))
    return tuple(out)


def _parse_packages(
    r: ManifestReader, value: Any, groups: tuple[str, ...], index_names: set[str], variant_names: list[str],
    platform_names: set[str],
) -> tuple[Package, ...]:
    out = []
    for i, item in enumerate(r.array(value, "packages")):  # empty: nothing applies to the targets
        path = f"packages[{i}]"
        obj = r.obj(item, path, required=("name", "version", "group", "order", "index", "variants", "files"),
                    optional=("requires_dist", "extras", "marker"))
        name = r.string(obj["name"], f"{path}.name")
        if canonical(name) != name:
            raise r.fail(f"{path}.name", f"{name!r} is not a canonical name (expected {canonical(name)!r})")
        version = r.string(obj["version"], f"{path}.version")
        try:
            Version(version)
        except InvalidVersion:
            raise r.fail(f"{path}.version", f"{version!r} is not an exact version (expected e.g. 2.13.0, "
                                            "not a range)") from None
        group = r.string(obj["group"], f"{path}.group")
        if group not in groups:
            raise r.fail(f"{path}.group", f"{group!r} is not one of the groups ({', '.join(groups)})")
        order = r.integer(obj["order"], f"{path}.order", minimum=0)
        index = None if obj["index"] is None else r.string(obj["index"], f"{path}.index")
        if index is not None and index not in index_names:
            raise r.fail(f"{path}.index", f"{index!r} is not a declared index ({', '.join(sorted(index_names))})")
        variants = r.strings(obj["variants"], f"{path}.variants", nonempty=True)
        for j, v in enumerate(variants):
            if v not in variant_names:
                raise r.fail(f"{path}.variants[{j}]", f"{v!r} is not a declared variant ({', '.join(variant_names)})")
        requires = r.strings(obj.get("requires_dist", []), f"{path}.requires_dist", unique=False)
        for j, req in enumerate(requires):
            try:
                parsed = parse_requirement(req)
                if parsed.marker is not None:
                    parsed.marker.evaluate({"extra": ""})
            except Exception as exc:  # InvalidRequirement, or a marker that cannot be evaluated
                first = str(exc).splitlines()[0]
                raise r.fail(f"{path}.requires_dist[{j}]", f"invalid requirement {req!r}: {first}") from None
        extras = r.strings(obj.get("extras", []), f"{path}.extras")
        for j, extra in enumerate(extras):
            r.label(extra, f"{path}.extras[{j}]", "an extra name (PEP 685)", EXTRA_RE)
        marker = r.opt_string(obj.get("marker"), f"{path}.marker")
        if marker is not None:
            try:
                Marker(marker).evaluate({"extra": ""})
            except Exception as exc:  # InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
                raise r.fail(f"{path}.marker", f"invalid marker {marker!r}: {str(exc).splitlines()[0]}") from None
        files = _parse_files(r, obj["files"], path, name, version, platform_names)
        if index is None and any(f.url is None and f.path is None for f in files):
            raise r.fail(f"{path}.index", "null (not from an index) needs a url or a path for every file")
        out.append(Package(name, version, group, order, index, variants, files, requires, extras, marker))
    return tuple(out)


def _parse_files(
    r: ManifestReader, value: Any, pkg_path: str, name: str, version: str, platform_names: set[str]
) -> tuple[WheelFile, ...]:
    out = []
    claimed: dict[str, int] = {}
    for j, item in enumerate(r.array(value, f"{pkg_path}.files", nonempty=True)):
        path = f"{pkg_path}.files[{j}]"
        obj = r.obj(item, path, required=("filename", "sha256", "platforms"), optional=("size", "url", "path", "build"))
        filename = r.string(obj["filename"], f"{path}.filename")
        try:
            wname, wversion, _build, _tags = parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise r.fail(f"{path}.filename", f"{filename!r} is not a wheel filename ({exc})",
                         hint="only wheels are installed; sdists are never built") from None
        if str(wname) != name or wversion != Version(version):
            raise r.fail(f"{path}.filename", f"{filename!r} is {wname} {wversion}, not {name} {version}")
        sha = r.string(obj["sha256"], f"{path}.sha256")
        if not SHA256_RE.fullmatch(sha):
            raise r.fail(f"{path}.sha256", f"{sha[:80]!r} is not a sha256 (expected 64 lowercase hex characters)")
        size = obj.get("size")
        if size is not None:
            size = r.integer(size, f"{path}.size", minimum=1)
        url = None if obj.get("url") is None else r.url(obj["url"], f"{path}.url", ("https://", "http://"))
        local = None if obj.get("path") is None else r.string(obj["path"], f"{path}.path")
        if local is not None and not local.replace("\\", "/").rsplit("/", 1)[-1] == filename:
            raise r.fail(f"{path}.path", f"{local[:80]!r} does not name the file {filename}")
        built = None if obj.get("build") is None else parse_built_from(r, obj["build"], f"{path}.build")
        plats = r.strings(obj["platforms"], f"{path}.platforms", nonempty=True)
        for k, p in enumerate(plats):
            if p not in platform_names:
                raise r.fail(f"{path}.platforms[{k}]", f"{p!r} is not a declared platform")
            if p in claimed:
                raise r.fail(f"{path}.platforms[{k}]", f"platform {p!r} already has a file (files[{claimed[p]}])")
            claimed[p] = j
        out.append(WheelFile(filename, sha, size, plats, url, local, built))
    return tuple(out)


def parse_built_from(r: ManifestReader, value: Any, path: str) -> BuiltFrom:
    """A wheel's build provenance (the manifest's ``files[].build``, and the built-wheel cache's record)."""
    obj = r.obj(value, path, required=("sdist", "backend", "requires"))
    sdist = r.obj(obj["sdist"], f"{path}.sdist", required=("filename", "sha256"), optional=("url",))
    sha = r.string(sdist["sha256"], f"{path}.sdist.sha256")
    if not SHA256_RE.fullmatch(sha):
        raise r.fail(f"{path}.sdist.sha256", f"{sha[:80]!r} is not a sha256")
    requires = []
    for i, item in enumerate(r.array(obj["requires"], f"{path}.requires")):
        where = f"{path}.requires[{i}]"
        req = r.obj(item, where, required=("filename", "sha256"), optional=("url",))
        req_sha = r.string(req["sha256"], f"{where}.sha256")
        if not SHA256_RE.fullmatch(req_sha):
            raise r.fail(f"{where}.sha256", f"{req_sha[:80]!r} is not a sha256")
        requires.append(BuildRequirement(r.string(req["filename"], f"{where}.filename"), req_sha,
                                         None if req.get("url") is None else r.url(req["url"], f"{where}.url",
                                                                                  ("https://", "http://"))))
    return BuiltFrom(r.string(sdist["filename"], f"{path}.sdist.filename"), sha,
                     None if sdist.get("url") is None else r.url(sdist["url"], f"{path}.sdist.url",
                                                                 ("https://", "http://")),
                     r.string(obj["backend"], f"{path}.backend"), tuple(requires))


def built_from_to_data(built: BuiltFrom) -> dict[str, Any]:
    return {"sdist": {"filename": built.sdist, "sha256": built.sdist_sha256, "url": built.sdist_url},
            "backend": built.backend,
            "requires": [{"filename": r.filename, "sha256": r.sha256, "url": r.url} for r in built.requires]}


def _parse_verify(r: ManifestReader, value: Any) -> VerifySettings:
    obj = r.obj(value, "verify", required=(),
                optional=("cuda", "imports", "gpu_alloc_mb", "model_smoke_test", "allowed_pth", "secondary_imports"))
    defaults = VerifySettings()
    cuda = r.choice(obj.get("cuda", defaults.cuda), "verify.cuda", CUDA_MODES)
    imports = _module_names(r, obj.get("imports", list(defaults.imports)), "verify.imports")
    secondary = _module_names(r, obj.get("secondary_imports", []), "verify.secondary_imports")
    alloc = r.integer(obj.get("gpu_alloc_mb", defaults.gpu_alloc_mb), "verify.gpu_alloc_mb", minimum=0)
    smoke = r.boolean(obj.get("model_smoke_test", defaults.model_smoke_test), "verify.model_smoke_test")
    allowed = r.strings(obj.get("allowed_pth", []), "verify.allowed_pth")
    for i, name in enumerate(allowed):
        if "/" in name or "\\" in name or startup_name(name) != name:
            raise r.fail(f"verify.allowed_pth[{i}]", f"{name!r} is not the name of a start-up file",
                         hint="name it as it lands in site-packages: a .pth or .start file, sitecustomize.py, or "
                              "a sitecustomize/usercustomize package")
    return VerifySettings(cuda, imports, alloc, smoke, tuple(sorted(set(allowed))), secondary)


def _module_names(r: ManifestReader, value: Any, path: str) -> tuple[str, ...]:
    names = r.strings(value, path)
    for i, mod in enumerate(names):
        if not all(part.isidentifier() for part in mod.split(".")):
            raise r.fail(f"{path}[{i}]", f"{mod!r} is not a module name")
    return names


def _parse_shims(r: ManifestReader, value: Any) -> ShimSettings:
    obj = r.obj(value, "shims", required=(),
                optional=("blocked_modules", "transformers_patcher", "model_cache", "local_files_only"))
    blocked = []
    seen: set[str] = set()
    for i, item in enumerate(r.array(obj.get("blocked_modules", []), "shims.blocked_modules")):
        path = f"shims.blocked_modules[{i}]"
        b = r.obj(item, path, required=("name",), optional=("mode", "reason"))
        name = r.string(b["name"], f"{path}.name")
        if not name.isidentifier():
            raise r.fail(f"{path}.name", f"{name!r} is not a top-level module name")
        if name in seen:
            raise r.fail(f"{path}.name", f"module {name!r} is listed twice")
        seen.add(name)
        mode = r.choice(b.get("mode", "absent"), f"{path}.mode", BLOCK_MODES)
        reason = r.string(b.get("reason", ""), f"{path}.reason", empty=True)
        blocked.append(BlockedModule(name, mode, reason))
    patcher = r.boolean(obj.get("transformers_patcher", True), "shims.transformers_patcher")
    cache = r.opt_string(obj.get("model_cache"), "shims.model_cache")
    local_only = r.boolean(obj.get("local_files_only", False), "shims.local_files_only")
    return ShimSettings(tuple(blocked), patcher, cache, local_only)


# ------------------------------------------------------------------------------------ semantic checks
def validate_semantics(manifest: Manifest, file: str | None = None) -> None:
    """Checks across fields: uniqueness, blacklist, order, closure, per-platform files, shim modes."""
    r = ManifestReader(file)
    pos = {id(p): i for i, p in enumerate(manifest.packages)}
    group_pos = {g: i for i, g in enumerate(manifest.groups)}

    for variant in manifest.variants:  # one entry per name on each platform (entries may differ per platform)
        for platform in manifest.platforms:
            seen: dict[str, int] = {}
            for i, pkg in enumerate(manifest.packages):
                if variant.name in pkg.variants and pkg.file_for(platform.name) is not None:
                    if pkg.name in seen:
                        raise r.fail(f"packages[{i}].name", f"{pkg.name!r} is pinned twice for variant "
                                                            f"{variant.name!r} on {platform.name!r} (also "
                                                            f"packages[{seen[pkg.name]}])")
                    seen[pkg.name] = i

    for i, pkg in enumerate(manifest.packages):
        rule = manifest.blacklist_rule_for(pkg.name)
        if rule is not None:
            raise BlacklistedPin(f"packages[{i}].name", f"{pkg.name} {pkg.version} (pinned) is blacklisted "
                                 f"(forbidden: {rule.reason})", file=file)
        for platform in manifest.platforms:
            env_items = tuple(sorted(manifest.python.marker_environment(platform).items()))
            if pkg.marker is not None and pkg.file_for(platform.name) is None and marker_holds(pkg.marker, env_items):
                raise r.fail(f"packages[{i}].files", f"no wheel for platform {platform.name!r} although the "
                                                     f"marker {pkg.marker!r} holds there")

    pinned = {p.name for p in manifest.packages}
    for i, mod in enumerate(manifest.shims.blocked_modules):
        if mod.mode == "stub" and mod.name == "triton" and "torch" in pinned:
            raise r.fail(f"shims.blocked_modules[{i}].mode",
                         "'stub' is refused for triton when torch is pinned: a stub makes torch believe triton "
                         "exists and torch.compile / torch._inductor then fail; use 'absent'")

    for variant in manifest.variants:
        for platform in manifest.platforms:
            installed = {p.name: p for p in manifest.packages_for(variant.name, platform.name)}
            env = manifest.python.marker_environment(platform)
            for pkg in installed.values():
                i = pos[id(pkg)]
                for j, dep in applicable_requirements(pkg.requires_dist, pkg.extras, env):
                    where = f"packages[{i}].requires_dist[{j}]"
                    target = installed.get(canonical(dep.name))
                    if target is None:
                        raise r.fail(where, f"{pkg.name} {pkg.version} requires {dep} but {canonical(dep.name)!r} "
                                            f"is not pinned for variant {variant.name!r} on {platform.name!r} "
                                            "(the set is not closed)", hint="re-lock to add the missing package")
                    if not dep.specifier.contains(target.version, prereleases=True):
                        raise r.fail(where, f"{pkg.name} {pkg.version} requires {dep} but {target.name} "
                                            f"{target.version} is pinned")
                    missing = {canonical(e) for e in dep.extras} - {canonical(e) for e in target.extras}
                    if missing:
                        raise r.fail(where, f"{pkg.name} requires {dep} but {target.name} is pinned without "
                                            f"extras {sorted(missing)}")
                    mine = (group_pos[pkg.group], pkg.order)
                    theirs = (group_pos[target.group], target.order)
                    if theirs > mine and not _depends_on(target, pkg.name, installed, env):
                        raise r.fail(f"packages[{i}].order",
                                     f"{pkg.name} (group {pkg.group!r}, order {pkg.order}) comes before its "
                                     f"dependency {target.name} (group {target.group!r}, order {target.order})")


def applicable_requirements(requires: Iterable[str], extras: Iterable[str],
                            env: Mapping[str, str]) -> list[tuple[int, Requirement]]:
    """(index, requirement) of the ``Requires-Dist`` entries that apply in ``env`` with the requested extras.

    The one filter shared by validation, lock, the scanner and the verifier; parsing and marker evaluation are
    cached, since the same few thousand strings are evaluated for every variant and platform.
    """
    base = tuple(sorted((k, v) for k, v in env.items() if k != "extra"))
    wanted = ("", *sorted(extras))
    out = []
    for j, text in enumerate(requires):
        req = parse_requirement(text)
        if req.marker is None or any(marker_holds(str(req.marker), (*base, ("extra", e))) for e in wanted):
            out.append((j, req))
    return out


def active_requirements(pkg: Package, env: Mapping[str, str]) -> list[Requirement]:
    """The requirements of a pinned package that apply in ``env``."""
    return [req for _, req in applicable_requirements(pkg.requires_dist, pkg.extras, env)]


def _depends_on(start: Package, name: str, installed: Mapping[str, Package], env: Mapping[str, str]) -> bool:
    """Whether ``start`` (transitively) requires ``name``: a cycle makes a strict order impossible."""
    stack, seen = [start], {start.name}
    while stack:
        for req in active_requirements(stack.pop(), env):
            dep = canonical(req.name)
            if dep == name:
                return True
            if dep in installed and dep not in seen:
                seen.add(dep)
                stack.append(installed[dep])
    return False


# ---------------------------------------------------------------------------------------------- write
def manifest_to_data(manifest: Manifest) -> dict[str, Any]:
    """The JSON tree of a manifest, in canonical order."""
    group_pos = {g: i for i, g in enumerate(manifest.groups)}
    packages = sorted(manifest.packages, key=lambda p: (group_pos[p.group], p.order, p.name, p.variants))
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": manifest.name,
        "python": {"version": manifest.python.version, "implementation": manifest.python.implementation},
        "platforms": [{"name": p.name, "tags": list(p.tags), "environment": dict(sorted(p.environment.items()))}
                      for p in manifest.platforms],
        "indexes": {i.name: i.url for i in manifest.indexes},
        "default_index": manifest.default_index,
        "variants": {
            v.name: {"index": v.index, "torch_packages": list(v.torch_packages), "cuda": v.cuda,
                     "min_driver": v.min_driver,
                     # written only when known: manifests of CPU-only stacks keep their bytes
                     **({"min_compute_capability": v.min_compute_capability} if v.min_compute_capability else {})}
            for v in manifest.variants
        },
        "default_variant": manifest.default_variant,
        "groups": list(manifest.groups),
        "blacklist": [{"name": b.pattern, "reason": b.reason, "import_names": list(b.import_names)}
                      for b in manifest.blacklist],
        "packages": [
            {
                "name": p.name, "version": p.version, "group": p.group, "order": p.order, "index": p.index,
                "variants": sorted(p.variants), "marker": p.marker, "extras": sorted(p.extras),
                "requires_dist": list(p.requires_dist),
                "files": [{"filename": f.filename, "sha256": f.sha256, "size": f.size, "url": f.url,
                           "platforms": sorted(f.platforms),
                           # written only when set: other manifests keep their bytes
                           **({"path": f.path} if f.path is not None else {}),
                           **({"build": built_from_to_data(f.build)} if f.build is not None else {})}
                          for f in sorted(p.files, key=lambda f: f.filename)],
            }
            for p in packages
        ],
        "verify": {"cuda": manifest.verify.cuda, "imports": list(manifest.verify.imports),
                   "gpu_alloc_mb": manifest.verify.gpu_alloc_mb,
                   "model_smoke_test": manifest.verify.model_smoke_test,
                   **({"allowed_pth": list(manifest.verify.allowed_pth)} if manifest.verify.allowed_pth else {}),
                   **({"secondary_imports": list(manifest.verify.secondary_imports)}
                      if manifest.verify.secondary_imports else {})},
        "shims": {
            "blocked_modules": [{"name": b.name, "mode": b.mode, "reason": b.reason}
                                for b in manifest.shims.blocked_modules],
            "transformers_patcher": manifest.shims.transformers_patcher,
            "model_cache": manifest.shims.model_cache,
            "local_files_only": manifest.shims.local_files_only,
        },
    }
    if manifest.held_back:  # written only when set: other manifests keep their bytes
        data["held_back"] = [{"package": h.package, "pinned": h.pinned, "newest": h.newest, "reason": h.reason,
                              **({"hint": h.hint} if h.hint else {})} for h in manifest.held_back]
    if not manifest.lock.empty:  # written only when set: other manifests keep their bytes
        data["lock"] = {k: v for k, v in (("prerelease", manifest.lock.prerelease),
                                          ("exclude_newer", manifest.lock.exclude_newer)) if v is not None}
    return data


def dump_manifest(manifest: Manifest) -> bytes:
    """Deterministic bytes: sorted keys, two-space indent, trailing newline, no timestamps."""
    text = json.dumps(manifest_to_data(manifest), indent=2, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def write_manifest(manifest: Manifest, path: str | Path) -> bytes:
    """Validate, then write atomically (temp file + rename); returns the bytes written."""
    raw = dump_manifest(manifest)
    parse_manifest(raw, file=str(path))  # never write something we would refuse to read
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(raw)
    tmp.replace(target)
    return raw
