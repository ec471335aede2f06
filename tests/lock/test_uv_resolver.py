"""Choosing the target's wheel among those uv's lock lists."""

from __future__ import annotations

from packaging.tags import Tag

from immutable_installer.core.targets import platform_for, uv_platform
from immutable_installer.lock import uv_resolver


def test_best_wheel_is_the_targets_best_tag() -> None:
    win = platform_for("windows")
    tags = uv_resolver.target_tags("3.11", win)
    wheels = [{"url": f"https://x/pkg-1.0-{t}.whl"} for t in
              ("cp311-cp311-manylinux_2_28_x86_64", "cp311-cp311-win_amd64", "py3-none-any", "cp311-abi3-win_amd64")]
    assert uv_resolver.best_wheel(wheels, tags) == wheels[1]
    assert Tag("cp311", "cp311", "win_amd64") in tags and uv_platform(win) == "x86_64-pc-windows-msvc"
    assert uv_resolver.best_wheel(wheels[:1], tags) is None  # a Linux-only pin has nothing for Windows


