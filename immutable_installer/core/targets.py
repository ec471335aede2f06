"""Lock targets: a platform tag or a friendly name -> the platform entry with its real marker environment.

A lock for Windows must evaluate ``sys_platform == "win32"`` as true; so every platform entry carries the
PEP 508 values of its target (``os_name``, ``sys_platform``, ``platform_system``, ``platform_machine``), and the
resolver is told the target (immutable_installer/lock/uv_resolver.py), never the machine running it.
"""

from __future__ import annotations

import platform
import re
import sys

from immutable_installer.core.errors import UsageError
from immutable_installer.core.model import Platform

FRIENDLY = {
    "linux": "manylinux_2_28_x86_64", "linux-x86_64": "manylinux_2_28_x86_64",
    "linux-aarch64": "manylinux_2_28_aarch64", "linux-arm64": "manylinux_2_28_aarch64",
    "windows": "win_amd64", "win": "win_amd64", "windows-x86_64": "win_amd64", "windows-arm64": "win_arm64",
    "macos": "macosx_11_0_arm64", "macos-arm64": "macosx_11_0_arm64", "macos-x86_64": "macosx_10_12_x86_64",
}


def host_platform_tag() -> str:
    """The lock target of this machine, for plain requirements: a Windows host locks for Windows."""
    machine = platform.machine().lower()
    arm = machine in ("arm64", "aarch64")
    if sys.platform == "win32":
        return "win_arm64" if arm else "win_amd64"
    if sys.platform == "darwin":
        return "macosx_11_0_arm64" if arm else "macosx_10_12_x86_64"
    return "manylinux_2_28_aarch64" if arm else "manylinux_2_28_x86_64"


def host_python() -> str:
    """This interpreter's ``X.Y``: the default target Python of a lock from plain requirements."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def platform_for(value: str) -> Platform:
    """The platform entry for ``win_amd64``, ``macosx_11_0_arm64``, ``manylinux_2_28_aarch64``, ``linux`` ..."""
    tag = FRIENDLY.get(value.lower(), value)
    linux = re.fullmatch(r"(?:many|musl)?linux(?:_\d+_\d+|2014|2010|1)?_(x86_64|aarch64)", tag)
    if linux:
        machine = linux.group(1)
        env = {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux", "platform_machine": machine}
        return Platform(f"linux_{machine}", (tag,), env)
    win = re.fullmatch(r"win_(amd64|arm64)", tag)
    if win:
        env = {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
               "platform_machine": win.group(1).upper()}
        return Platform(tag, (tag,), env)
    mac = re.fullmatch(r"macosx_\d+_\d+_(x86_64|arm64|universal2)", tag)
    if mac:
        machine = "arm64" if mac.group(1) != "x86_64" else "x86_64"
        env = {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": machine}
        return Platform(f"macos_{machine}", (tag,), env)
    raise UsageError(f"--platform {value!r} is not a platform tag this tool can lock for",
                     hint="use a wheel platform tag (manylinux_2_28_x86_64, manylinux_2_28_aarch64, win_amd64, "
                          "macosx_11_0_arm64) or a name: " + ", ".join(sorted(FRIENDLY)))


def uv_platform(platform: Platform) -> str:
    """uv's ``--python-platform`` for a platform entry (its first tag decides)."""
    tag = platform.tags[0]
    linux = re.fullmatch(r"manylinux_(\d+)_(\d+)_(x86_64|aarch64)", tag)
    if linux:
        major, minor, arch = linux.groups()
        return f"{arch}-manylinux_{major}_{minor}" if major == "2" and int(minor) >= 17 else f"{arch}-unknown-linux-gnu"
    if re.fullmatch(r"manylinux(2014|2010|1)_(x86_64|aarch64)", tag) or tag.startswith("linux_"):
        return f"{'aarch64' if tag.endswith('aarch64') else 'x86_64'}-unknown-linux-gnu"
    if tag.startswith("musllinux_"):
        return f"{'aarch64' if tag.endswith('aarch64') else 'x86_64'}-unknown-linux-musl"
    if tag == "win_amd64":
        return "x86_64-pc-windows-msvc"
    if tag == "win_arm64":
        return "aarch64-pc-windows-msvc"
    if tag.startswith("macosx_"):
        return "x86_64-apple-darwin" if tag.endswith("x86_64") else "aarch64-apple-darwin"
    raise UsageError(f"platform {platform.name!r} (tag {tag}) has no uv target", hint="use a standard wheel tag")
