"""A scenario corpus of our own: small wheels on a local index, each scenario locked by us for one or more
targets and compared with uv's own answer for the same inputs (`uv pip compile --python-platform ...
--python-version ...`), then re-locked byte-identical. Covers per-platform versions and dependencies, a
platform-only package, an empty target, extras per platform, pre-releases, yanked files, Requires-Python bounds
and an impossible set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import Index, make_wheel
from immutable_installer.runner import uv_binary

LINUX, WINDOWS = "manylinux_2_17_x86_64", "win_amd64"
UV_PLATFORM = {LINUX: "x86_64-manylinux_2_17", WINDOWS: "x86_64-pc-windows-msvc"}
PY = "3.11"


@dataclass
class Scenario:
    build: Callable[[Index], None]
    requirements: list[str]
    targets: list[str] = field(default_factory=lambda: [LINUX])
    python: str = PY
    impossible: bool = False
    warning: str = ""
    explains: str = ""  # for an impossible set: what the resolver's explanation names


def chain(index: Index) -> None:
    make_wheel(index.root, "a", "1.0", requires=["b>=1"])
    make_wheel(index.root, "b", "1.0", requires=["c"])
    make_wheel(index.root, "b", "2.0", requires=["c>=2"])
    make_wheel(index.root, "c", "1.0")
    make_wheel(index.root, "c", "2.0")


def per_platform_versions(index: Index) -> None:
    make_wheel(index.root, "foo", "1.0")
    make_wheel(index.root, "foo", "2.0", requires=['bar; sys_platform == "linux"'])
    make_wheel(index.root, "bar", "1.0")


def platform_only(index: Index) -> None:
    make_wheel(index.root, "app", "1.0", requires=['winhelper; sys_platform == "win32"'])
    make_wheel(index.root, "winhelper", "1.0")


def extras_per_platform(index: Index) -> None:
    make_wheel(index.root, "lib", "1.0", requires=['speedup; extra == "fast"'], extras=["fast"])
    make_wheel(index.root, "speedup", "1.0")


def only_prereleases(index: Index) -> None:
    make_wheel(index.root, "edge", "1.0b1")


def yanked(index: Index) -> None:
    make_wheel(index.root, "app", "1.0")
    index.yanked[make_wheel(index.root, "app", "2.0").name] = "broken build"


def requires_python(index: Index) -> None:
    make_wheel(index.root, "lib", "1.0")
    make_wheel(index.root, "lib", "2.0", requires_python=">=3.12")


def platform_wheels_with_their_own_dependencies(index: Index) -> None:
    """One version, one wheel per platform, each with its own Requires-Dist (as native packages publish)."""
    make_wheel(index.root, "native", "1.0", requires=["linuxdep"], tag="py3-none-manylinux_2_17_x86_64")
    make_wheel(index.root, "native", "1.0", requires=["windep"], tag="py3-none-win_amd64")
    make_wheel(index.root, "linuxdep", "1.0")
    make_wheel(index.root, "windep", "1.0")


def only_yanked(index: Index) -> None:
    index.yanked[make_wheel(index.root, "gone", "1.0").name] = "withdrawn"


def impossible(index: Index) -> None:
    make_wheel(index.root, "x", "1.0", requires=["shared<1"])
    make_wheel(index.root, "y", "1.0", requires=["shared>=2"])
    make_wheel(index.root, "shared", "0.5")
    make_wheel(index.root, "shared", "2.0")


SCENARIOS = {
    "a dependency chain": Scenario(chain, ["a"]),
    "a different version per platform": Scenario(per_platform_versions, ['foo<2; sys_platform == "win32"',
                                                                         'foo>=2; sys_platform == "linux"'],
                                                 [LINUX, WINDOWS]),
    "a package only one platform needs": Scenario(platform_only, ["app"], [LINUX, WINDOWS]),
    "a target where nothing applies": Scenario(platform_only, ['winhelper; sys_platform == "win32"'], [LINUX]),
    "an extra on one platform only": Scenario(extras_per_platform, ['lib[fast]; sys_platform == "linux"',
                                                                    'lib; sys_platform == "win32"'], [LINUX, WINDOWS]),
    "only pre-releases exist": Scenario(only_prereleases, ["edge"]),
    "one version whose platform wheels differ in dependencies": Scenario(platform_wheels_with_their_own_dependencies,
                                                                        ["native"], [LINUX, WINDOWS]),
    "the newest release is yanked": Scenario(yanked, ["app"]),
    "a yanked release pinned with ==": Scenario(yanked, ["app==2.0"], warning="app==2.0` is yanked"),
    "Requires-Python excludes the newest": Scenario(requires_python, ["lib"], python="3.11"),
    "Requires-Python allows the newest": Scenario(requires_python, ["lib"], python="3.12"),
    "an impossible set": Scenario(impossible, ["x", "y"], impossible=True, explains="shared"),
    "only a yanked release exists": Scenario(only_yanked, ["gone"], impossible=True, explains="yanked"),
}


def uv_answer(index: Index, scenario: Scenario, target: str, tmp: Path) -> dict[str, str] | None:
    """uv's own pins for one target (None when uv says the set is impossible)."""
    reqs = tmp / f"uv-{target}.in"
    reqs.write_text("\n".join(scenario.requirements) + "\n")
    proc = subprocess.run([uv_binary(), "pip", "compile", str(reqs), "--index-url", index.url, "--no-config",
                           "--no-header", "--no-annotate", "--only-binary", ":all:", "--python-version",
                           scenario.python, "--python-platform", UV_PLATFORM[target]],
                          capture_output=True, text=True, env={**os.environ, "UV_CACHE_DIR": str(tmp / "uv-cache")})
    if proc.returncode != 0:
        return None
    return dict(line.strip().split("==", 1) for line in proc.stdout.splitlines() if "==" in line)


