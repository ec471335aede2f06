"""Where the tool keeps what outlives a command: the store and the caches (wheel facts, built wheels).

Tests point them elsewhere through the same variables, so a test never touches a user's real store or cache.
"""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "IMMUTABLE_INSTALLER_STORE"
CACHE_ENV = "IMMUTABLE_INSTALLER_CACHE"


def _xdg_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"))


def cache_root() -> Path:
    """``IMMUTABLE_INSTALLER_CACHE`` or ``~/.cache/immutable-installer`` (XDG_CACHE_HOME honoured)."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else _xdg_cache() / "immutable-installer"


def default_store() -> Path:
    """``IMMUTABLE_INSTALLER_STORE`` or ``~/.cache/immutable-installer/store`` (XDG_CACHE_HOME honoured)."""
    root = os.environ.get(STORE_ENV)
    return Path(root).expanduser() if root else _xdg_cache() / "immutable-installer" / "store"
