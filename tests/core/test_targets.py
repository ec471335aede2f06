"""Lock targets: a plain-requirements lock targets the machine running it (a Windows host locks for Windows)."""

from __future__ import annotations

import sys

import pytest

from immutable_installer.core import targets
from immutable_installer.core.spec import spec_from_requirements


@pytest.mark.parametrize(("system", "machine", "tag"), [
    ("win32", "AMD64", "win_amd64"), ("win32", "ARM64", "win_arm64"), ("linux", "x86_64", "manylinux_2_28_x86_64"),
    ("linux", "aarch64", "manylinux_2_28_aarch64"), ("darwin", "arm64", "macosx_11_0_arm64"),
    ("darwin", "x86_64", "macosx_10_12_x86_64"),
])
def test_host_platform_tag(monkeypatch: pytest.MonkeyPatch, system: str, machine: str, tag: str) -> None:
    monkeypatch.setattr(targets.sys, "platform", system)
    monkeypatch.setattr(targets.platform, "machine", lambda: machine)
    assert targets.host_platform_tag() == tag
    assert targets.platform_for(tag).tags == (tag,)  # a tag the locker knows


def test_plain_requirements_default_to_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets.sys, "platform", "win32")
    monkeypatch.setattr(targets.platform, "machine", lambda: "AMD64")
    spec = spec_from_requirements(["alpha"], targets.host_python(), [], "https://pypi.org/simple", [])
    assert [p.name for p in spec.platforms] == ["win_amd64"]
    assert spec.platforms[0].environment["sys_platform"] == "win32"
    assert spec.python.version == f"{sys.version_info.major}.{sys.version_info.minor}"
