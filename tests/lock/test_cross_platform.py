"""Locks for another platform or Python are right for that target: markers evaluated for it (uv's resolver),
platform entries carrying its real marker environment, blacklist routes found on every target's graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Index, make_wheel


def lock(index: Index, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "immutable_installer", "lock", *args, "--index-url", index.url, "--isolated",
                           "-o", str(out)], capture_output=True, text=True, check=False, cwd=out.parent,
                          env=None, timeout=600)


@pytest.fixture
def stack(index: Index) -> Index:
    make_wheel(index.root, "app", "1.0", requires=[
        'winonly; sys_platform == "win32"', 'maconly; platform_system == "Darwin"',
        'armonly; platform_machine == "aarch64"', 'oldpy; python_version < "3.11"'])
    for name in ("winonly", "maconly", "armonly", "oldpy", "torchao"):
        make_wheel(index.root, name, "1.0")
    make_wheel(index.root, "winapp", "1.0", requires=['evil; sys_platform == "win32"'])
    make_wheel(index.root, "evil", "1.0", requires=["torchao"])
    return index


def names(path: Path) -> set[str]:
    return {p["name"] for p in json.loads(path.read_text())["packages"]}


@pytest.mark.parametrize(("platform", "extra", "environment"), [
    ("win_amd64", "winonly", {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
                              "platform_machine": "AMD64"}),
    ("windows", "winonly", {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
                            "platform_machine": "AMD64"}),
    ("macosx_11_0_arm64", "maconly", {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
                                      "platform_machine": "arm64"}),
    ("manylinux_2_28_aarch64", "armonly", {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                                           "platform_machine": "aarch64"}),
    ("manylinux_2_28_x86_64", None, {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                                     "platform_machine": "x86_64"}),
])
def test_target_only_dependencies_are_locked_for_their_target(stack: Index, tmp_path: Path, platform: str,
                                                              extra: str | None, environment: dict[str, Any]) -> None:
    out = tmp_path / "m.json"
    # the Python named: plain requirements otherwise target the interpreter running the test (3.10 adds oldpy)
    proc = lock(stack, out, "app", "--platform", platform, "--python-version", "3.11")
    assert proc.returncode == 0, proc.stderr
    assert names(out) == {"app"} | ({extra} if extra else set())
    entry = json.loads(out.read_text())["platforms"][0]
    assert entry["environment"] == environment
    first = out.read_bytes()
    assert lock(stack, out, "app", "--platform", platform, "--python-version", "3.11").returncode == 0
    assert out.read_bytes() == first, "a re-lock keeps pins and bytes"


def test_relock_keeps_pins_when_a_newer_version_appears(stack: Index, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert lock(stack, out, "app", "--platform", "windows").returncode == 0
    make_wheel(stack.root, "winonly", "2.0")
    assert lock(stack, out, "app", "--platform", "windows").returncode == 0
    assert {p["name"]: p["version"] for p in json.loads(out.read_text())["packages"]}["winonly"] == "1.0"
    assert lock(stack, out, "app", "--platform", "windows", "--upgrade").returncode == 0
    assert {p["name"]: p["version"] for p in json.loads(out.read_text())["packages"]}["winonly"] == "2.0"


def test_blacklisted_package_reachable_only_on_windows(stack: Index, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    windows = lock(stack, out, "winapp", "--blacklist", "torchao", "--platform", "win_amd64")
    assert windows.returncode == 3, windows.stderr
    assert "winapp 1.0 -> evil 1.0 -> torchao" in windows.stderr and not out.exists()
    linux = lock(stack, out, "winapp", "--blacklist", "torchao", "--platform", "linux")
    assert linux.returncode == 0, linux.stderr
    assert names(out) == {"winapp"}


def test_one_spec_two_pythons_two_correct_manifests(stack: Index, tmp_path: Path) -> None:
    spec = tmp_path / "requirements.toml"
    spec.write_text(f'''name = "two-pythons"
default_index = "local"
default_variant = "cpu"
requirements = ["app"]

[python]
version = "3.11"

[[platforms]]
name = "linux_x86_64"
tags = ["manylinux_2_17_x86_64"]

[indexes]
local = "{stack.url}"

[variants.cpu]
index = "local"
torch_packages = []

[[groups]]
name = "all"
''')
    outs = {}
    for version in ("3.10", "3.12"):
        outs[version] = tmp_path / f"m{version}.json"
        proc = lock(stack, outs[version], "--spec", str(spec), "--python-version", version)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(outs[version].read_text())["python"]["version"] == version
    assert names(outs["3.10"]) == {"app", "oldpy"} and names(outs["3.12"]) == {"app"}
    # --platform with --spec replaces the spec's platforms too
    win = tmp_path / "win.json"
    assert lock(stack, win, "--spec", str(spec), "--platform", "windows").returncode == 0
    assert names(win) == {"app", "winonly"} and json.loads(win.read_text())["platforms"][0]["name"] == "win_amd64"


def test_unknown_platform_is_a_one_line_usage_error(tmp_path: Path, index: Index) -> None:
    proc = lock(index, tmp_path / "m.json", "app", "--platform", "amiga")
    assert proc.returncode == 2 and "--platform 'amiga'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_target_where_nothing_applies_is_an_empty_set_and_installs(index: Index, tmp_path: Path) -> None:
    """Every requirement's marker is false for the target: uv and pip answer with an empty set, and so does the
    lock (saying so); the empty environment installs and verifies."""
    make_wheel(index.root, "winonly", "1.0")
    out = tmp_path / "m.json"
    proc = lock(index, out, 'winonly; sys_platform == "win32"', "--platform", "manylinux_2_17_x86_64", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["packages"] == []
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any("nothing to install for variant cpu on" in e.get("text", "") for e in events)
    installed = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--manifest", str(out),
                                "--variant", "cpu", "--skip-wheelhouse", "--store", str(tmp_path / "store")],
                               cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    verified = subprocess.run([sys.executable, "-m", "immutable_installer", "verify", "--manifest", str(out), "--json"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["ok"]
    assert next(c for c in report["checks"] if c["name"] == "packages")["detail"].startswith("0 distributions")


def test_prerelease_mode_is_recorded_and_a_relock_keeps_it(index: Index, tmp_path: Path) -> None:
    make_wheel(index.root, "app", "1.0")
    make_wheel(index.root, "app", "2.0rc1")
    out = tmp_path / "m.json"
    target = ("--platform", "manylinux_2_17_x86_64")
    assert lock(index, out, "app", *target).returncode == 0
    stable = json.loads(out.read_text())
    assert stable["packages"][0]["version"] == "1.0" and "lock" not in stable
    assert lock(index, out, "app", *target, "--prerelease", "allow", "--upgrade").returncode == 0
    pre = json.loads(out.read_text())
    assert pre["packages"][0]["version"] == "2.0rc1" and pre["lock"] == {"prerelease": "allow"}
    first = out.read_bytes()
    relock = lock(index, out, "app", *target, "--upgrade")  # no flag: the recorded mode applies
    assert relock.returncode == 0, relock.stderr
    assert out.read_bytes() == first


def test_exclude_newer_locks_as_it_would_have_been_then(index: Index, tmp_path: Path) -> None:
    """An index with upload times (PEP 691 JSON, PEP 700): the cutoff picks what existed then, is recorded, and
    a re-lock without the flag keeps it."""
    index.uploaded[make_wheel(index.root, "app", "1.0").name] = "2024-01-10T00:00:00Z"
    index.uploaded[make_wheel(index.root, "app", "2.0").name] = "2025-03-01T00:00:00Z"
    out = tmp_path / "m.json"
    target = ("--platform", "manylinux_2_17_x86_64")
    then = lock(index, out, "app", *target, "--exclude-newer", "2024-06-01")
    assert then.returncode == 0, then.stderr
    data = json.loads(out.read_text())
    assert data["packages"][0]["version"] == "1.0" and data["lock"] == {"exclude_newer": "2024-06-01"}
    assert lock(index, out, "app", *target, "--upgrade").returncode == 0
    assert json.loads(out.read_text())["packages"][0]["version"] == "1.0", "the recorded cutoff still applies"
    out.unlink()
    assert lock(index, out, "app", *target).returncode == 0
    assert json.loads(out.read_text())["packages"][0]["version"] == "2.0"


def test_exclude_newer_reaches_the_resolver_and_bad_settings_are_refused(index: Index, tmp_path: Path) -> None:
    make_wheel(index.root, "app", "1.0")
    out = tmp_path / "m.json"
    target = ("--platform", "manylinux_2_17_x86_64")
    # this index publishes no upload times, so uv can prove nothing older than the cutoff: exit 1 with uv's reason
    old = lock(index, out, "app", *target, "--exclude-newer", "2000-01-01")
    assert old.returncode == 1 and "exclude-newer" in old.stderr and "uv could not resolve" in old.stderr, old.stderr
    bad = lock(index, out, "app", *target, "--prerelease", "sometimes")
    assert bad.returncode == 2 and "--prerelease" in bad.stderr and "if-necessary" in bad.stderr, bad.stderr
    date = lock(index, out, "app", *target, "--exclude-newer", "last tuesday")
    assert date.returncode == 2 and "--exclude-newer" in date.stderr, date.stderr
    here = f"{sys.version_info.major}.{sys.version_info.minor}"  # pip's resolver targets this interpreter only
    pip = lock(index, out, "app", "--resolver", "pip", "--python-version", here, "--prerelease", "explicit")
    assert pip.returncode == 2 and "pip's resolver has no --prerelease explicit" in pip.stderr, pip.stderr
    assert not out.exists()


def test_a_package_may_have_a_different_version_on_each_platform(index: Index, tmp_path: Path) -> None:
    """foo 1.x on Windows, foo 2.x on Linux, and bar only on Linux: one manifest holds both answers; each
    platform installs its own (the host's here: Linux); a re-lock is byte-identical."""
    make_wheel(index.root, "foo", "1.0")
    make_wheel(index.root, "foo", "2.0", requires=['bar; sys_platform == "linux"'])
    make_wheel(index.root, "bar", "1.0")
    make_wheel(index.root, "app", "1.0", requires=['foo<2; sys_platform == "win32"', 'foo>=2; sys_platform == "linux"'])
    out = tmp_path / "m.json"
    args = ("app", "--platform", "manylinux_2_17_x86_64", "--platform", "win_amd64")
    proc = lock(index, out, *args)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["schema_version"] == 2
    by_platform: dict[str, dict[str, str]] = {}
    for pkg in data["packages"]:
        for f in pkg["files"]:
            for plat in f["platforms"]:
                assert pkg["name"] not in by_platform.setdefault(plat, {}), "one entry per name and platform"
                by_platform[plat][pkg["name"]] = pkg["version"]
    linux, windows = sorted(by_platform)
    assert by_platform[windows] == {"app": "1.0", "foo": "1.0"}
    assert by_platform[linux] == {"app": "1.0", "foo": "2.0", "bar": "1.0"}
    first = out.read_bytes()
    relock = lock(index, out, *args)
    assert relock.returncode == 0, relock.stderr
    assert out.read_bytes() == first, "a re-lock keeps each platform's pins and the bytes"
    for plat, expected in ((windows, {"app", "foo"}), (linux, {"app", "foo", "bar"})):
        pylock = subprocess.run([sys.executable, "-m", "immutable_installer", "export-pylock", "--manifest", str(out),
                                 "--platform", plat, "-o", str(tmp_path / f"{plat}.toml")], capture_output=True,
                                text=True, cwd=tmp_path)
        assert pylock.returncode == 0, pylock.stderr
        text = (tmp_path / f"{plat}.toml").read_text()
        names_in = {line.split('"')[1] for line in text.splitlines() if line.startswith("name = ")}
        assert {n for n in names_in if not n.endswith(".whl")} == expected
    installed = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--manifest", str(out),
                                "--variant", "cpu", "--store", str(tmp_path / "store")], cwd=tmp_path,
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    assert list((tmp_path / ".venv").resolve().glob("lib/python3*/site-packages/foo-2.0.dist-info"))


