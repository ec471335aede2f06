"""The selection: what one command works on, computed once and handed down (never recomputed by a stage).

The manifest, the chosen variant and platform, the platform's marker environment, and the wheels in install
order with their groups. Download, scan, the store and the generation all take this object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from immutable_installer.core.model import Manifest, Package, Platform, WheelFile


@dataclass(frozen=True)
class Needed:
    """A wheel the chosen variant needs on the chosen platform."""

    package: Package
    wheel: WheelFile


@dataclass(frozen=True)
class Selection:
    """One manifest, one variant, one platform: the wheels to install, in group order."""

    manifest: Manifest
    variant: str
    platform: Platform
    environment: tuple[tuple[str, str], ...]
    wheels: tuple[Needed, ...]

    @property
    def groups(self) -> list[str]:
        """The manifest's groups that hold at least one selected wheel, in install order."""
        used = {n.package.group for n in self.wheels}
        return [g for g in self.manifest.groups if g in used]

    def in_group(self, group: str) -> list[Needed]:
        return [n for n in self.wheels if n.package.group == group]


def select(manifest: Manifest, variant: str, platform: Platform) -> Selection:
    """The selection for ``variant`` on ``platform`` (markers evaluated for that platform's Python)."""
    wheels = []
    for pkg in manifest.packages_for(variant, platform.name):
        wheel = pkg.file_for(platform.name)
        if wheel is not None:
            wheels.append(Needed(pkg, wheel))
    env = tuple(sorted(manifest.python.marker_environment(platform).items()))
    return Selection(manifest, variant, platform, env, tuple(wheels))
