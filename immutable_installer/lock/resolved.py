"""One resolved distribution, whichever resolver produced it (uv for any target, pip for this interpreter)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resolved:
    """A pinned distribution with the one wheel the target installs and that wheel's ``Requires-Dist``."""

    name: str
    version: str
    filename: str
    sha256: str
    source_url: str
    requires_dist: tuple[str, ...]
    requested: bool = False
    size: int | None = None