def test_an_extra_needed_on_one_platform_only(index: Index, tmp_path: Path) -> None:
    """`lib[fast]` on Linux only, plain `lib` elsewhere: the extra (and what it pulls in) applies on Linux alone;
    the two platforms get different entries for one version of lib."""
    make_wheel(index.root, "lib", "1.0", requires=['speedup; extra == "fast"'], extras=["fast"])
    make_wheel(index.root, "speedup", "1.0")
    out = tmp_path / "m.json"
    proc = lock(index, out, 'lib[fast]; sys_platform == "linux"', 'lib; sys_platform == "win32"',
                "--platform", "manylinux_2_17_x86_64", "--platform", "win_amd64")
    assert proc.returncode == 0, proc.stderr
    entries = {(p["name"], tuple(p["extras"]), tuple(pl for f in p["files"] for pl in f["platforms"]))
               for p in json.loads(out.read_text())["packages"]}
    linux = next(pl for _, _, pls in entries for pl in pls if "linux" in pl)
    windows = next(pl for _, _, pls in entries for pl in pls if "win" in pl)
    assert ("lib", ("fast",), (linux,)) in entries and ("lib", (), (windows,)) in entries
    assert ("speedup", (), (linux,)) in entries


def test_python_version_takes_the_patch_level_and_installs(index: Index, tmp_path: Path) -> None:
    """--python-version X.Y.Z: markers on python_full_version see the patch level; the interpreter, the wheel
    tags and the store go by X.Y, so the lock installs on this Python."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    make_wheel(index.root, "app", "1.0", requires=[f'newer; python_full_version >= "{here}.1"'])
    make_wheel(index.root, "newer", "1.0")
    out = tmp_path / "m.json"
    early = lock(index, out, "app", "--python-version", f"{here}.0", "--platform", "manylinux_2_17_x86_64")
    assert early.returncode == 0, early.stderr
    assert names(out) == {"app"} and json.loads(out.read_text())["python"]["version"] == f"{here}.0"
    late = lock(index, out, "app", "--python-version", f"{here}.9", "--platform", "manylinux_2_17_x86_64", "--upgrade")
    assert late.returncode == 0, late.stderr
    assert names(out) == {"app", "newer"}
    installed = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--manifest", str(out),
                                "--variant", "cpu", "--store", str(tmp_path / "store")], cwd=tmp_path,
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    report = json.loads(subprocess.run([sys.executable, "-m", "immutable_installer", "verify", "--manifest", str(out),
                                        "--json"], cwd=tmp_path, capture_output=True, text=True).stdout)
    check = next(c for c in report["checks"] if c["name"] == "interpreter")
    assert report["ok"] and check["status"] == "warn" and f"evaluated for {here}.9" in check["detail"]
    pylock = subprocess.run([sys.executable, "-m", "immutable_installer", "export-pylock", "--manifest", str(out),
                             "-o", str(tmp_path / "pylock.toml")], cwd=tmp_path, capture_output=True, text=True)
    assert pylock.returncode == 0 and f'requires-python = "=={here}.*"' in (tmp_path / "pylock.toml").read_text()
    assert lock(index, out, "app", "--python-version", "3.11.x").returncode == 2
