"""Platform tag arithmetic: the tags a target platform accepts (pure, used by lock and download)."""

from __future__ import annotations

from collections.abc import Iterable


def expand_platform_tags(tags: Iterable[str]) -> list[str]:
    """pip's ``--platform`` does not expand ``manylinux_2_28`` to older glibc tags: do it here."""
    out: list[str] = []
    for tag in tags:
        out.append(tag)
        parts = tag.split("_", 3)
        if tag.startswith("manylinux_2_") and len(parts) == 4 and parts[2].isdigit():
            arch = parts[3]
            for minor in range(int(parts[2]) - 1, 4, -1):
                out.append(f"manylinux_2_{minor}_{arch}")
            legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
            out += [f"{name}_{arch}" for minor, name in legacy.items() if minor <= int(parts[2])]
            out.append(f"linux_{arch}")
    seen: set[str] = set()
    return [t for t in out if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]

