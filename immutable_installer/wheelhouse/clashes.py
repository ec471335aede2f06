"""File clashes: two wheels of one environment that would install the same path with different contents.

pip installs wheels one after the other and lets the later one overwrite the earlier silently (the classic
case: ``opencv-python`` and ``opencv-python-headless`` both ship ``cv2/``), so the environment depends on the
install order. This check runs on the wheels themselves, before anything is built. The same path with the
same bytes (empty ``__init__.py`` files of a shared namespace, shipped by several wheels) is not a clash: the
environment is the same whichever wheel wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Clash:
    """One path two wheels both install, with different contents."""

    path: str
    first: str
    second: str

    def describe(self) -> str:
        scheme, _, rest = self.path.partition("/")
        where = rest if scheme == "purelib" else f"{rest} ({scheme})"
        return f"{where} is shipped by both {self.first} and {self.second}"


def find_clashes(files_by_wheel: Mapping[str, Mapping[str, str]]) -> list[Clash]:
    """Clashes among wheels (filename -> installed path -> content identity), in a stable order."""
    owner: dict[str, tuple[str, str]] = {}
    clashes: list[Clash] = []
    for wheel in sorted(files_by_wheel):
        for path, ident in sorted(files_by_wheel[wheel].items()):
            seen = owner.get(path)
            if seen is None:
                owner[path] = (wheel, ident)
            elif seen[1] != ident:
                clashes.append(Clash(path, seen[0], wheel))
    return clashes
