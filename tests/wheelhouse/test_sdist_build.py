"""`download` of a wheel the lock built from an sdist: from the cache of built wheels, else built again in the
sandbox and taken only when the bytes are the pinned ones (a build that is not reproducible is exit 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import PY, Index, make_sdist, make_wheel
from immutable_installer.core.errors import ExitCode, WheelhouseError
from immutable_installer.core.events import Message
from immutable_installer.core.model import Manifest
from immutable_installer.core.paths import cache_root
from immutable_installer.core.selection import select
from immutable_installer.core.spec import spec_from_requirements, with_command_line
from immutable_installer.lock.locker import Locker, LockOptions
from immutable_installer.wheelhouse.download import Downloader
from immutable_installer.wheelhouse.sdist_build import sandbox_available

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap contains sdist builds (.ci/run "
                                                                "installs it)")


def _locked(index: Index, build_code: str = "") -> Manifest:
    shutil.rmtree(cache_root() / "built", ignore_errors=True)
    make_wheel(index.root, "app", "2.0", requires=["dep==1.0"])
    make_sdist(index.root, "dep", "1.0", extra_build_code=build_code)
    spec = with_command_line(spec_from_requirements(["app"], PY, [], index.url, []), build=["dep"])
    return Locker().lock(spec, LockOptions())


def _download(manifest: Manifest, house: Path) -> list[object]:
    events: list[object] = []
    Downloader(house, reporter=events.append, use_configured_sources=False).download(
        select(manifest, manifest.default_variant, manifest.platforms[0]))
    return events


def test_a_built_wheel_comes_from_the_cache_of_built_wheels(index: Index, tmp_path: Path) -> None:
    manifest = _locked(index)
    events = _download(manifest, tmp_path / "house")
    assert (tmp_path / "house" / "dep-1.0-py3-none-any.whl").is_file()
    assert any(isinstance(e, Message) and "built from dep-1.0.tar.gz before" in e.text for e in events)


def test_a_built_wheel_missing_everywhere_is_built_again_to_the_same_bytes(index: Index, tmp_path: Path) -> None:
    manifest = _locked(index)
    shutil.rmtree(cache_root() / "built")
    events = _download(manifest, tmp_path / "house")
    assert any(isinstance(e, Message) and "building it again" in e.text for e in events)
    assert (tmp_path / "house" / "dep-1.0-py3-none-any.whl").is_file()  # placed only because the sha256 matched


def test_a_build_that_gives_other_bytes_is_refused_and_nothing_is_placed(index: Index, tmp_path: Path) -> None:
    manifest = _locked(index, build_code='FILES["dep/nonce.txt"] = os.urandom(8).hex()')  # not reproducible
    shutil.rmtree(cache_root() / "built")
    house = tmp_path / "house"
    with pytest.raises(WheelhouseError) as caught:
        _download(manifest, house)
    assert caught.value.exit_code == ExitCode.WHEELHOUSE and "other bytes are never used" in caught.value.message
    assert not (house / "dep-1.0-py3-none-any.whl").exists()
    left = {p.name for p in house.iterdir() if not p.name.startswith(".immutable-installer.lock")}
    assert left <= {"app-2.0-py3-none-any.whl"}, left  # no part file, no build folder, no other bytes
