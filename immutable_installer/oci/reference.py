"""Image references as people write them: ``host[:port]/path[:tag][@sha256:...]`` for a registry (the docker
grammar; Docker Hub's short names too) and ``oci:DIR[:TAG][@sha256:...]`` for an OCI image layout on disk.

Only sha256 digests are accepted: content is trusted by digest, and a weaker algorithm would be a weaker pin.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

from immutable_installer.core.errors import UsageError

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
DOCKER_HUB = "registry-1.docker.io"


@dataclass(frozen=True)
class Reference:
    """An image in a registry."""

    registry: str  # host[:port], as the API is reached
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}"
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def loopback(self) -> bool:
        """A registry on this machine: spoken to over plain HTTP, as docker does for loopback."""
        host = self.registry.rsplit(":", 1)[0] if not self.registry.startswith("[") else \
            self.registry[1:self.registry.index("]")]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def pinned(self, digest: str) -> Reference:
        """The image by digest alone (``registry/repo@sha256:...``): what every client reads (skopeo refuses a
        tag and a digest together)."""
        return replace(self, tag=None, digest=digest)


@dataclass(frozen=True)
class LayoutReference:
    """An image in an OCI image layout folder (``oci:DIR[:TAG]``)."""

    path: Path
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def pinned(self, digest: str) -> LayoutReference:
        return replace(self, tag=None, digest=digest)


ImageReference = Reference | LayoutReference


def parse_reference(text: str, what: str = "REF") -> ImageReference:
    """One reference; UsageError (exit 2) naming what is wrong with it."""
    def bad(why: str) -> UsageError:
        return UsageError(f"{what} {text!r}: {why}",
                          hint="write it as host[:port]/path[:tag][@sha256:<64 hex>] or oci:DIR[:TAG]")

    rest, _, digest = text.partition("@")
    if digest and not DIGEST_RE.match(digest):
        raise bad(f"{digest!r} is not a sha256 digest (only sha256:<64 lowercase hex> pins an image)")
    if rest.startswith("oci:"):
        location, tag = rest[4:], None
        head, sep, last = location.rpartition(":")
        if sep and "/" not in last and _TAG.match(last):
            location, tag = head, last
        if not location:
            raise bad("no folder after oci:")
        return LayoutReference(Path(location), tag, digest or None)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise bad(f"{tag!r} is not a tag")
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"
                           or parts[0].startswith("[")):
        registry, path = parts[0], parts[1:]
        if not _HOST.match(registry):
            raise bad(f"{registry!r} is not a registry host")
    else:
        registry, path = DOCKER_HUB, (parts if len(parts) > 1 else ["library", *parts])
    if not path or not all(_COMPONENT.match(p) for p in path):
        raise bad("the repository must be lowercase path components (letters, digits, . _ -)")
    if not tag and not digest:
        tag = "latest"
    return Reference(registry, "/".join(path), tag, digest or None)
