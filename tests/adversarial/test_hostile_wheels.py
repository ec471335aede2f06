"""Wheels that are not what they say: every byte accounted for by RECORD (sha256 or stronger, every member
listed once), bounded work on a deflate bomb, one name inside and out, clashes a case-insensitive target would
have, and one verdict: whatever `install` refuses, `scan` and `install --dry-run` refuse the same way."""

from __future__ import annotations

import base64
import hashlib
import json
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, cli, make_wheel, manifest_data, sha256, store_files, write_json


def _hash(algorithm: str, data: bytes) -> str:
    return f"{algorithm}=" + base64.urlsafe_b64encode(hashlib.new(algorithm, data).digest()).rstrip(b"=").decode()


def crafted(directory: Path, name: str, files: dict[str, bytes], record: list[str] | None = None,
            metadata_name: str | None = None, extra_dist_info: str | None = None) -> Path:
    """A wheel whose RECORD rows are given as they are (``record``), or right when not given."""
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{name}-1.0.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: 1.0\n".encode()
    contents[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if extra_dist_info:
        contents[f"{extra_dist_info}-1.0.dist-info/METADATA"] = f"Name: {extra_dist_info}\nVersion: 1.0\n".encode()
    rows = record if record is not None else [f"{p},{_hash('sha256', d)},{len(d)}" for p, d in contents.items()]
    contents[f"{info}/RECORD"] = ("\n".join([*rows, f"{info}/RECORD,,"]) + "\n").encode()
    path = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in contents.items():
            zf.writestr(member, data)
    return path


def _stack(tmp_path: Path, wheel: Path, blacklist: list[dict[str, object]] | None = None) -> tuple[Path, Path]:
    house = wheel.parent
    manifest = write_json(tmp_path / "deps.json", manifest_data([(wheel, {})], blacklist=blacklist))
    return manifest, house


def _all_commands(tmp_path: Path, manifest: Path, house: Path) -> dict[str, object]:
    store = tmp_path / "store"
    scan = cli("scan", "--manifest", str(manifest), "--wheelhouse", str(house), "--variant", "cpu", cwd=tmp_path)
    dry = cli("install", "--dry-run", "--json", "--manifest", str(manifest), "--wheelhouse", str(house),
              "--variant", "cpu", "--store", str(store), cwd=tmp_path)
    install = cli("install", "--skip-wheelhouse", "--manifest", str(manifest), "--wheelhouse", str(house),
                  "--variant", "cpu", "--venv", str(tmp_path / ".venv"), "--store", str(store), cwd=tmp_path)
    verdict = json.loads(dry.stdout.splitlines()[-1])["scan"] if dry.returncode == 0 else {}
    return {"scan": scan, "dry": verdict, "install": install, "store": store}


GOOD = b"print('hello')\n"
BAD_ROWS = {
    "a wrong sha512 row": [f"pkg/__init__.py,{_hash('sha512', b'other bytes')},15"],
    "a row without a hash": ["pkg/__init__.py,,15"],
    "an md5 row": ["pkg/__init__.py,md5=" + base64.urlsafe_b64encode(hashlib.md5(GOOD).digest()).decode() + ",15"],
    "a member with no row": [],
    "a member listed twice, the last row right": [f"pkg/__init__.py,{_hash('sha256', b'evil')},4",
                                                 f"pkg/__init__.py,{_hash('sha256', GOOD)},15"],
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_a_record_that_does_not_account_for_every_byte_is_refused_by_every_command(tmp_path: Path, case: str) -> None:
    meta_rows = []  # METADATA and WHEEL listed right, so only the member's row is at fault
    wheel = crafted(tmp_path / "house", "pkg", {"pkg/__init__.py": GOOD}, record=None)
    with zipfile.ZipFile(wheel) as zf:
        meta_rows = [r for r in zf.read("pkg-1.0.dist-info/RECORD").decode().splitlines()
                     if "dist-info" in r and not r.startswith("pkg-1.0.dist-info/RECORD")]
    wheel = crafted(tmp_path / "house", "pkg", {"pkg/__init__.py": GOOD}, record=[*BAD_ROWS[case], *meta_rows])
    manifest, house = _stack(tmp_path, wheel)
    done = _all_commands(tmp_path, manifest, house)
    assert done["scan"].returncode == 4 and "not sound" in done["scan"].stderr, done["scan"].stderr  # type: ignore[attr-defined]
    assert done["dry"]["ok"] is False and done["dry"]["kind"] == "unsound-wheel"  # type: ignore[index]
    assert done["install"].returncode == 4, done["install"].stderr  # type: ignore[attr-defined]
    assert store_files(done["store"]) == [] and not (tmp_path / ".venv").exists()  # type: ignore[arg-type]


def test_a_sha512_row_that_is_right_installs(tmp_path: Path) -> None:
    wheel = crafted(tmp_path / "house", "pkg", {"pkg/__init__.py": GOOD}, record=None)
    with zipfile.ZipFile(wheel) as zf:
        rows = [r for r in zf.read("pkg-1.0.dist-info/RECORD").decode().splitlines() if "dist-info" in r
                and not r.startswith("pkg-1.0.dist-info/RECORD")]
    wheel = crafted(tmp_path / "house", "pkg", {"pkg/__init__.py": GOOD},
                    record=[f"pkg/__init__.py,{_hash('sha512', GOOD)},15", *rows])
    manifest, house = _stack(tmp_path, wheel)
    done = _all_commands(tmp_path, manifest, house)
    assert done["scan"].returncode == 0 and done["install"].returncode == 0, done["install"].stderr  # type: ignore[attr-defined]


def test_a_bad_member_and_a_script_outside_bin_are_refused_by_scan_as_by_install(tmp_path: Path) -> None:
    good = crafted(tmp_path / "ok", "pkg", {"pkg/__init__.py": GOOD})
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "house" / good.name if (tmp_path / "house").mkdir()
                                                       is None else "", "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, data.replace(b"hello", b"HELLO") if item.filename == "pkg/__init__.py" else data)
    manifest, house = _stack(tmp_path, tmp_path / "house" / good.name)
    done = _all_commands(tmp_path, manifest, house)
    assert done["scan"].returncode == 4 and "does not match its hash" in done["scan"].stderr  # type: ignore[attr-defined]
    assert done["install"].returncode == 4 and store_files(done["store"]) == []  # type: ignore[attr-defined, arg-type]
    evil = make_wheel(tmp_path / "house2", "evil", "1.0",
                      files={"evil/__init__.py": "def main(): pass\n",
                             "evil-1.0.dist-info/entry_points.txt": "[console_scripts]\n../../escape = evil:main\n"})
    manifest, house = _stack(tmp_path / "second", evil) if (tmp_path / "second").mkdir() is None else (None, None)
    done = _all_commands(tmp_path / "second", manifest, house)  # type: ignore[arg-type]
    assert done["scan"].returncode == 4 and "outside bin/" in done["scan"].stderr  # type: ignore[attr-defined]
    assert done["install"].returncode == 4 and not (tmp_path / "escape").exists()  # type: ignore[attr-defined]


def _bomb(directory: Path, member: str, size: int) -> Path:
    """A small wheel whose ``member`` inflates to ``size`` bytes of zeros (RECORD right, so only the size is wrong)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bomb-1.0-py3-none-any.whl"
    info = "bomb-1.0.dist-info"
    digest = hashlib.sha256()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        info_member = zipfile.ZipInfo(member)
        info_member.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info_member, "w", force_zip64=True) as fh:
            chunk = b"\0" * (1 << 24)
            for _ in range(size // len(chunk)):
                fh.write(chunk)
                digest.update(chunk)
        meta = b"Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n"
        wheel = b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        zf.writestr(f"{info}/METADATA", meta)
        zf.writestr(f"{info}/WHEEL", wheel)
        rows = [f"{member},sha256={base64.urlsafe_b64encode(digest.digest()).rstrip(b'=').decode()},{size}",
                f"{info}/METADATA,{_hash('sha256', meta)},{len(meta)}",
                f"{info}/WHEEL,{_hash('sha256', wheel)},{len(wheel)}", f"{info}/RECORD,,"]
        zf.writestr(f"{info}/RECORD", "\n".join(rows) + "\n")
    return path


def test_a_deflate_bomb_is_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """A ~1 MB wheel whose .pth inflates to 1 GiB: scanned under a 2 GiB address-space limit, refused (exit 4)
    in seconds, never an "internal error: MemoryError"."""
    bomb = _bomb(tmp_path / "house", "bomb.pth", 1 << 30)
    assert bomb.stat().st_size < 3 * 1024 * 1024
    manifest, house = _stack(tmp_path, bomb)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "immutable_installer", "scan", "--manifest", str(manifest),
                           "--wheelhouse", str(house), "--variant", "cpu"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=300, preexec_fn=limited,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 4 and "MiB bound" in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert time.monotonic() - started < 60


def test_a_wheel_filed_as_one_distribution_that_calls_itself_another_is_refused(tmp_path: Path) -> None:
    rule = [{"name": "torchao", "reason": "breaks transformers", "import_names": ["torchao"]}]
    renamed = crafted(tmp_path / "a", "numpy", {"numpy/__init__.py": GOOD}, metadata_name="torchao")
    manifest, house = _stack(tmp_path / "a", renamed, blacklist=rule)
    done = _all_commands(tmp_path / "a", manifest, house)
    assert done["scan"].returncode == 3 and "torchao" in done["scan"].stderr  # type: ignore[attr-defined]
    assert done["install"].returncode == 3 and store_files(done["store"]) == []  # type: ignore[attr-defined, arg-type]
    second = crafted(tmp_path / "b", "numpy", {"numpy/__init__.py": GOOD}, extra_dist_info="torchao")
    manifest, house = _stack(tmp_path / "b", second, blacklist=rule)
    assert _all_commands(tmp_path / "b", manifest, house)["install"].returncode == 3  # type: ignore[attr-defined]
    other = crafted(tmp_path / "c", "numpy", {"numpy/__init__.py": GOOD}, metadata_name="scipy")
    manifest, house = _stack(tmp_path / "c", other)
    done = _all_commands(tmp_path / "c", manifest, house)
    assert done["scan"].returncode == 2 and "calls itself scipy" in done["scan"].stderr  # type: ignore[attr-defined]
    assert done["install"].returncode == 2  # type: ignore[attr-defined]


def test_lock_applies_the_blacklist_to_what_a_wheel_ships(index: object, tmp_path: Path) -> None:
    make_wheel(index.root, "innocent", "1.0", files={"innocent/__init__.py": "", "torchao/__init__.py": ""})  # type: ignore[attr-defined]
    proc = cli("lock", "innocent", "--index-url", index.url, "--blacklist", "torchao", "-o", "deps.json",  # type: ignore[attr-defined]
               cwd=tmp_path)
    assert proc.returncode == 3 and "torchao" in proc.stderr and not (tmp_path / "deps.json").exists()


def test_paths_that_differ_only_in_case_clash_for_a_case_insensitive_target(tmp_path: Path) -> None:
    from immutable_installer.core.errors import FileClashError
    from immutable_installer.core.manifest import manifest_from_data
    from immutable_installer.core.selection import select
    from immutable_installer.core.targets import platform_for
    from immutable_installer.wheelhouse.scan import check, read_needed

    one = make_wheel(tmp_path / "house", "one", "1.0", files={"Pkg/a.py": "x = 1\n"})
    two = make_wheel(tmp_path / "house", "two", "1.0", files={"pkg/a.py": "x = 2\n"})
    data = manifest_data([(one, {}), (two, {})])
    win = platform_for("win_amd64")
    data["platforms"].append({"name": win.name, "tags": list(win.tags), "environment": dict(win.environment)})
    for pkg in data["packages"]:
        pkg["files"][0]["platforms"].append(win.name)
    manifest = manifest_from_data(data)
    linux = select(manifest, "cpu", manifest.platform("linux_x86_64"))
    check(linux, read_needed(linux.wheels, tmp_path / "house"), tmp_path / "house")  # two files on Linux: fine
    windows = select(manifest, "cpu", manifest.platform(win.name))
    with pytest.raises(FileClashError):
        check(windows, read_needed(windows.wheels, tmp_path / "house"), tmp_path / "house")
    assert sha256(one)  # the wheels themselves are sound
