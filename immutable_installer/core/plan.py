"""What an install would do: selection + wheelhouse audit + store state -> ordered install steps. Pure.

Drives `install --dry-run`, which touches nothing: the groups in order, each with its pinned wheels, whether
the wheelhouse already holds them with the right hash, and whether the store already holds each as an entry
(linked in seconds) or will unpack and compile it (the cold path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from immutable_installer.core.markers import active_requirements
from immutable_installer.core.names import canonical
from immutable_installer.core.selection import Selection


@dataclass(frozen=True)
class PlannedWheel:
    name: str
    version: str
    filename: str
    sha256: str
    state: str  # present | missing | bad-hash
    store: str = "new"  # stored (an entry exists: linked) | new (unpacked and compiled once)
    size: int | None = None  # the wheel file's bytes (the manifest's pin)
    unpacked: int | None = None  # its files' bytes once unpacked (read from the wheel, when the wheelhouse has it)
    requires: tuple[str, ...] = ()  # selected packages it requires here (the dependency graph's edges)


@dataclass(frozen=True)
class Step:
    group: str
    number: int
    of: int
    wheels: tuple[PlannedWheel, ...]


@dataclass(frozen=True)
class Plan:
    variant: str
    platform: str
    steps: tuple[Step, ...]

    def to_fetch(self) -> list[PlannedWheel]:
        return [w for s in self.steps for w in s.wheels if w.state != "present"]

    def disk(self) -> dict[str, int | None]:
        """What the install would cost on disk: bytes to download, and bytes the store grows by (unpacked files
        of new entries, before bytecode; None when a wheel is not yet here to be measured). A generation links
        the store's files, so with hard links or clones it costs almost nothing itself."""
        wheels = [w for s in self.steps for w in s.wheels]
        new = [w for w in wheels if w.store == "new"]
        grows = None if any(w.unpacked is None for w in new) else sum(w.unpacked or 0 for w in new)
        return {"download": sum(w.size or 0 for w in self.to_fetch()), "store_new": grows,
                "unpacked_total": None if any(w.unpacked is None for w in wheels)
                else sum(w.unpacked or 0 for w in wheels)}

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "platform": self.platform,
                "steps": [{"group": s.group, "number": s.number, "of": s.of,
                           "wheels": [{**w.__dict__, "requires": list(w.requires)} for w in s.wheels]}
                          for s in self.steps],
                "to_fetch": [w.filename for w in self.to_fetch()],
                "to_store": [w.filename for s in self.steps for w in s.wheels if w.store == "new"],
                "disk": self.disk()}


def make_plan(selection: Selection, present: set[str], bad: set[str], stored: set[str] | None = None,
              unpacked: dict[str, int] | None = None) -> Plan:
    """``present``/``bad``: filenames the wheelhouse audit found with the right / a wrong sha256; ``stored``:
    sha256 of the wheels the store already holds for the target interpreter; ``unpacked``: filename -> bytes
    of its files, for the wheels that were read."""
    groups = selection.groups
    env = dict(selection.environment)
    selected = {n.package.name for n in selection.wheels}
    steps = []
    for k, group in enumerate(groups, 1):
        wheels = []
        for item in selection.in_group(group):
            wheel = item.wheel
            state = "present" if wheel.filename in present else "bad-hash" if wheel.filename in bad else "missing"
            requires = sorted({canonical(r.name) for r in active_requirements(item.package, env)} & selected)
            wheels.append(PlannedWheel(item.package.name, item.package.version, wheel.filename, wheel.sha256, state,
                                       "stored" if wheel.sha256 in (stored or set()) else "new", wheel.size,
                                       (unpacked or {}).get(wheel.filename), tuple(requires)))
        steps.append(Step(group, k, len(groups), tuple(wheels)))
    return Plan(selection.variant, selection.platform.name, tuple(steps))
