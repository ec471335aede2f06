"""Where images are kept: a registry spoken to with the OCI distribution API, or an OCI image layout folder.

Both answer the same few questions (``ImageStore``): is this blob here, take this blob, give me this manifest,
take this manifest. Every byte read from either is checked by the caller against the digest that names it;
writing to a layout checks it too (a registry checks what it is sent itself).

The registry client uses the tool's one network configuration (net_settings.py: trust, client certificate,
proxy), plain HTTP only for a registry on loopback (as docker does) or with ``--plain-http``, and the
credentials of oci/auth.py, sent as HTTP basic auth or exchanged for a bearer token as the registry's
challenge asks; they are written nowhere. A blob upload that fails in flight is started again from its first
byte (monolithic uploads are restartable; a registry keeps no half-written blob under the digest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from immutable_installer import net_settings
from immutable_installer.core.errors import ImageError, UsageError
from immutable_installer.oci.auth import credentials_for, helper_named
from immutable_installer.oci.reference import DIGEST_RE, LayoutReference, Reference

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join((MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_LIST))
MAX_MANIFEST = 4 << 20  # what registries accept (distribution's default): a larger answer is not a manifest
UPLOAD_ATTEMPTS = 3


class Unreachable(ImageError):
    """A request that did not get an answer (connection refused or cut): the one failure an upload retries; a
    layer whose source changed while it was read is not retried, its error stands."""

Body = Callable[[], Iterable[bytes]]  # a blob's bytes, from the start each time it is called


class ImageStore(Protocol):
    """A registry repository or an OCI layout."""

    name: str

    def has_blob(self, digest: str) -> bool: ...

    def put_blob(self, digest: str, size: int, body: Body) -> None: ...

    def stream_blob(self, body: Body) -> tuple[str, int]: ...

    def mount_blob(self, digest: str, source: ImageStore) -> bool: ...

    def open_blob(self, digest: str) -> BinaryIO: ...

    def get_manifest(self, ref: str) -> tuple[bytes, str]: ...

    def put_manifest(self, body: bytes, media_type: str, tag: str | None) -> None: ...


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Tally:
    """A body's bytes hashed and counted as they are sent (each send starts the count again)."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.hash = hashlib.sha256()
        self.size = 0

    def __call__(self) -> Iterator[bytes]:
        self.hash, self.size = hashlib.sha256(), 0
        for chunk in self.body():
            self.hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def checked_manifest(store: ImageStore, ref: str) -> tuple[bytes, str, str]:
    """(body, media type, digest) of a manifest; by digest, the body must hash to it."""
    body, media_type = store.get_manifest(ref)
    digest = sha256_of(body)
    if DIGEST_RE.match(ref) and digest != ref:
        raise ImageError(f"{store.name}: the manifest served for {ref} hashes to {digest}; refused")
    return body, media_type, digest


