"""The lock input, ``metadata/requirements.toml``: the only file people edit by hand.

It says *what* is wanted (requirements, groups, indexes, variants, blacklist, verify and shim settings);
``lock`` turns it into the frozen manifest that says *exactly which files*. Format: docs/lock.md.
Pure: no subprocess, no network.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from immutable_installer.core.cuda import min_compute_capability_for, min_driver_for
from immutable_installer.core.errors import ManifestError, SpecError
from immutable_installer.core.fields import FieldReader
from immutable_installer.core.model import (
    BlacklistRule,
    BlockedModule,
    Index,
    Platform,
    PythonTarget,
    ShimSettings,
    Variant,
    VerifySettings,
)
from immutable_installer.core.names import VARIANT_NAMES, canonical, is_variant_name
from immutable_installer.core.sections import parse_blacklist, parse_shims, parse_verify
from immutable_installer.core.urls import strip_credentials

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class SpecIndex:
    """An index of the spec; ``file_url`` (with ``{filename}``) gives files a public URL in the manifest."""

    name: str
    url: str
    file_url: str | None = None


@dataclass(frozen=True)
class SpecVariant:
    """A variant and the local version label its torch-family pins carry (``cpu`` -> ``2.13.0+cpu``)."""

    variant: Variant
    local_label: str


@dataclass(frozen=True)
class Group:
    """An install-order group and the packages explicitly assigned to it."""

    name: str
    packages: tuple[str, ...]


@dataclass(frozen=True)
class LockSpec:
    """Everything `lock` needs besides the resolver."""

    name: str
    python: PythonTarget
    platforms: tuple[Platform, ...]
    indexes: tuple[SpecIndex, ...]
    default_index: str
    variants: tuple[SpecVariant, ...]
    default_variant: str
    requirements: tuple[str, ...]
    groups: tuple[Group, ...]
    blacklist: tuple[BlacklistRule, ...] = ()
    verify: VerifySettings = field(default_factory=VerifySettings)
    shims: ShimSettings = field(default_factory=ShimSettings)
    name_variant_after_torch: bool = False  # plain requirements: the variant is named after the torch build
    imports_from_wheels: bool = False  # no verify.imports given: the requested distributions' import names
    strict: bool = False  # a requested package held back below its newest release is exit 1
    build: tuple[str, ...] = ()  # distributions whose sdist may be built (":all:" for every one)

    def index(self, name: str) -> SpecIndex:
        return next(i for i in self.indexes if i.name == name)

    def manifest_indexes(self) -> tuple[Index, ...]:
        """The indexes as the manifest records them: never with credentials (they come at run time)."""
        return tuple(Index(i.name, strip_credentials(i.url)) for i in self.indexes)


HOST_PLATFORM_ENV = {
    "linux_x86_64": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                     "platform_machine": "x86_64"},
}


def load_spec(path: str | Path) -> LockSpec:
    """Read and validate requirements.toml."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError("", "file not found", file=file,
                        hint="pass requirements on the command line, or create metadata/requirements.toml") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError("", f"not UTF-8 (bad byte at offset {exc.start})", file=file) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("", f"invalid TOML: {exc}", file=file) from None
    return spec_from_data(data, file=file)


def spec_from_data(data: Any, file: str | None = None) -> LockSpec:
    """Validate a decoded spec; errors name the TOML path like the manifest loader does."""
    r = FieldReader(file)
    try:
        return _spec_from_data(r, data)
    except SpecError:
        raise
    except ManifestError as exc:  # from a shared parser: re-label as a spec error
        raise SpecError(exc.path, exc.message.split(": ", 2)[-1], file=file) from None


