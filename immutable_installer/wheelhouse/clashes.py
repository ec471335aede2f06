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


def find_clashes(files_by_wheel: Mapping[str, Mapping[str, str]], case_insensitive: bool = False) -> list[Clash]:
    """Clashes among wheels (filename -> installed path -> content identity), in a stable order.

    ``case_insensitive`` for a target whose file systems fold case (Windows, macOS): ``Pkg/a.py`` and ``pkg/a.py``
    are one file there (two members of one wheel too), and a member named with a backslash is a path of other
    folders there than here."""
    owner: dict[str, tuple[str, str, str]] = {}
    clashes: list[Clash] = []
    for wheel in sorted(files_by_wheel):
        for path, ident in sorted(files_by_wheel[wheel].items()):
            if case_insensitive and "\\" in path:
                clashes.append(Clash(path, wheel, f"{wheel} (a backslash in a member name: another path there)"))
                continue
            key = path.casefold() if case_insensitive else path
            seen = owner.get(key)
            if seen is None:
                owner[key] = (wheel, ident, path)
            elif seen[1] != ident or seen[2] != path:
                clashes.append(Clash(path, seen[0], wheel))
    return clashes
