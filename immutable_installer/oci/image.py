"""`push`: a generation written as an OCI image.

Layers, bottom to top: the base image's (``--base``, pinned by digest: the interpreter the environment runs on),
one per store entry (grouped past ``--max-layers``, layers.py), then the top layer of what the generation wrote
for itself, made for the image's prefix and interpreter. Layers are uncompressed tar: the same entry is the same
bytes, and so the same digest, from any machine, with no compressor's version in the way; a registry on the
LAN or loopback moves them faster than they compress (docs/decisions.md). Each entry layer's digest is kept in
the cache (keyed by the entry's content digest and the prefix), so a second push of a stack reads no entry: it
asks the registry for each blob (HEAD) and uploads only what is missing. A layer never pushed from here is
hashed while it is uploaded (a streamed upload closed with its digest): one read of the entry, each file
checked against its listing on the way.

Annotations name the lock, variant, platform, interpreter, fingerprint and prefix, and each layer's entry keys
with their content digests: what `pull` checks before anything enters a store.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from immutable_installer import __version__
from immutable_installer.core.errors import ImageError, UsageError
from immutable_installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.generation_files import RECEIPT
from immutable_installer.core.model import Manifest
from immutable_installer.core.paths import cache_root
from immutable_installer.core.receipt import Receipt
from immutable_installer.generation.populate import generation_files
from immutable_installer.oci import tarball
from immutable_installer.oci.client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX,
    MANIFEST,
    ImageStore,
    checked_manifest,
    chunks_of,
    read_blob,
    sha256_of,
)
from immutable_installer.oci.layers import (
    ANNOTATION,
    Planned,
    annotations_of,
    entry_members,
    generation_members,
    plan_layers,
)
from immutable_installer.store.entries import Entry, Store

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


@dataclass
class PushedLayer:
    digest: str
    size: int
    what: str  # "base", "entries" or "generation"
    keys: list[str] = field(default_factory=list)
    uploaded: bool = False


@dataclass
class PushResult:
    reference: str
    digest: str
    layers: list[PushedLayer]
    entries: dict[str, str]  # entry key -> content digest
    seconds: float

    @property
    def uploaded_bytes(self) -> int:
        return sum(layer.size for layer in self.layers if layer.uploaded)

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "seconds": round(self.seconds, 3),
                "uploaded_bytes": self.uploaded_bytes,
                "layers": [{"digest": x.digest, "size": x.size, "what": x.what, "entries": x.keys,
                            "uploaded": x.uploaded} for x in self.layers]}


@dataclass(frozen=True)
class Base:
    """The base image: its manifest's layers and its config (pinned by digest)."""

    store: ImageStore
    layers: list[dict[str, Any]]
    config: dict[str, Any]