def _spec_from_data(r: FieldReader, data: Any) -> LockSpec:
    """Only ``requirements`` is required; every table left out takes the default plain requirements have
    (docs/lock.md: this machine's Python and platform, PyPI, one variant named after the torch build)."""
    from immutable_installer.core.targets import host_platform_tag, host_python

    top = r.obj(data, "", required=("requirements",),
                optional=("name", "python", "indexes", "default_index", "variants", "groups", "platforms",
                          "default_variant", "blacklist", "verify", "shims", "build", "lock"))
    name = r.string(top.get("name", "stack"), "name")
    py = r.obj(top.get("python", {"version": host_python()}), "python", required=("version",),
               optional=("implementation",))
    version = r.string(py["version"], "python.version")
    if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,2})?", version):
        raise SpecError("python.version", f"{version!r} is not a python version like 3.11 (or 3.11.7)", file=r.file)
    python = PythonTarget(version, r.string(py.get("implementation", "cpython"), "python.implementation"))

    platforms = []
    host = target_platforms([host_platform_tag()])[0]
    default_platforms = [{"name": host.name, "tags": list(host.tags), "environment": dict(host.environment)}]
    for i, item in enumerate(r.array(top.get("platforms", default_platforms), "platforms", nonempty=True)):
        path = f"platforms[{i}]"
        obj = r.obj(item, path, required=("name",), optional=("tags", "environment"))
        pname = r.string(obj["name"], f"{path}.name")
        tags = r.strings(obj.get("tags", ["manylinux_2_28_x86_64"]), f"{path}.tags", nonempty=True)
        env_raw = obj.get("environment", HOST_PLATFORM_ENV.get(pname))
        if env_raw is None:
            raise SpecError(f"{path}.environment", "required for a platform other than linux_x86_64", file=r.file)
        env = r.obj(env_raw, f"{path}.environment",
                    required=("os_name", "sys_platform", "platform_system", "platform_machine"))
        platforms.append(Platform(pname, tags, {k: r.string(v, f"{path}.environment.{k}") for k, v in env.items()}))

    indexes = []
    raw_indexes = top.get("indexes", {"pypi": "https://pypi.org/simple"})
    idx = r.obj(raw_indexes, "indexes", required=(), optional=raw_indexes.keys() if isinstance(raw_indexes, dict)
                else ())
    for key in sorted(idx):
        value = idx[key]
        if isinstance(value, str):
            indexes.append(SpecIndex(key, value.rstrip("/")))
        else:
            obj = r.obj(value, f"indexes.{key}", required=("url",), optional=("file_url",))
            file_url = r.opt_string(obj.get("file_url"), f"indexes.{key}.file_url")
            if file_url is not None and "{filename}" not in file_url:
                raise SpecError(f"indexes.{key}.file_url", "must contain {filename}", file=r.file)
            indexes.append(SpecIndex(key, r.string(obj["url"], f"indexes.{key}.url").rstrip("/"), file_url))
    if not indexes:
        raise SpecError("indexes", "expected at least one index", file=r.file)
    index_names = {i.name for i in indexes}
    default_index = r.string(top.get("default_index", "pypi" if "pypi" in index_names or len(indexes) != 1
                                     else indexes[0].name), "default_index")
    if default_index not in index_names:
        raise SpecError("default_index", f"{default_index!r} is not a declared index", file=r.file)

    variants = []
    named_after_torch = "variants" not in top  # like plain requirements: one variant, named after the torch build
    raw_variants = top.get("variants", {"cpu": {"index": default_index, "torch_packages": [], "local_label": ""}})
    vraw = r.obj(raw_variants, "variants", required=(),
                 optional=raw_variants.keys() if isinstance(raw_variants, dict) else ())
    for key in sorted(vraw):
        path = f"variants.{key}"
        if not is_variant_name(key):
            raise SpecError(path, f"{key!r} is not a variant name ({VARIANT_NAMES})",
                            hint="name a variant after the torch build it pins (cpu, cu130, ...)", file=r.file)
        v = r.obj(vraw[key], path, required=("index",),
                  optional=("torch_packages", "cuda", "min_driver", "min_compute_capability", "local_label"))
        index = r.string(v["index"], f"{path}.index")
        if index not in index_names:
            raise SpecError(f"{path}.index", f"{index!r} is not a declared index", file=r.file)
        torch_packages = tuple(canonical(n) for n in r.strings(v.get("torch_packages", ["torch"]),
                                                               f"{path}.torch_packages"))
        cuda = r.opt_string(v.get("cuda"), f"{path}.cuda")
        min_driver = r.opt_string(v.get("min_driver"), f"{path}.min_driver")
        label = r.string(v.get("local_label", key if key == "cpu" else ""), f"{path}.local_label", empty=True)
        # what the spec does not say comes from the CUDA tables (core/cuda.py, docs/hardware.md)
        min_driver = min_driver or min_driver_for(cuda)
        min_cc = r.opt_string(v.get("min_compute_capability"), f"{path}.min_compute_capability") \
            or min_compute_capability_for(cuda)
        variants.append(SpecVariant(Variant(key, index, torch_packages, cuda, min_driver, min_cc), label))
    if not variants:
        raise SpecError("variants", "expected at least one variant", file=r.file)
    variant_names = [v.variant.name for v in variants]
    default_variant = r.string(top.get("default_variant", variant_names[0]), "default_variant")
    if default_variant not in variant_names:
        raise SpecError("default_variant", f"{default_variant!r} is not a declared variant", file=r.file)

    requirements = r.strings(top["requirements"], "requirements", nonempty=True)
    for i, req in enumerate(requirements):
        check_requirement(req, f"requirements[{i}]", r.file)

    groups = []
    seen: dict[str, str] = {}
    for i, item in enumerate(r.array(top.get("groups", [{"name": "default"}]), "groups", nonempty=True)):
        path = f"groups[{i}]"
        g = r.obj(item, path, required=("name",), optional=("packages",))
        gname = r.string(g["name"], f"{path}.name")
        members = tuple(canonical(n) for n in r.strings(g.get("packages", []), f"{path}.packages"))
        for n in members:
            if n in seen:
                raise SpecError(f"{path}.packages", f"{n!r} is already in group {seen[n]!r}", file=r.file)
            seen[n] = gname
        groups.append(Group(gname, members))

    blacklist = parse_blacklist(r, top.get("blacklist", []))
    shims = parse_shims(r, top.get("shims", {}))
    if not isinstance(top.get("shims"), dict) or "blocked_modules" not in top["shims"]:
        shims = replace(shims, blocked_modules=blocked_from_blacklist(blacklist))
    # [build] clear_pycache of specs before 0.2.0 had no effect: accepted, ignored
    r.obj(top.get("build", {}), "build", required=(), optional=("clear_pycache",))
    lock = r.obj(top.get("lock", {}), "lock", required=(), optional=("strict", "build"))
    build = tuple(canonical(n) if n != ALL else n for n in r.strings(lock.get("build", []), "lock.build"))
    return LockSpec(
        name=name, python=python, platforms=tuple(platforms), indexes=tuple(indexes),
        default_index=default_index, variants=tuple(variants), default_variant=default_variant,
        requirements=requirements, groups=tuple(groups),
        blacklist=blacklist,
        verify=parse_verify(r, top.get("verify", {})),
        imports_from_wheels=not (isinstance(top.get("verify"), dict) and "imports" in top["verify"]),
        shims=shims, name_variant_after_torch=named_after_torch,
        strict=r.boolean(lock.get("strict", False), "lock.strict"), build=build,
    )


