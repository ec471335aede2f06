"""Progress events: services report through a callback and never print.

The CLI swaps in a renderer (rich for people, JSON lines for programs); tests pass a list's ``append``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base class; ``kind`` is the ``event`` field of the JSON line."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data = {"event": getattr(self, "kind", type(self).__name__.lower()), **data}
        return data


@dataclass(frozen=True)
class Phase(Event):
    """A phase starts: resolve, download, scan, build, install, shims, verify, switch."""

    name: str
    message: str = ""
    kind: str = field(default="phase", init=False)


@dataclass(frozen=True)
class Progress(Event):
    """Progress inside a phase: ``done`` of ``total`` units (bytes, files, packages or checks)."""

    phase: str
    done: float
    total: float | None = None
    unit: str = "items"
    item: str = ""
    kind: str = field(default="progress", init=False)


@dataclass(frozen=True)
class Message(Event):
    """A line worth showing a person (info, warn)."""

    level: str
    text: str
    kind: str = field(default="message", init=False)


@dataclass(frozen=True)
class HeldBack(Event):
    """`lock`: a package pinned below its newest release for the target (or at a pre-release), and why."""

    package: str
    pinned: str
    newest: str
    requested: bool
    reason: str
    hint: str = ""
    prerelease: bool = False
    target: str = ""
    kind: str = field(default="held_back", init=False)

    @property
    def text(self) -> str:
        if self.prerelease:
            what = f"{self.package} {self.pinned} is a pre-release" + (
                "" if self.pinned == self.newest else f", chosen over its newest stable release {self.newest}")
        else:
            what = f"{self.package} is pinned at {self.pinned}, not its newest release {self.newest}"
        return f"{what}: {self.reason}" + (f" ({self.hint})" if self.hint else "")


@dataclass(frozen=True)
class PlanMade(Event):
    """`install`: the plan it runs (the same document `install --dry-run` prints: steps, entries)."""

    plan: dict[str, Any]
    kind: str = field(default="plan", init=False)


@dataclass(frozen=True)
class PhaseDone(Event):
    """A phase ended, with its duration in seconds."""

    name: str
    seconds: float
    kind: str = field(default="phase_done", init=False)


Reporter = Callable[[Event], None]


def null_reporter(event: Event) -> None:
    """Discard events: the default for library use and for tests that do not look at progress."""
