"""What a CUDA build of torch needs from the machine: the driver minimum of its CUDA version and the oldest GPU
architecture (compute capability) the build carries code for. Pure tables; sources in docs/hardware.md.

A lock writes both into each CUDA variant (unless the spec says otherwise); `--variant auto` never picks a
variant the driver or the GPU cannot run, and an explicit CUDA variant is refused on a machine whose driver or
GPU is known to be too old.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

# CUDA version (major.minor) -> the minimum driver (Linux) of that CUDA toolkit. 12.x builds run on any 12.x
# driver from 525.60.13 under minor-version compatibility; 12.8 and the 13.x releases name their own.
DRIVER_MINIMUMS: dict[str, str] = {"12.8": "570.26", "13.0": "580.65.06", "13.2": "595.45.04"}
CUDA12_COMPATIBLE_DRIVER = "525.60.13"

# CUDA version -> the oldest compute capability PyTorch's wheels of that CUDA version are built for (PyTorch's
# release matrix from 2.10 on: 12.6 keeps Maxwell 5.0 to Hopper; 12.8 and 13.0 start at Turing 7.5).
ARCH_MINIMUMS: dict[str, str] = {"12.6": "5.0", "12.8": "7.5", "12.9": "7.5", "13.0": "7.5", "13.1": "7.5",
                                 "13.2": "7.5"}


def version_or_none(text: str | None) -> Version | None:
    """A driver, CUDA or compute-capability version, or None when absent or unreadable."""
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def _inherited(table: dict[str, str], version: Version) -> str | None:
    """What the newest version the table lists below ``version`` needs: a newer CUDA never asks less of the
    machine than an older one (a future 13.x release is at least as strict as 13.2), None when none is older."""
    older = [(Version(cuda), need) for cuda, need in table.items() if Version(cuda) < version]
    return max(older, key=lambda item: (Version(item[1]), item[0]))[1] if older else None


def min_driver_for(cuda: str | None) -> str | None:
    """The driver minimum of a CUDA version, or None when nothing is known (before CUDA 12)."""
    version = version_or_none(cuda)
    if cuda is None or version is None:
        return None
    if cuda in DRIVER_MINIMUMS:
        return DRIVER_MINIMUMS[cuda]
    inherited = _inherited(DRIVER_MINIMUMS, version)
    if inherited is not None:
        return inherited
    return CUDA12_COMPATIBLE_DRIVER if version.major == 12 else None


def min_compute_capability_for(cuda: str | None) -> str | None:
    """The oldest GPU architecture a torch build for this CUDA version runs on, or None when unknown."""
    version = version_or_none(cuda)
    if cuda is None or version is None:
        return None
    return ARCH_MINIMUMS.get(cuda) or _inherited(ARCH_MINIMUMS, version)


def at_least(have: str | None, need: str | None) -> bool | None:
    """Whether version ``have`` meets ``need``; None when either is unknown."""
    h, n = version_or_none(have), version_or_none(need)
    if h is None or n is None:
        return None
    return h >= n
