"""Runtime shims shipped into every environment the engine builds.

The modules beside this file are *copied* into the target's site-packages; they never import ``installer``
and import only ``sys`` and ``os`` at start-up. ``files()`` lists them for the engine.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
SHIM_MODULES = ("_immutable_boot.py", "_immutable_blocker.py", "_immutable_hf_patch.py")
PTH_NAME = "zz_immutable_installer.pth"  # sorts after distutils-precedence.pth, so the blocker stays first
START_NAME = "zz_immutable_installer.start"  # PEP 829 (Python 3.15+): the same boot as an entry point
CONFIG_MODULE = "_immutable_shims_config"


def files() -> list[Path]:
    """The module files to copy (the .pth and the config are written by the engine)."""
    return [HERE / name for name in SHIM_MODULES]
