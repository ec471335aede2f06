"""``lock --build NAME``: an sdist-only dependency built once, pinned by the built wheel's sha256 with its
provenance, reused from the cache of built wheels, and built again to the same bytes."""

from __future__ import annotations

import shutil

import pytest

from conftest import PY, Index, make_sdist, make_wheel, sha256
from immutable_installer.core.events import HeldBack, Message
from immutable_installer.core.paths import cache_root
from immutable_installer.core.spec import spec_from_requirements, with_command_line
from immutable_installer.lock.locker import Locker, LockOptions
from immutable_installer.wheelhouse.sdist_build import sandbox_available

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="bubblewrap contains sdist builds (.ci/run "
                                                                "installs it); tests/adversarial tests the refusal")


@pytest.fixture
def stack(index: Index) -> Index:
    make_wheel(index.root, "app", "1.0")
    make_wheel(index.root, "app", "2.0", requires=["dep==1.0"])
    make_sdist(index.root, "dep", "1.0", requires=["leaf>=1"])
    make_wheel(index.root, "leaf", "1.0")
    return index


@pytest.fixture(autouse=True)
def _no_built_wheels() -> None:
    shutil.rmtree(cache_root() / "built", ignore_errors=True)  # the test session's private cache


def _lock(index: Index, reqs: list[str], build: list[str]) -> tuple[object, list[object]]:
    events: list[object] = []
    spec = with_command_line(spec_from_requirements(reqs, PY, [], index.url, []), build=build)
    return Locker(reporter=events.append).lock(spec, LockOptions()), events


def test_the_sdist_is_built_and_the_built_wheel_pinned_with_its_provenance(stack: Index) -> None:
    manifest, events = _lock(stack, ["app"], ["dep"])
    pins = {p.name: p for p in manifest.packages}  # type: ignore[attr-defined]
    assert {n: p.version for n, p in pins.items()} == {"app": "2.0", "dep": "1.0", "leaf": "1.0"}
    built = pins["dep"].files[0]
    assert built.filename == "dep-1.0-py3-none-any.whl" and built.build is not None
    assert built.build.sdist == "dep-1.0.tar.gz" and built.build.sdist_sha256 == sha256(stack.root / "dep-1.0.tar.gz")
    assert built.build.backend == "backend" and built.build.sdist_url.endswith("/files/dep-1.0.tar.gz")
    assert pins["dep"].requires_dist == ("leaf>=1",)  # read from the built wheel
    assert not [e for e in events if isinstance(e, HeldBack)]
    assert any(isinstance(e, Message) and "built dep-1.0-py3-none-any.whl" in e.text for e in events)


def test_a_wheel_is_built_once_and_a_second_build_gives_the_same_bytes(stack: Index) -> None:
    first, _ = _lock(stack, ["app"], ["dep"])
    again, events = _lock(stack, ["app"], ["dep"])
    assert any(isinstance(e, Message) and "built before" in e.text for e in events)
    assert not any(isinstance(e, Message) and e.text.startswith("built ") for e in events)
    shutil.rmtree(cache_root() / "built")
    rebuilt, events = _lock(stack, ["app"], [":all:"])
    assert any(isinstance(e, Message) and e.text.startswith("built ") for e in events)
    shas = [{f.filename: f.sha256 for p in m.packages for f in p.files} for m in (first, again, rebuilt)]  # type: ignore[attr-defined]
    assert shas[0] == shas[1] == shas[2]  # SOURCE_DATE_EPOCH from the sdist, a fixed umask: reproducible


def test_a_name_not_given_to_build_is_never_built(stack: Index) -> None:
    manifest, events = _lock(stack, ["app"], ["leaf"])
    assert {p.name: p.version for p in manifest.packages} == {"app": "1.0"}  # type: ignore[attr-defined]
    assert [e.package for e in events if isinstance(e, HeldBack)] == ["app"]
    assert not (cache_root() / "built").exists()
