"""The images a manifest was pushed as, kept beside it (``metadata/dependencies.images.json`` for
``metadata/dependencies.json``): the file a reviewer reads and commits with the lock.

`push` adds each image it writes (reference, digest, variant, platform, interpreter, prefix) and the content
digest of every store entry in it; `install --from REF` and `pull REF` take the digest from here when REF is a
tag, and check every pulled entry against the content digest recorded here. Deterministic bytes (sorted keys,
no times), so a push of the same stack changes nothing in it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immutable_installer.core.errors import ManifestError
from immutable_installer.oci.reference import DIGEST_RE

ENTRY_KEY = re.compile(r"^[a-z]+\d+-[0-9a-f]{64}$")


@dataclass(frozen=True)
class PushedImage:
    reference: str  # without the digest: registry/repository:tag or oci:DIR:TAG
    digest: str
    variant: str
    platform: str
    interpreter: str
    prefix: str

    def to_json(self) -> dict[str, str]:
        return {"reference": self.reference, "digest": self.digest, "variant": self.variant,
                "platform": self.platform, "interpreter": self.interpreter, "prefix": self.prefix}


@dataclass
class ImagesRecord:
    manifest_sha256: str
    images: list[PushedImage] = field(default_factory=list)
    entries: dict[str, str] = field(default_factory=dict)  # store entry key -> content digest

    def digest_for(self, reference: str) -> str | None:
        return next((i.digest for i in reversed(self.images) if i.reference == reference), None)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": 1, "manifest_sha256": self.manifest_sha256,
                "images": [i.to_json() for i in sorted(self.images, key=lambda i: (i.reference, i.digest))],
                "entries": dict(sorted(self.entries.items()))}


def record_path(manifest: Path) -> Path:
    return manifest.with_name(f"{manifest.stem}.images.json")


def load_record(path: Path) -> ImagesRecord | None:
    """The record at ``path``; None when there is none. A damaged one is an error naming the field (exit 2):
    it is what pins the images."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ManifestError("", f"unreadable ({exc})", file=str(path)) from None

    def bad(where: str, why: str) -> ManifestError:
        return ManifestError(where, why, file=str(path), hint="push again to rewrite it, or restore it from git")

    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise bad("schema_version", "expected 1")
    images = []
    for n, item in enumerate(data.get("images") or []):
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in (
                "reference", "digest", "variant", "platform", "interpreter", "prefix")):
            raise bad(f"images[{n}]", "expected reference, digest, variant, platform, interpreter, prefix strings")
        if not DIGEST_RE.match(item["digest"]):
            raise bad(f"images[{n}].digest", f"{item['digest']!r} is not a sha256 digest")
        images.append(PushedImage(item["reference"], item["digest"], item["variant"], item["platform"],
                                  item["interpreter"], item["prefix"]))
    entries = data.get("entries") or {}
    if not isinstance(entries, dict):
        raise bad("entries", "expected an object")
    for key, digest in entries.items():
        if not ENTRY_KEY.match(str(key)) or not isinstance(digest, str) or not DIGEST_RE.match(digest):
            raise bad(f"entries.{key}", "expected a store entry key and a sha256 content digest")
    sha = data.get("manifest_sha256")
    if not isinstance(sha, str):
        raise bad("manifest_sha256", "expected a string")
    return ImagesRecord(sha, images, dict(entries))


def add_image(path: Path, manifest_sha256: str, image: PushedImage, entries: dict[str, str]) -> ImagesRecord:
    """Record ``image`` (replacing an older push of the same reference) and its entries' content digests; a
    record of another manifest is started afresh (the lock changed)."""
    record = load_record(path)
    if record is None or record.manifest_sha256 != manifest_sha256:
        record = ImagesRecord(manifest_sha256)
    record.images = [i for i in record.images if i.reference != image.reference] + [image]
    record.entries.update(entries)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return record