# --------------------------------------------------------------------------------------------- registry
class Registry:
    """One repository of one registry."""

    def __init__(self, ref: Reference, plain_http: bool = False, scope: str = "pull") -> None:
        self.ref = ref
        self.name = f"{ref.registry}/{ref.repository}"
        scheme = "http" if plain_http or ref.loopback else "https"
        self.base = f"{scheme}://{ref.registry}/v2/{ref.repository}"
        self.root = f"{scheme}://{ref.registry}/v2/"
        self.scope = scope
        self.auth: str | None = None
        self.network = net_settings.current()

    # -- transport
    def _open(self, method: str, url: str, headers: dict[str, str], data: Any = None) -> Any:
        request = urllib.request.Request(url, data=data, headers={"User-Agent": "immutable-installer", **headers},
                                         method=method)
        if self.auth and "Authorization" not in headers:
            request.add_header("Authorization", self.auth)
        return self.network.opener(url).open(request, timeout=self.network.timeout)

    def request(self, method: str, url: str, headers: dict[str, str] | None = None,
                body: Body | bytes | None = None, length: int | None = None) -> Any:
        """One request; a 401 is answered once with credentials (basic, or a token the challenge names)."""
        headers = dict(headers or {})
        if length is not None:
            headers["Content-Length"] = str(length)
        for attempt in (1, 2):
            data = body() if callable(body) else body
            try:
                return self._open(method, url, headers, data)
            except urllib.error.HTTPError as exc:
                if exc.code != 401 or attempt == 2:
                    raise
                self.auth = self._authenticate(exc.headers.get("WWW-Authenticate", ""))
            except (OSError, ValueError) as exc:
                raise Unreachable(f"{self.name}: {method} {_path(url)} failed: {_reason(exc)}",
                                 hint=f"is the registry {self.ref.registry} running and reachable? (plain HTTP "
                                      "is used only for loopback or with --plain-http)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _authenticate(self, challenge: str) -> str:
        creds = credentials_for(self.ref.registry)
        scheme, _, params = challenge.partition(" ")
        if creds is None:
            helper = helper_named(self.ref.registry)
            raise UsageError(f"{self.ref.registry} asks for credentials and none were found"
                             + (f" (a credential helper is named, {helper}, which this tool does not run)"
                                if helper else ""),
                             hint="log in with `docker login` or `podman login` (an auth file with the credentials "
                                  "inline), or set IMMUTABLE_INSTALLER_REGISTRY_USERNAME and _PASSWORD")
        basic = "Basic " + base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        if scheme.lower() == "basic":
            return basic
        if scheme.lower() != "bearer":
            raise UsageError(f"{self.ref.registry} asks for {scheme or 'an unknown'} authentication, which this tool "
                             "does not speak (basic and bearer tokens only)")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise ImageError(f"{self.ref.registry}: its token realm {realm!r} is not a URL")
        query = {"service": fields.get("service", ""), "scope": f"repository:{self.ref.repository}:{self.scope}"}
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode({k: v for k, v in query.items() if v})
        try:
            with self._open("GET", url, {"Authorization": basic}) as response:
                token = json.loads(response.read(1 << 20))
        except urllib.error.HTTPError as exc:
            raise UsageError(f"{self.ref.registry} refused the credentials from {creds.source} (HTTP {exc.code})",
                             hint="log in again, or check IMMUTABLE_INSTALLER_REGISTRY_USERNAME/_PASSWORD") from None
        except (OSError, ValueError) as exc:
            raise ImageError(f"{self.ref.registry}: no token from {realm} ({_reason(exc)})") from None
        value = token.get("token") or token.get("access_token") if isinstance(token, dict) else None
        if not isinstance(value, str):
            raise ImageError(f"{self.ref.registry}: the token answer from {realm} holds no token")
        return f"Bearer {value}"

    def _refused(self, exc: urllib.error.HTTPError, what: str) -> Exception:
        if exc.code == 401:
            creds = credentials_for(self.ref.registry)
            return UsageError(f"{self.ref.registry} refused the credentials from "
                              f"{creds.source if creds else 'nowhere'} ({what})",
                              hint="log in again, or check IMMUTABLE_INSTALLER_REGISTRY_USERNAME/_PASSWORD")
        if exc.code == 403:
            return UsageError(f"{self.ref.registry} does not allow this ({what}: HTTP 403)",
                              hint="check that these credentials may push to (or pull from) this repository")
        detail = _registry_error(exc)
        return ImageError(f"{self.name}: {what} failed: HTTP {exc.code}{': ' + detail if detail else ''}")

    # -- ImageStore
    def has_blob(self, digest: str) -> bool:
        try:
            with self.request("HEAD", f"{self.base}/blobs/{digest}"):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise self._refused(exc, f"HEAD blob {digest[:19]}") from None

    def mount_blob(self, digest: str, source: ImageStore) -> bool:
        """Ask the registry to link a blob another repository of it holds (a base image's layers)."""
        if not isinstance(source, Registry) or source.ref.registry != self.ref.registry:
            return False
        query = urllib.parse.urlencode({"mount": digest, "from": source.ref.repository})
        try:
            with self.request("POST", f"{self.base}/blobs/uploads/?{query}", length=0, body=b"") as response:
                return int(response.status) == 201
        except urllib.error.HTTPError:
            return False

    def put_blob(self, digest: str, size: int, body: Body) -> None:
        last = ""
        for _ in range(UPLOAD_ATTEMPTS):
            try:
                with self.request("POST", f"{self.base}/blobs/uploads/", length=0, body=b"") as started:
                    location = started.headers.get("Location", "")
                url = urllib.parse.urljoin(self.root, location)
                url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
                with self.request("PUT", url, {"Content-Type": "application/octet-stream"}, body=body,
                                  length=size) as done:
                    if int(done.status) in (201, 204):
                        return
                    last = f"HTTP {done.status}"
            except urllib.error.HTTPError as exc:
                if exc.code in (400, 401, 403, 404):
                    raise self._refused(exc, f"upload of {digest[:19]}") from None
                last = f"HTTP {exc.code}"
            except Unreachable as exc:  # the connection failed: try again; anything else is not the network's
                last = exc.message
        raise ImageError(f"{self.name}: the upload of {digest[:19]}... failed {UPLOAD_ATTEMPTS} times ({last})")

    def stream_blob(self, body: Body) -> tuple[str, int]:
        """Upload a blob whose digest is not known yet, hashing it as it is sent (one read of its sources, not
        two): the upload is started, the bytes streamed (chunked), and the digest given when it is closed."""
        last = ""
        for _ in range(UPLOAD_ATTEMPTS):
            tally = _Tally(body)
            try:
                with self.request("POST", f"{self.base}/blobs/uploads/", length=0, body=b"") as started:
                    location = started.headers.get("Location", "")
                with self.request("PATCH", urllib.parse.urljoin(self.root, location),
                                  {"Content-Type": "application/octet-stream"}, body=tally) as sent:
                    location = sent.headers.get("Location", location)
                url = urllib.parse.urljoin(self.root, location)
                url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": tally.digest})
                with self.request("PUT", url, length=0, body=b"") as done:
                    if int(done.status) in (201, 204):
                        return tally.digest, tally.size
                    last = f"HTTP {done.status}"
            except urllib.error.HTTPError as exc:
                if exc.code in (400, 401, 403, 404):
                    raise self._refused(exc, "a streamed upload") from None
                last = f"HTTP {exc.code}"
            except Unreachable as exc:  # the connection failed: try again; anything else is not the network's
                last = exc.message
        raise ImageError(f"{self.name}: a streamed upload failed {UPLOAD_ATTEMPTS} times ({last})")

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            response: BinaryIO = self.request("GET", f"{self.base}/blobs/{digest}")
            return response
        except urllib.error.HTTPError as exc:
            raise self._refused(exc, f"GET blob {digest[:19]}") from None

    def get_manifest(self, ref: str) -> tuple[bytes, str]:
        try:
            with self.request("GET", f"{self.base}/manifests/{ref}", {"Accept": ACCEPT}) as response:
                body = response.read(MAX_MANIFEST + 1)
                media_type = response.headers.get("Content-Type", "").split(";")[0]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise UsageError(f"{self.name} has no image {ref}",
                                 hint="check the reference (and the digest), or push it first") from None
            raise self._refused(exc, f"GET manifest {ref}") from None
        if len(body) > MAX_MANIFEST:
            raise ImageError(f"{self.name}: the manifest {ref} is larger than {MAX_MANIFEST} bytes; refused")
        return body, media_type

    def put_manifest(self, body: bytes, media_type: str, tag: str | None) -> None:
        ref = tag or sha256_of(body)
        try:
            with self.request("PUT", f"{self.base}/manifests/{ref}", {"Content-Type": media_type}, body=body,
                              length=len(body)) as response:
                answered = response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            raise self._refused(exc, f"PUT manifest {ref}") from None
        if answered and answered != sha256_of(body):
            raise ImageError(f"{self.name}: the registry stored the manifest as {answered}, not {sha256_of(body)}")


def _write_hashing(path: Path, body: Body) -> tuple[str, int]:
    """Write ``body`` to ``path``, hashing it on the way: (its ``sha256:`` digest, its size)."""
    h, written = hashlib.sha256(), 0
    with open(path, "wb") as fh:
        for chunk in body():
            h.update(chunk)
            written += len(chunk)
            fh.write(chunk)
    return "sha256:" + h.hexdigest(), written


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return str(reason) or type(exc).__name__


def _registry_error(exc: urllib.error.HTTPError) -> str:
    """The first error the registry's JSON answer names (OCI distribution's error format)."""
    try:
        data = json.loads(exc.read(1 << 16))
        first = data["errors"][0]
        return f"{first.get('code', '')} {first.get('message', '')}".strip()
    except Exception:
        return ""


# ----------------------------------------------------------------------------------------------- layout
class Layout:
    """An OCI image layout folder (``oci:DIR``): ``oci-layout``, ``index.json`` and ``blobs/sha256/``, as
    skopeo, umoci and the OCI spec read it."""

    def __init__(self, ref: LayoutReference, create: bool = False) -> None:
        self.ref = ref
        self.root = Path(os.path.abspath(ref.path))
        self.name = f"oci:{self.root}"
        if create:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
            marker = self.root / "oci-layout"
            if not marker.exists():
                marker.write_text('{"imageLayoutVersion":"1.0.0"}', encoding="utf-8")
        elif not (self.root / "oci-layout").is_file():
            raise UsageError(f"{self.root} is not an OCI image layout (no oci-layout file)",
                             hint="push to it first, or `skopeo copy docker://... oci:DIR`")

    def blob_path(self, digest: str) -> Path:
        if not DIGEST_RE.match(digest):
            raise ImageError(f"{self.name}: {digest!r} is not a sha256 digest")
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def mount_blob(self, digest: str, source: ImageStore) -> bool:
        return False

    def put_blob(self, digest: str, size: int, body: Body) -> None:
        target = self.blob_path(digest)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        try:
            got, written = _write_hashing(tmp, body)
            if got != digest or written != size:
                raise ImageError(f"{self.name}: a blob meant to be {digest[:19]}... ({size} bytes) came out as "
                                 f"{got[:19]}... ({written} bytes)")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def stream_blob(self, body: Body) -> tuple[str, int]:
        tmp = self.root / "blobs" / "sha256" / f".stream.{os.getpid()}.part"
        try:
            digest, written = _write_hashing(tmp, body)
            os.replace(tmp, self.blob_path(digest))
            return digest, written
        finally:
            tmp.unlink(missing_ok=True)

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except OSError:
            raise ImageError(f"{self.name} has no blob {digest}") from None

    def _index(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "index.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"schemaVersion": 2, "manifests": []}
        except (OSError, ValueError) as exc:
            raise ImageError(f"{self.name}: index.json is unreadable ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("manifests"), list):
            raise ImageError(f"{self.name}: index.json is not an OCI index")
        return data

    def get_manifest(self, ref: str) -> tuple[bytes, str]:
        digest = ref if DIGEST_RE.match(ref) else None
        media_type = MANIFEST
        if digest is None:
            for item in self._index()["manifests"]:
                if isinstance(item, dict) and (item.get("annotations") or {}).get(
                        "org.opencontainers.image.ref.name") == ref:
                    digest, media_type = str(item.get("digest")), str(item.get("mediaType") or MANIFEST)
            if digest is None:
                raise UsageError(f"{self.name} has no image tagged {ref}")
        path = self.blob_path(digest)
        if not path.is_file() or path.stat().st_size > MAX_MANIFEST:
            raise UsageError(f"{self.name} has no image {ref}")
        return path.read_bytes(), media_type

    def put_manifest(self, body: bytes, media_type: str, tag: str | None) -> None:
        digest = sha256_of(body)
        self.put_blob(digest, len(body), lambda: [body])
        index = self._index()
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
        if tag:
            entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        def replaced(item: Any) -> bool:  # the same tag moves to this manifest; the same manifest is listed once
            if not isinstance(item, dict):
                return False
            named = (item.get("annotations") or {}).get("org.opencontainers.image.ref.name")
            return bool(tag and named == tag) or item.get("digest") == digest

        kept = [m for m in index["manifests"] if not replaced(m)]
        index["manifests"] = [*kept, entry]
        tmp = self.root / f".index.json.{os.getpid()}"
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / "index.json")


def open_store(ref: Reference | LayoutReference, plain_http: bool = False, push: bool = False) -> ImageStore:
    """The registry repository or layout a reference names (a layout is created when pushing)."""
    if isinstance(ref, LayoutReference):
        return Layout(ref, create=push)
    return Registry(ref, plain_http, "pull,push" if push else "pull")


def read_blob(store: ImageStore, digest: str, limit: int) -> bytes:
    """A small blob (a config), checked against its digest, at most ``limit`` bytes."""
    with store.open_blob(digest) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"{store.name}: blob {digest[:19]}... is larger than {limit} bytes; refused")
    if sha256_of(data) != digest:
        raise ImageError(f"{store.name}: blob {digest[:19]}... does not match its digest; refused")
    return data


def chunks_of(fh: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk
