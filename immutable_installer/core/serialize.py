"""Writing the manifest: its JSON tree in canonical order, deterministic bytes (sorted keys, two-space indent,
a trailing newline, no timestamps), written atomically and only when the loader would read it back. Reads
and writes one file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from immutable_installer.core.manifest import SCHEMA_VERSION, parse_manifest
from immutable_installer.core.model import BuiltFrom, Manifest


def built_from_to_data(built: BuiltFrom) -> dict[str, Any]:
    return {"sdist": {"filename": built.sdist, "sha256": built.sdist_sha256, "url": built.sdist_url},
            "backend": built.backend,
            "requires": [{"filename": r.filename, "sha256": r.sha256, "url": r.url} for r in built.requires]}


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
