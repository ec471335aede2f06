"""Re-locking the shipped inputs keeps every pin and writes the same bytes (needs PyPI: about 80 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from immutable_installer.core.manifest import load_manifest
from immutable_installer.core.serialize import dump_manifest
from immutable_installer.core.spec import load_spec
from immutable_installer.lock.locker import Locker, LockOptions

pytestmark = [pytest.mark.network, pytest.mark.slow]


def test_relock_of_the_shipped_spec_is_byte_identical() -> None:
    shipped = REPO / "metadata" / "dependencies.json"
    # this machine reaches the PyTorch index only through its pip configuration (a local mirror): opted in
    manifest = Locker().lock(load_spec(REPO / "metadata" / "requirements.toml"), LockOptions(isolated=False),
                             load_manifest(shipped))
    new, old = dump_manifest(manifest).decode(), Path(shipped).read_text()
    import difflib

    assert new == old, "a re-lock keeps every pin and the bytes:\n" + "".join(
        list(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "shipped", "re-locked"))[:60])
