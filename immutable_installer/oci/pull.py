"""`pull` (and `install --from`): the store entries an image holds, into this machine's store, trusted by digest
only.

The image manifest is fetched by its digest and must hash to it; each layer is read once, as a stream, its
bytes hashed against the layer's digest while its members are checked and written into a staging folder of
the store. A member must be a plain file or folder under the image's environment prefix (no ``..``, no
absolute path, no link, no device, no setuid or setgid bit), listed by the portable ``entry.json`` of an entry
of that layer (which comes first), with the size and the sha256 the listing gives. An entry enters the store
only when the whole layer matched its digest and the entry matched its listing, its content digest (the one
the layer's annotation names, and the one the images record beside the manifest names, when there is one), its
key (a wheel the manifest pins, for the manifest's interpreter) and its scan facts (every file the facts
describe, with their hashes, and start-up code only where the facts say so): the scan and `verify` that follow
run on what was pulled as on anything built here. Anything else is refused (exit 4) and leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from immutable_installer.core.errors import ImageError
from immutable_installer.core.events import Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.model import Manifest
from immutable_installer.core.selection import Selection
from immutable_installer.core.startup import startup_finding
from immutable_installer.dists.hashing import record_form
from immutable_installer.dists.wheel import WheelInfo
from immutable_installer.oci import tarball
from immutable_installer.oci.client import MANIFEST, ImageStore, checked_manifest
from immutable_installer.oci.layers import ANNOTATION, META_DIR, check_prefix, parse_layer_annotations
from immutable_installer.oci.record import ENTRY_KEY, ImagesRecord
from immutable_installer.store.entries import IncomingEntries, Store, interpreter_tag
from immutable_installer.store.fill import ENTRY_MTIME, entry_digest

MAX_META = 64 << 20  # a portable entry.json larger than this is not one
READ = 1 << 20
PULL_THREADS = 4  # layers read at once


@dataclass
class PullResult:
    digest: str
    pulled: list[str] = field(default_factory=list)  # entry keys taken into the store
    present: list[str] = field(default_factory=list)  # wanted entries the store already held
    bytes: int = 0  # layer bytes read
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"digest": self.digest, "pulled": self.pulled, "present": self.present, "bytes": self.bytes,
                "seconds": round(self.seconds, 3)}


class _Hashing:
    """A layer's bytes as they are read: hashed, counted, never more than the descriptor's size."""

    def __init__(self, raw: BinaryIO, size: int, what: str) -> None:
        self.raw, self.size, self.what = raw, size, what
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(READ if n is None or n < 0 else n)
        self.count += len(data)
        if self.count > self.size:
            raise ImageError(f"{self.what} is longer than its descriptor's {self.size} bytes; refused")
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(READ):
            pass


def pull(source: ImageStore, digest: str, selection: Selection, store: Store, record: ImagesRecord | None,
         reporter: Reporter = null_reporter) -> PullResult:
    """Take into ``store`` the entries of image ``digest`` that ``selection`` needs and the store lacks."""
    started = time.monotonic()
    manifest = selection.manifest
    body, media_type, got = checked_manifest(source, digest)
    image = _image(body, media_type, f"{source.name}@{digest}")
    annotations = image.get("annotations") or {}
    interp = interpreter_tag(manifest.python.implementation, manifest.python.minor)
    named = str(annotations.get(f"{ANNOTATION}.interpreter", interp))
    if named != interp:
        raise ImageError(f"{source.name}@{digest} holds entries for {named}; the manifest needs {interp}",
                         hint="push an image from an environment of this manifest's Python")
    prefix = check_prefix(str(annotations.get(f"{ANNOTATION}.prefix", "/opt/venv")))
    pinned = _pinned(manifest)
    wanted = {store.key(n.wheel.sha256, interp) for n in selection.wheels}
    result = PullResult(got)
    plan: list[tuple[dict[str, Any], dict[str, str]]] = []
    for layer in image.get("layers") or []:
        if not isinstance(layer, dict):
            raise ImageError(f"{source.name}@{digest}: a layer descriptor is not an object")
        pairs = dict(parse_layer_annotations(layer.get("annotations")))
        for key, content in pairs.items():
            _check_key(key, content, interp, pinned, record, source.name)
        needed = {k for k in pairs if k in wanted}
        result.present += sorted(k for k in needed if store.entry_path(k).is_dir())
        if any(not store.entry_path(k).is_dir() for k in needed):
            plan.append((layer, pairs))
    total = sum(int(layer.get("size", 0)) for layer, _ in plan)
    reporter(Phase("pull", f"{len(plan)} layer(s), {total / 1e6:.1f} MB from {source.name}@{got[:19]}..."))
    keys = [k for _, pairs in plan for k in pairs if k in wanted]
    with IncomingEntries(store, keys) as incoming:
        ready: dict[str, dict[str, Any]] = {}
        taken: set[str] = set()
        jobs = []
        for layer, pairs in plan:
            accept = {k: v for k, v in pairs.items() if k in incoming.todo and k not in taken}
            taken.update(accept)
            jobs.append((layer, pairs, accept))
        # layers are read side by side: each is a stream of hashing and file creation, which wait in the kernel
        # (or in hashlib) without the GIL; the first refusal stops the rest
        with ThreadPoolExecutor(max_workers=min(PULL_THREADS, max(1, len(jobs)))) as pool:
            futures = [pool.submit(_receive, source, layer, pairs, accept, prefix, incoming, interp, got)
                       for layer, pairs, accept in jobs]
            try:
                for number, future in enumerate(as_completed(futures), 1):
                    ready.update(future.result())
                    reporter(Progress("pull", number, len(jobs), "layers", ""))
            except BaseException:
                incoming.cancelled = True
                for future in futures:
                    future.cancel()
                raise
        result.bytes = sum(int(layer.get("size", 0)) for layer, _pairs, _accept in jobs)
        for key, meta in ready.items():  # only once every layer matched: a hostile layer leaves nothing behind
            incoming.commit(key, meta)
            result.pulled.append(key)
    result.seconds = time.monotonic() - started
    reporter(PhaseDone("pull", result.seconds))
    return result


def _image(body: bytes, media_type: str, what: str) -> dict[str, Any]:
    try:
        image = json.loads(body)
    except ValueError:
        raise ImageError(f"{what}: the manifest is not JSON") from None
    if not isinstance(image, dict) or image.get("schemaVersion") != 2 or not isinstance(image.get("layers"), list):
        raise ImageError(f"{what} is not an image manifest (an index, or another kind of artifact)",
                         hint="pull the digest `immutable-installer push` printed")
    if media_type not in (MANIFEST, "") and image.get("mediaType", MANIFEST) != MANIFEST:
        raise ImageError(f"{what}: media type {media_type}, not an OCI image manifest")
    return image


def _pinned(manifest: Manifest) -> set[str]:
    """The sha256 of every wheel file the manifest pins, for any variant and platform."""
    return {f.sha256 for p in manifest.packages for f in p.files}


def _check_key(key: str, content: str, interp: str, pinned: set[str], record: ImagesRecord | None,
               where: str) -> None:
    if not ENTRY_KEY.match(key) or not key.startswith(interp + "-"):
        raise ImageError(f"{where}: a layer names {key!r}, not a store entry for {interp}")
    if key.split("-", 1)[1] not in pinned:
        raise ImageError(f"{where}: a layer holds store entry {key[:24]}... for a wheel this manifest does not pin; "
                         "refused", hint="pull an image pushed from this manifest")
    if record is not None and key in record.entries and record.entries[key] != content:
        raise ImageError(f"{where}: store entry {key[:24]}... has content digest {content[:19]}... in the image but "
                         f"{record.entries[key][:19]}... in the images record beside the manifest; refused")


def _member_name(name: str, what: str) -> str:
    raw = name
    while name.startswith("./"):
        name = name[2:]
    clean = posixpath.normpath(name) if name else ""
    if (not name or name.startswith("/") or "\\" in name or "\0" in name or clean.startswith("..")
            or ".." in name.split("/") or clean != name.rstrip("/")):
        raise ImageError(f"{what}: member {raw!r} is not a plain relative path; refused")
    return clean


def _receive(source: ImageStore, layer: dict[str, Any], pairs: dict[str, str], accept: dict[str, str], prefix: str,
             incoming: IncomingEntries, interp: str, image_digest: str) -> dict[str, dict[str, Any]]:
    """One layer read once: checked, its accepted entries written to staging; their entry.json contents, to be
    committed when every layer matched."""
    digest, size = str(layer.get("digest", "")), int(layer.get("size", 0))
    what = f"layer {digest[:19]}..."
    top = prefix.strip("/")
    metas: dict[str, dict[str, Any]] = {}
    listing: dict[str, list[tuple[str, str, int, bool]]] = {}  # rel -> (key, digest, size, executable)
    seen: dict[str, set[str]] = {k: set() for k in accept}
    with source.open_blob(digest) as blob:
        reader = _Hashing(blob, size, what)
        tar = tarball.Reader(reader.read)
        try:
            for header, contents in tar.members():
                if incoming.cancelled:
                    raise ImageError(f"{what}: abandoned (another layer was refused)")
                name = _member_name(header.name, what)
                if name != top and not name.startswith(top + "/") and not top.startswith(name + "/"):
                    raise ImageError(f"{what}: member {name} lies outside the environment {prefix}; refused")
                if header.mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX):
                    raise ImageError(f"{what}: member {name} has a setuid, setgid or sticky bit; refused")
                if header.kind == tarfile.DIRTYPE:
                    continue
                if header.kind not in tarfile.REGULAR_TYPES:
                    raise ImageError(f"{what}: member {name} is a {_kind(header.kind)}, which no store entry "
                                     "holds; refused")
                rel = name[len(top) + 1:]
                if rel.startswith(META_DIR + "/"):
                    key = rel[len(META_DIR) + 1:].removesuffix(".json")
                    if key not in pairs or key in metas or header.size > MAX_META:
                        raise ImageError(f"{what}: {rel} is not the listing of an entry this layer names; refused")
                    metas[key] = _meta(b"".join(contents), key, pairs[key], interp, what)
                    marked = set(metas[key].get("executables", []))
                    for f in metas[key]["files"]:
                        listing.setdefault(str(f[0]), []).append((key, str(f[1]), int(f[2]), str(f[0]) in marked))
                    continue
                owners = listing.get(rel)
                if not owners:
                    raise ImageError(f"{what}: {rel} is in no listing of this layer's entries; refused")
                if any(size_ != header.size for _k, _d, size_, _x in owners):
                    raise ImageError(f"{what}: {rel} has {header.size} bytes, its listing says otherwise; refused")
                _write(contents, rel, header.size, [o for o in owners if o[0] in accept], incoming, what)
                for key, *_rest in owners:
                    if key in seen:
                        seen[key].add(rel)
            tar.rest()
        except tarball.TarFormatError as exc:
            raise ImageError(f"{what} is not a tar this tool reads ({exc}); refused") from None
    if reader.count != size or "sha256:" + reader.hash.hexdigest() != digest:
        raise ImageError(f"{what} does not match its digest ({reader.count} bytes read); refused",
                         hint="the registry served other bytes than the image names; do not trust it")
    ready = {}
    for key in accept:
        meta = metas.get(key)
        if meta is None:
            raise ImageError(f"{what} names entry {key[:24]}... but holds no listing of it; refused")
        missing = {str(f[0]) for f in meta["files"]} - seen[key]
        if missing:
            raise ImageError(f"{what}: entry {key[:24]}... lacks {len(missing)} listed file(s), e.g. "
                             f"{sorted(missing)[0]}; refused")
        _check_facts(meta, incoming.root(key), what)
        ready[key] = {**meta, "build_python": "", "pulled_from": image_digest,
                      "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return ready


def _kind(kind: bytes) -> str:
    return {tarfile.SYMTYPE: "symbolic link", tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "device file",
            tarfile.BLKTYPE: "device file", tarfile.FIFOTYPE: "FIFO"}.get(kind, "special member")


def _meta(data: bytes, key: str, content: str, interp: str, what: str) -> dict[str, Any]:
    """A portable entry.json: well formed, about this key, and giving the content digest the layer names."""
    files: list[list[Any]] = []
    executables: list[str] = []
    try:
        meta = json.loads(data)
        files = [[str(f[0]), str(f[1]), int(f[2])] for f in meta["files"]]
        executables = [str(x) for x in meta.get("executables", [])]
        ok = (meta.get("key") == key and meta.get("interpreter") == interp
              and meta.get("sha256") == key.split("-", 1)[1] and isinstance(meta.get("scripts"), dict)
              and isinstance(meta.get("record"), str) and isinstance(meta.get("wheel_facts"), dict))
    except (ValueError, KeyError, TypeError, IndexError):
        ok = False
    if not ok:
        raise ImageError(f"{what}: the listing of {key[:24]}... is not a store entry's listing for it; refused")
    for rel in (str(f[0]) for f in files):
        if rel.startswith(("/", "../")) or ".." in rel.split("/") or "\\" in rel or not rel:
            raise ImageError(f"{what}: the listing of {key[:24]}... names {rel!r}; refused")
    if meta.get("content_digest") != content or entry_digest(files, executables) != content:
        raise ImageError(f"{what}: the listing of {key[:24]}... does not give the content digest the image names; "
                         "refused")
    meta["files"], meta["executables"] = files, executables
    return dict(meta)


def _write(contents: Iterable[bytes], rel: str, size: int, owners: Iterable[tuple[str, str, int, bool]],
           incoming: IncomingEntries, what: str) -> None:
    """A member's bytes into the staging root of each entry that lists it (read-only, the entry mtime), hashed
    on the way; the first owner's file is written, the others are copies."""
    owners = list(owners)
    if not owners:  # an entry of the layer this pull does not take: read past it
        for _ in contents:
            pass
        return
    paths = [incoming.root(key) / rel for key, *_ in owners]
    h, written = hashlib.sha256(), 0
    executable = owners[0][3]
    incoming.folder(paths[0].parent)
    fd = os.open(paths[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o555 if executable else 0o444)
    try:
        for chunk in contents:
            h.update(chunk)
            written += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
        if os.utime in os.supports_fd:
            os.utime(fd, (ENTRY_MTIME, ENTRY_MTIME))
    finally:
        os.close(fd)
    if os.utime not in os.supports_fd:
        os.utime(paths[0], (ENTRY_MTIME, ENTRY_MTIME))
    got = record_form(h.digest())
    for key, digest, _size, _x in owners:
        if got != digest or written != size:
            raise ImageError(f"{what}: {rel} does not match the sha256 the listing of {key[:24]}... gives; refused")
    for extra in paths[1:]:
        incoming.folder(extra.parent)
        with open(paths[0], "rb") as src, open(extra, "xb") as dst:
            dst.write(src.read())
        os.chmod(extra, 0o555 if executable else 0o444)
        os.utime(extra, (ENTRY_MTIME, ENTRY_MTIME))


def _check_facts(meta: dict[str, Any], root: Any, what: str) -> None:
    """The scan facts the entry carries describe its files: every file under site-packages is in the facts'
    installed map with its hash (bytecode and the installer's own files aside), and start-up code is where the
    facts say: the scan that follows decides on them."""
    try:
        facts = WheelInfo.from_facts(meta["wheel_facts"])
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"{what}: the scan facts of {meta['key'][:24]}... are unreadable; refused") from None
    if facts.sha256 != meta["sha256"]:
        raise ImageError(f"{what}: the scan facts of {meta['key'][:24]}... are another wheel's; refused")
    site = posixpath.dirname(posixpath.dirname(str(meta["record"])))
    generated = {meta["record"], posixpath.join(posixpath.dirname(meta["record"]), "INSTALLER"),
                 posixpath.join(posixpath.dirname(meta["record"]), "REQUESTED")}
    for rel, digest, _size in meta["files"]:
        if not rel.startswith(site + "/") or rel in generated or "/__pycache__/" in rel or rel in meta["scripts"]:
            continue
        inside = rel[len(site) + 1:]
        described = facts.installed.get(f"purelib/{inside}")
        if described is None or (described.startswith("sha256=") and described != digest):  # sha512 rows: present
            raise ImageError(f"{what}: {rel} of {meta['key'][:24]}... is not what its scan facts describe; refused")
        path = root / rel
        found = startup_finding(inside, path.read_bytes)
        if found is not None and found[0] not in facts.startup:
            raise ImageError(f"{what}: {rel} of {meta['key'][:24]}... is start-up code its scan facts do not name; "
                             "refused")
