"""Loading the frozen manifest (``metadata/dependencies.json``): read, parse, validate.

The loader is strict on purpose: the manifest is the single source of truth for what gets installed, so a
typo must stop everything with a message naming the exact JSON path (``packages[7].files[0].sha256``), the
bad value and what was expected. Every field is documented in docs/manifest.md; the model is core/model.py,
the sections a spec shares core/sections.py, the checks across fields core/validate.py.

Reads one file; no subprocess, no network, no terminal.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from immutable_installer.core.errors import ManifestError
from immutable_installer.core.fields import FieldReader
from immutable_installer.core.markers import parse_requirement
from immutable_installer.core.model import (
    IMPLEMENTATIONS,
    HeldBackNote,
    Index,
    Manifest,
    Package,
    Platform,
    PythonTarget,
    Variant,
    WheelFile,
)
from immutable_installer.core.names import VARIANT_NAMES, canonical, is_variant_name
from immutable_installer.core.sections import (
    SHA256_RE,
    parse_blacklist,
    parse_built_from,
    parse_lock_settings,
    parse_shims,
    parse_verify,
)
from immutable_installer.core.validate import validate_semantics

SCHEMA_VERSION = 2  # 2: a package may have a different entry (version, dependencies) per platform
READABLE_SCHEMA_VERSIONS = (1, 2)
# the manifest's own name: a plain label (it names bundles and shows in scripts' messages)
NAME_LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*( [A-Za-z0-9._+-]+)*")
# platform, group and index names: keys that may become parts of file names
KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
EXTRA_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 685 extra names
PLATFORM_ENV_KEYS = ("os_name", "sys_platform", "platform_system", "platform_machine")


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
    r = FieldReader(file)
    top = r.obj(
        data, "",
        required=("schema_version", "name", "python", "platforms", "indexes", "default_index", "variants",
                  "default_variant", "groups", "packages"),
        optional=("blacklist", "verify", "shims", "build", "lock", "held_back"),
    )
    version = r.integer(top["schema_version"], "schema_version", minimum=1)
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
    blacklist = parse_blacklist(r, top.get("blacklist", []))
    packages = _parse_packages(r, top["packages"], groups, index_names, variant_names, {p.name for p in platforms})
    verify = parse_verify(r, top.get("verify", {}))
    shims = parse_shims(r, top.get("shims", {}))
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


def _parse_held_back(r: FieldReader, value: Any) -> tuple[HeldBackNote, ...]:
    out = []
    for i, item in enumerate(r.array(value, "held_back")):
        path = f"held_back[{i}]"
        obj = r.obj(item, path, required=("package", "pinned", "newest", "reason"), optional=("hint",))
        out.append(HeldBackNote(r.string(obj["package"], f"{path}.package"), r.string(obj["pinned"], f"{path}.pinned"),
                                r.string(obj["newest"], f"{path}.newest"), r.string(obj["reason"], f"{path}.reason"),
                                r.string(obj.get("hint", ""), f"{path}.hint", empty=True)))
    return tuple(out)


def _parse_platforms(r: FieldReader, value: Any) -> tuple[Platform, ...]:
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


def _parse_indexes(r: FieldReader, value: Any) -> tuple[Index, ...]:
    obj = r.obj(value, "indexes", required=(), optional=value.keys() if isinstance(value, dict) else ())
    if not obj:
        raise r.fail("indexes", "expected at least one index")
    out = []
    for key in sorted(obj):
        r.label(key, f"indexes.{key}", "an index name (letters, digits, . _ -)", KEY_RE)
        url = r.url(obj[key], f"indexes.{key}", ("https://", "http://", "file://"))
        out.append(Index(key, url.rstrip("/")))
    return tuple(out)


def _parse_variants(r: FieldReader, value: Any, index_names: set[str]) -> tuple[Variant, ...]:
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


def _parse_packages(
    r: FieldReader, value: Any, groups: tuple[str, ...], index_names: set[str], variant_names: list[str],
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
    r: FieldReader, value: Any, pkg_path: str, name: str, version: str, platform_names: set[str]
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