def load_base(store: ImageStore, digest: str, platform_arch: str) -> Base:
    """The base image pinned by ``digest``; of an index (a multi-platform image), the linux one for the target's
    architecture."""
    body, media_type, _ = checked_manifest(store, digest)
    data = _json(body, f"{store.name}@{digest}")
    if media_type in (INDEX, DOCKER_LIST) or "manifests" in data:
        chosen = [m for m in data.get("manifests", []) if isinstance(m, dict)
                  and (m.get("platform") or {}).get("os") == "linux"
                  and (m.get("platform") or {}).get("architecture") == platform_arch]
        if not chosen:
            raise UsageError(f"the base {store.name}@{digest} has no linux/{platform_arch} image")
        body, media_type, _ = checked_manifest(store, str(chosen[0]["digest"]))
        data = _json(body, store.name)
    if media_type not in (MANIFEST, DOCKER_MANIFEST, "") and "layers" not in data:
        raise UsageError(f"the base {store.name}@{digest} is not an image manifest ({media_type})")
    config_digest = str((data.get("config") or {}).get("digest", ""))
    config = _json(read_blob(store, config_digest, 4 << 20), f"{store.name} config")
    layers = [dict(layer) for layer in data.get("layers", []) if isinstance(layer, dict)]
    if len((config.get("rootfs") or {}).get("diff_ids", [])) != len(layers):
        raise ImageError(f"the base {store.name}@{digest} lists {len(layers)} layers but its config "
                         f"{len((config.get('rootfs') or {}).get('diff_ids', []))} diff ids")
    return Base(store, layers, config)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise ImageError(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise ImageError(f"{what} is not a JSON object")
    return value


class LayerDigests:
    """Each entry layer's digest and size, computed once per (entries, prefix) and kept in the cache: entries
    never change, so a later push reads no entry to name its layers."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root() / "oci-layers"

    def get(self, identity: str) -> tuple[str, int] | None:
        try:
            data = json.loads((self.root / f"{identity}.json").read_text(encoding="utf-8"))
            digest, size = str(data["digest"]), int(data["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (digest, size) if digest.startswith("sha256:") and size > 0 else None

    def put(self, identity: str, digest: str, size: int) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{identity}.tmp"
            tmp.write_text(json.dumps({"digest": digest, "size": size}), encoding="utf-8")
            tmp.replace(self.root / f"{identity}.json")
        except OSError:
            pass  # a cache: the next push computes it again


def checked_stream(members: Sequence[tarball.Member], expected: dict[str, str]) -> Iterator[bytes]:
    """The layer's bytes, each file checked against its entry's listing as it is read: a store file changed since
    it was built stops the upload (the registry keeps nothing of an unfinished upload)."""
    for member in members:
        yield tarball.header(member)
        if member.kind != "file":
            continue
        own = hashlib.sha256()
        for chunk in ([member.data] if member.data is not None else _file_chunks(member)):
            own.update(chunk)
            yield chunk
        want = expected.get(member.name)
        got = "sha256=" + base64.urlsafe_b64encode(own.digest()).rstrip(b"=").decode()
        if want is not None and got != want:
            raise ImageError(f"{member.source} does not match the sha256 its store entry recorded; not pushed",
                             hint="run `immutable-installer store verify --repair`, then install and push again")
        if member.size % tarball.BLOCK:
            yield b"\0" * (tarball.BLOCK - member.size % tarball.BLOCK)
    yield b"\0" * (2 * tarball.BLOCK)


def _file_chunks(member: tarball.Member) -> Iterator[bytes]:
    assert member.source is not None
    with open(member.source, "rb") as fh:
        yield from chunks_of(fh)


def push(target: ImageStore, tag: str | None, generation: Path, receipt: Receipt, manifest: Manifest, store: Store,
         prefix: str, base: Base | None, base_python: str, max_layers: int, local_paths: Sequence[str],
         reporter: Reporter = null_reporter) -> PushResult:
    """Write the generation at ``generation`` to ``target`` (tagged ``tag``); returns what was pushed."""
    started = time.monotonic()
    entries = _entries(receipt, store)
    budget = max_layers - 1 - (len(base.layers) if base else 0)
    plan = plan_layers(entries, budget)
    reporter(Phase("push", f"{len(entries)} store entries in {len(plan)} layers + the generation's own files -> "
                           f"{target.name}"))
    digests = LayerDigests()
    pushed: list[PushedLayer] = []
    descriptors: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    if base is not None:
        for descriptor, diff_id in zip(base.layers, base.config["rootfs"]["diff_ids"], strict=True):
            digest, size = str(descriptor["digest"]), int(descriptor["size"])
            uploaded = _ensure_blob(target, digest, size, lambda d=digest: chunks_of(base.store.open_blob(d)),
                                    mount_from=base.store)
            pushed.append(PushedLayer(digest, size, "base", uploaded=uploaded))
            descriptors.append(descriptor)
            diff_ids.append(str(diff_id))
    for number, layer in enumerate(plan, 1):
        members, expected = entry_members(layer, prefix)
        identity = layer.identity(prefix)
        known = digests.get(identity)
        if known is None:  # never pushed from here: hashed while it is uploaded (one read of the entry)
            digest, size = target.stream_blob(functools.partial(checked_stream, members, expected))
            digests.put(identity, digest, size)
            uploaded = True
        else:
            digest, size = known
            uploaded = _ensure_blob(target, digest, size, functools.partial(checked_stream, members, expected))
        pushed.append(PushedLayer(digest, size, "entries", layer.keys, uploaded))
        descriptors.append({"mediaType": LAYER, "digest": digest, "size": size, "annotations": annotations_of(layer)})
        diff_ids.append(digest)
        reporter(Progress("push", number, len(plan) + 1, "layers", ", ".join(layer.keys)[:60]))
    python = f"{prefix}/bin/python"
    rewritten: dict[str, bytes] = {}
    for entry in entries:
        rewritten.update(generation_files(entry, python))
    members, listed = generation_members(generation, receipt.tool_files, rewritten, prefix, base_python, local_paths)
    image_receipt = replace(receipt, store="", link_mode=None, tool_files=listed)  # no store in the image
    receipt_bytes = (json.dumps(image_receipt.to_json(), indent=2, sort_keys=True) + "\n").encode()
    name = f"{prefix.strip('/')}/{RECEIPT}"
    members = sorted([m for m in members if m.name != name]
                     + [tarball.Member(name, "file", 0o644, int((generation / RECEIPT).stat().st_mtime),
                                       len(receipt_bytes), data=receipt_bytes)], key=lambda m: m.name)
    digest, size = tarball.digest_and_size(members)
    uploaded = _ensure_blob(target, digest, size, lambda: tarball.stream(members))
    pushed.append(PushedLayer(digest, size, "generation", uploaded=uploaded))
    descriptors.append({"mediaType": LAYER, "digest": digest, "size": size,
                        "annotations": {f"{ANNOTATION}.layer": "generation"}})
    diff_ids.append(digest)
    config = _config(base, diff_ids, prefix, manifest, plan, len(descriptors) - (len(base.layers) if base else 0))
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = sha256_of(config_bytes)
    _ensure_blob(target, config_digest, len(config_bytes), lambda: [config_bytes])
    image = {"schemaVersion": 2, "mediaType": MANIFEST,
             "config": {"mediaType": CONFIG, "digest": config_digest, "size": len(config_bytes)},
             "layers": descriptors,
             "annotations": {"org.opencontainers.image.title": manifest.name,
                             f"{ANNOTATION}.lock": manifest.name,
                             f"{ANNOTATION}.manifest-sha256": manifest.raw_sha256,
                             f"{ANNOTATION}.variant": receipt.variant,
                             f"{ANNOTATION}.platform": receipt.platform,
                             f"{ANNOTATION}.interpreter": entries[0].meta["interpreter"] if entries else "",
                             f"{ANNOTATION}.fingerprint": receipt.fingerprint,
                             f"{ANNOTATION}.prefix": prefix,
                             f"{ANNOTATION}.tool-version": __version__}}
    body = json.dumps(image, sort_keys=True, separators=(",", ":")).encode()
    target.put_manifest(body, MANIFEST, tag)
    seconds = time.monotonic() - started
    result = PushResult("", sha256_of(body), pushed, {e.key: str(e.content_digest) for e in entries}, seconds)
    reporter(Message("info", f"{len([p for p in pushed if p.uploaded])} of {len(pushed)} layers uploaded "
                             f"({result.uploaded_bytes / 1e6:.1f} MB); the others were there already"))
    reporter(PhaseDone("push", seconds))
    return result


def _entries(receipt: Receipt, store: Store) -> list[Entry]:
    """The store entries the generation was linked from, each with a content digest."""
    entries = []
    for package in receipt.packages:
        if not package.store_entry or not store.entry_path(package.store_entry).is_dir():
            raise UsageError(f"{package.name}: its store entry {package.store_entry or '(none)'} is not in the store "
                             f"{store.root}", hint="install again (the same --store) before pushing")
        entry = store.load(package.store_entry)
        if entry.content_digest is None:
            raise UsageError(f"store entry {entry.key} ({package.name}) has no content digest: it was built before "
                             "store entries were reproducible",
                             hint="run `immutable-installer store verify --repair`, then `install --force`, then push")
        entries.append(entry)
    return entries


def _ensure_blob(target: ImageStore, digest: str, size: int, body: Any, mount_from: ImageStore | None = None) -> bool:
    """The blob is in ``target`` afterwards; True when it had to be uploaded (HEAD first, then a cross-repository
    mount, then the bytes)."""
    if target.has_blob(digest):
        return False
    if mount_from is not None and target.mount_blob(digest, mount_from):
        return False
    target.put_blob(digest, size, body)
    return True


def _config(base: Base | None, diff_ids: list[str], prefix: str, manifest: Manifest, plan: list[Planned],
            ours: int) -> dict[str, Any]:
    """The image config: the base's (its entry point, user, labels) with the environment first on PATH."""
    platform = manifest.platforms[0]
    config: dict[str, Any] = copy.deepcopy(base.config) if base else {
        "architecture": ARCH.get(platform.environment.get("platform_machine", "").lower(), "amd64"),
        "os": {"Linux": "linux", "Windows": "windows", "Darwin": "darwin"}.get(
            platform.environment.get("platform_system", ""), "linux"),
        "config": {}}
    inner = config.setdefault("config", {}) or {}
    config["config"] = inner
    env = [e for e in inner.get("Env") or [] if not e.startswith(("PATH=", "VIRTUAL_ENV="))]
    old_path = next((e[5:] for e in inner.get("Env") or [] if e.startswith("PATH=")),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    inner["Env"] = [f"PATH={prefix}/bin:{old_path}", f"VIRTUAL_ENV={prefix}", *env]
    if not inner.get("Cmd") and not inner.get("Entrypoint"):
        inner["Cmd"] = [f"{prefix}/bin/python"]
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    history = list(config.get("history") or [])
    history += [{"created_by": f"immutable-installer push: store entries {', '.join(layer.keys)}",
                 "comment": "immutable-installer"} for layer in plan]
    history.append({"created_by": "immutable-installer push: the generation's own files",
                    "comment": "immutable-installer"})
    config["history"] = history
    config.pop("created", None)  # the same stack gives the same config: no time in it
    return config