ALL = ":all:"


def is_wheel_path(text: str) -> bool:
    """A requirement that is the path of a local wheel (``./wheels/mine-1.0-py3-none-any.whl``)."""
    return text.endswith(".whl") and "://" not in text and "@" not in text and ";" not in text


def as_requirement(text: str) -> Requirement:
    """A requirement as PEP 508 reads it; a local wheel's path becomes ``name @ file:///its/absolute/path``
    (relative to the current folder, as pip reads a path on its command line)."""
    if is_wheel_path(text):
        from packaging.utils import parse_wheel_filename

        path = Path(os.path.abspath(text))
        return Requirement(f"{parse_wheel_filename(path.name)[0]} @ {path.as_uri()}")
    return Requirement(text)


def check_requirement(text: str, path: str, file: str | None = None) -> None:
    """A PEP 508 requirement (``name @ URL`` included) or the path of a local wheel; SpecError naming ``path``."""
    if is_wheel_path(text):
        from packaging.utils import InvalidWheelFilename, parse_wheel_filename

        try:
            parse_wheel_filename(text.replace("\\", "/").rsplit("/", 1)[-1])
        except InvalidWheelFilename as exc:
            raise SpecError(path, f"{text!r} is not the path of a wheel ({exc})", file=file) from None
        return
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        first = str(exc).splitlines()[0]
        raise SpecError(path, f"invalid requirement {text!r}: {first}", file=file) from None


def blocked_from_blacklist(rules: tuple[BlacklistRule, ...]) -> tuple[BlockedModule, ...]:
    """The blocked-module shims a blacklist implies when the spec names none: each forbidden import name is
    kept absent in the environment (a fork that slipped in under another name still cannot be imported)."""
    out: dict[str, BlockedModule] = {}
    for rule in rules:
        for mod in rule.import_names:
            out.setdefault(mod, BlockedModule(mod, "absent", rule.reason))
    return tuple(out.values())


