"""Requirements and markers, parsed once and evaluated for a target: the one filter shared by validation, lock,
the scanner and the verifier (the same few thousand strings are evaluated for every variant and platform, so
parsing and evaluation are cached). Pure."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Protocol

from packaging.markers import Marker
from packaging.requirements import Requirement


class Pinned(Protocol):
    """What the filter needs of a pin (a manifest's ``Package``): the model imports this module, not the reverse."""

    @property
    def requires_dist(self) -> tuple[str, ...]: ...

    @property
    def extras(self) -> tuple[str, ...]: ...


@functools.lru_cache(maxsize=8192)
def parse_requirement(text: str) -> Requirement:
    """Parsed once: validation, lock, scan and verify evaluate the same few thousand strings many times."""
    return Requirement(text)


@functools.lru_cache(maxsize=1024)
def parse_marker(text: str) -> Marker:
    return Marker(text)


@functools.lru_cache(maxsize=65536)
def marker_holds(marker: str, env_items: tuple[tuple[str, str], ...]) -> bool:
    """A marker's value in an environment (cached: the same pairs recur for every variant)."""
    return parse_marker(marker).evaluate(dict(env_items))


def applicable_requirements(requires: Iterable[str], extras: Iterable[str],
                            env: Mapping[str, str]) -> list[tuple[int, Requirement]]:
    """(index, requirement) of the ``Requires-Dist`` entries that apply in ``env`` with the requested extras.

    The one filter shared by validation, lock, the scanner and the verifier; parsing and marker evaluation are
    cached, since the same few thousand strings are evaluated for every variant and platform.
    """
    base = tuple(sorted((k, v) for k, v in env.items() if k != "extra"))
    wanted = ("", *sorted(extras))
    out = []
    for j, text in enumerate(requires):
        req = parse_requirement(text)
        if req.marker is None or any(marker_holds(str(req.marker), (*base, ("extra", e))) for e in wanted):
            out.append((j, req))
    return out


def active_requirements(pkg: Pinned, env: Mapping[str, str]) -> list[Requirement]:
    """The requirements of a pinned package that apply in ``env``."""
    return [req for _, req in applicable_requirements(pkg.requires_dist, pkg.extras, env)]
