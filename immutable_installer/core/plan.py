"""What an install would do: manifest + variant + wheelhouse audit -> ordered install steps. Pure.

Drives `install --dry-run`, which touches nothing: the groups in order, each with its pinned wheels and
whether the wheelhouse already holds them with the right hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from immutable_installer.core.manifest import Manifest


@dataclass(frozen=True)
class PlannedWheel:
    name: str
    version: str
    filename: str
    sha256: str
    state: str  # present | missing | bad-hash


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

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "platform": self.platform,
                "steps": [{"group": s.group, "number": s.number, "of": s.of,
                           "wheels": [w.__dict__ for w in s.wheels]} for s in self.steps],
                "to_fetch": [w.filename for w in self.to_fetch()]}


def make_plan(manifest: Manifest, variant: str, platform: str, present: set[str], bad: set[str]) -> Plan:
    """``present``/``bad``: filenames the wheelhouse audit found with the right / a wrong sha256."""
    packages = manifest.packages_for(variant, platform)
    groups = [g for g in manifest.groups if any(p.group == g for p in packages)]
    steps = []
    for k, group in enumerate(groups, 1):
        wheels = []
        for pkg in packages:
            wheel = pkg.file_for(platform)
            if pkg.group != group or wheel is None:
                continue
            state = "present" if wheel.filename in present else "bad-hash" if wheel.filename in bad else "missing"
            wheels.append(PlannedWheel(pkg.name, pkg.version, wheel.filename, wheel.sha256, state))
        steps.append(Step(group, k, len(groups), tuple(wheels)))
    return Plan(variant, platform, tuple(steps))
