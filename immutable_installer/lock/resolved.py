"""What every resolver takes and gives: a request, the pins as soon as they are known, and the resolved
distributions (uv for any target, pip for this interpreter) behind one small Protocol."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from immutable_installer.core.model import Platform
    from immutable_installer.lock.wheel_facts import LockFacts


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
    facts: LockFacts | None = None  # import names and start-up code, once read (lock/wheel_facts.py)
    direct_url: str | None = None  # a direct-URL requirement (``name @ https://...whl``): its URL, no index
    local_path: str | None = None  # a local wheel requirement: its path as the user gave it, no index
    public_url: str | None = None  # where the file is published, when the source says (an adopted lock)


@dataclass(frozen=True)
class ResolveRequest:
    """One target's resolution: requirements and constraints, where to look, and for which Python/platform."""

    python_version: str
    implementation: str
    platform: Platform
    requirements: Sequence[str]
    constraints: Sequence[str]
    index_url: str | None
    extra_index_urls: Sequence[str]
    find_links: Sequence[str]
    no_index: bool
    isolated: bool
    label: str  # for messages: "variant cpu"
    prerelease: str | None = None  # uv's mode; None: the resolver's default (stable releases)
    exclude_newer: str | None = None  # ignore files uploaded after this date
    hashes: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name -> allowed sha256 (-r FILE --hash)


@dataclass
class Pending:
    """A resolution whose versions are known and whose wheels' metadata may still be arriving."""

    pins: list[tuple[str, str]]
    finish: Callable[[], list[Resolved]]
    warnings: list[str] = field(default_factory=list)  # e.g. a yanked release chosen because it is pinned with ==


class Resolver(Protocol):
    """A resolver the locker can use; raises ResolutionError (exit 1) with the resolver's own explanation."""

    name: str

    def resolve(self, request: ResolveRequest, pool: Executor | None = None) -> Pending: ...
