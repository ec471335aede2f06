"""The sections a manifest and a lock spec share, each parsed the same way for both (their errors name the
path): the blacklist, the verify and shim settings, the lock settings, a built wheel's provenance. Pure."""

from __future__ import annotations

import re
from typing import Any

from immutable_installer.core.fields import FieldReader
from immutable_installer.core.model import (
    PRERELEASE_MODES,
    BlacklistRule,
    BlockedModule,
    BuildRequirement,
    BuiltFrom,
    LockSettings,
    ShimSettings,
    VerifySettings,
)
from immutable_installer.core.startup import startup_name

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
EXCLUDE_NEWER_RE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?")
CUDA_MODES = ("auto", "required", "optional", "forbidden")
BLOCK_MODES = ("absent", "stub")


def parse_lock_settings(value: Any, path: str, file: str | None = None) -> LockSettings:
    """The ``lock`` object (also the lock's command-line flags, checked the same way: ``path`` names them)."""
    r = FieldReader(file)
    obj = r.obj(value, path, required=(), optional=("prerelease", "exclude_newer"))
    prerelease = None if obj.get("prerelease") is None else r.choice(obj["prerelease"], f"{path}.prerelease",
                                                                     PRERELEASE_MODES)
    cutoff = r.opt_string(obj.get("exclude_newer"), f"{path}.exclude_newer")
    if cutoff is not None and not EXCLUDE_NEWER_RE.fullmatch(cutoff):
        raise r.fail(f"{path}.exclude_newer", f"{cutoff!r} is not a date like 2026-06-01 or 2026-06-01T00:00:00Z")
    return LockSettings(prerelease, cutoff)


def parse_blacklist(r: FieldReader, value: Any) -> tuple[BlacklistRule, ...]:
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


def parse_built_from(r: FieldReader, value: Any, path: str) -> BuiltFrom:
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


def parse_verify(r: FieldReader, value: Any) -> VerifySettings:
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


def _module_names(r: FieldReader, value: Any, path: str) -> tuple[str, ...]:
    names = r.strings(value, path)
    for i, mod in enumerate(names):
        if not all(part.isidentifier() for part in mod.split(".")):
            raise r.fail(f"{path}[{i}]", f"{mod!r} is not a module name")
    return names


def parse_shims(r: FieldReader, value: Any) -> ShimSettings:
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