def our_lock(index: Index, scenario: Scenario, out: Path) -> subprocess.CompletedProcess[str]:
    args = [a for t in scenario.targets for a in ("--platform", t)]
    return subprocess.run([sys.executable, "-m", "immutable_installer", "lock", *scenario.requirements,
                           "--index-url", index.url, "--python-version", scenario.python, *args, "-o", str(out),
                           "--json"], capture_output=True, text=True, cwd=out.parent, timeout=600)


def pins_by_platform(manifest: dict[str, object]) -> dict[str, dict[str, str]]:
    names = [p["name"] for p in manifest["platforms"]]  # type: ignore[index]
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    for pkg in manifest["packages"]:  # type: ignore[union-attr]
        for f in pkg["files"]:
            for plat in f["platforms"]:
                out[plat][pkg["name"]] = pkg["version"]
    return out


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_our_lock_equals_uvs_answer_on_every_target(index: Index, tmp_path: Path, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.build(index)
    out = tmp_path / "m.json"
    proc = our_lock(index, scenario, out)
    expected = {t: uv_answer(index, scenario, t, tmp_path) for t in scenario.targets}
    if scenario.impossible:
        assert all(v is None for v in expected.values()), "uv finds no answer either"
        assert proc.returncode == 1 and "uv could not resolve" in proc.stderr, proc.stderr
        assert scenario.explains in proc.stderr and "--no-build" not in proc.stderr and not out.exists()
        return
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(out.read_text())
    ours = pins_by_platform(manifest)
    # platform entries are named by the lock (linux_x86_64, windows_amd64 ...): match them in target order
    assert list(ours.values()) == [expected[t] for t in scenario.targets], (ours, expected)
    if scenario.warning:
        assert scenario.warning in proc.stdout, "the yank is said, with its reason"
        assert "broken build" in proc.stdout
    first = out.read_bytes()
    relock = our_lock(index, scenario, out)
    assert relock.returncode == 0, relock.stderr
    assert out.read_bytes() == first, f"a re-lock keeps every pin and the bytes:\n{first.decode()[:600]}\n---\n" \
                                      f"{out.read_text()[:600]}"