def target_platforms(values: Sequence[str]) -> tuple[Platform, ...]:
    """Platform entries for ``--platform`` values (tags or names); tags of one platform are merged."""
    from immutable_installer.core.targets import platform_for

    merged: dict[str, Platform] = {}
    for value in values:
        found = platform_for(value)
        if found.name in merged:
            old = merged[found.name]
            found = Platform(old.name, tuple(dict.fromkeys(old.tags + found.tags)), old.environment)
        merged[found.name] = found
    return tuple(merged.values())


def retarget(spec: LockSpec, python_version: str | None, platforms: Sequence[str]) -> LockSpec:
    """``lock --spec`` with ``--python-version`` / ``--platform``: the command line replaces the spec's targets
    (never ignored)."""
    if python_version:
        if not re.fullmatch(r"3\.\d{1,2}(\.\d{1,2})?", python_version):
            raise SpecError("python.version", f"--python-version {python_version!r} is not X.Y or X.Y.Z (e.g. 3.12 "
                                              "or 3.12.4)")
        spec = replace(spec, python=replace(spec.python, version=python_version))
    if platforms:
        spec = replace(spec, platforms=target_platforms(platforms))
    return spec


def spec_from_requirements(requirements: list[str], python_version: str, platform_tags: list[str],
                           index_url: str, blacklist: list[str]) -> LockSpec:
    """A minimal spec for plain requirements on the command line (`lock REQ ...` / `-r FILE`); without
    ``--platform`` it targets this machine (a Windows host locks for Windows)."""
    from immutable_installer.core.targets import host_platform_tag

    platforms = target_platforms(platform_tags or [host_platform_tag()])
    data: dict[str, Any] = {
        "name": "requirements",
        "python": {"version": python_version},
        "platforms": [{"name": p.name, "tags": list(p.tags), "environment": dict(p.environment)} for p in platforms],
        "indexes": {"default": index_url},
        "default_index": "default",
        "variants": {"cpu": {"index": "default", "local_label": "", "torch_packages": []}},
        "requirements": requirements,
        "groups": [{"name": "default"}],
        # the importable name too: a wheel of another name shipping `torchao/` is caught like torchao itself
        "blacklist": [{"name": n, "reason": "blacklisted on the command line",
                       **({} if any(c in n for c in "*?[") else {"import_names": [canonical(n).replace("-", "_")]})}
                      for n in blacklist],
    }
    return replace(spec_from_data(data), name_variant_after_torch=True)


def with_command_line(spec: LockSpec, verify_imports: Sequence[str] = (), allow_pth: Sequence[str] = (),
                      build: Sequence[str] = (), strict: bool = False) -> LockSpec:
    """``lock``'s options that a spec could say too: ``--verify-import`` replaces the imports verify makes,
    ``--allow-pth`` and ``--build`` add to the spec's lists, ``--strict`` turns strict on. Checked like the
    spec's own fields, errors naming the option."""
    r = FieldReader(None)
    try:
        checked = parse_verify(r, {"imports": list(verify_imports), "allowed_pth": list(allow_pth)})
    except ManifestError as exc:  # from the shared parser: name the option, not a JSON path
        option = "--verify-import" if exc.path.startswith("verify.imports") else "--allow-pth"
        raise SpecError("", f"{option}: {exc.message.split(': ', 1)[-1]}",
                        hint="a module name like yaml or google.protobuf; a start-up file name like "
                             "distutils-precedence.pth") from None
    verify = spec.verify
    if verify_imports:
        verify = replace(verify, imports=checked.imports, secondary_imports=())
    if allow_pth:
        verify = replace(verify, allowed_pth=tuple(sorted(set(verify.allowed_pth) | set(checked.allowed_pth))))
    names = tuple(dict.fromkeys([*spec.build, *(n if n == ALL else canonical(n) for n in build)]))
    for name in names:
        if name != ALL and not re.fullmatch(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?", name):
            raise SpecError("", f"--build {name!r} is not a distribution name", hint="e.g. --build "
                                                                                    "antlr4-python3-runtime or :all:")
    return replace(spec, verify=verify, imports_from_wheels=spec.imports_from_wheels and not verify_imports,
                   build=names, strict=spec.strict or strict)
