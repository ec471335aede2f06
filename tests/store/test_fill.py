"""Unpacking one wheel into a store entry, in-process: what it writes, and what it refuses (hostile wheels)."""

from __future__ import annotations

import json
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import make_wheel
from immutable_installer.core.errors import UnsoundWheelError
from immutable_installer.dists.hashing import file_record_digest
from immutable_installer.dists.wheel import open_wheel
from immutable_installer.runner import Runner
from immutable_installer.store import fill

VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


def rewrite(wheel: Path, changes: dict[str, bytes]) -> Path:
    """The same wheel with some members' bytes changed (its RECORD left as it was: now it lies)."""
    with zipfile.ZipFile(wheel) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members.update(changes)
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return wheel


def unpack(wheel: Path, root: Path, on_source: Callable[[str], None] | None = None) -> fill.Staged:
    return fill.unpack(open_wheel(wheel), "pkg", root, VERSION, "/opt/py/bin/python", on_source=on_source)


@pytest.mark.parametrize("limit", [16, fill.ASYNC_LIMIT])
def test_members_are_written_whole_or_streamed_with_the_same_bytes(tmp_path: Path, limit: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill, "ASYNC_LIMIT", limit)  # 16: every member above 16 bytes takes the streaming path
    big = "".join(f"line {i}\n" for i in range(200_000))
    wheel = make_wheel(tmp_path, "pkg", "1.0", files={"pkg/__init__.py": "", "pkg/big.txt": big})
    announced: list[str] = []
    staged = unpack(wheel, tmp_path / "root", announced.append)
    site = tmp_path / "root" / "lib" / f"python{VERSION}" / "site-packages"
    assert (site / "pkg" / "big.txt").read_text() == big
    files = {rel: digest for rel, digest, _ in staged.files}
    assert files[f"lib/python{VERSION}/site-packages/pkg/big.txt"].startswith("sha256=")
    assert announced == [str(site / "pkg" / "__init__.py")]  # the only module: handed to the compilers
    assert all(not os.stat(tmp_path / "root" / rel).st_mode & 0o222 for rel in files)  # read-only from birth


def test_an_entry_is_handed_on_complete_with_its_bytecode_hashed_and_read_only(tmp_path: Path) -> None:
    """``on_ready`` hears of each entry once its last module is compiled: entry.json is written, every
    bytecode file is listed with the hash of the bytes on disk, and nothing in the entry can be written."""
    modules = {f"pkg/m{i}.py": f"VALUE = {i}\n" for i in range(400)}  # several compile batches
    wheel = make_wheel(tmp_path / "w", "pkg", "1.0", files={"pkg/__init__.py": "", **modules,
                                                            "pkg/broken.py": "def (:\n"})
    ready: list[fill.Staged] = []
    filler = fill.EntryBuilder(Runner(), tmp_path / "tmp", sys.executable, "cp311", VERSION, processes=2,
                         on_ready=ready.append)
    try:
        opened = open_wheel(wheel)
        filler.add("k1", "pkg", opened, opened.info.sha256)
        staged = filler.wait()
    finally:
        filler.close()
    assert [s.key for s in ready] == ["k1"] and ready[0] is staged[0]
    entry = tmp_path / "tmp" / "k1"
    meta = json.loads((entry / "entry.json").read_text())
    assert meta == staged[0].meta and not os.stat(entry / "entry.json").st_mode & 0o222
    pycs = {rel: digest for rel, digest, _size in meta["files"] if rel.endswith(".pyc")}
    assert len(pycs) == 401  # every module but the one that does not compile
    assert not any("broken" in rel for rel in pycs)
    for rel, digest in pycs.items():
        assert file_record_digest(entry / "root" / rel) == digest
    assert all(not os.stat(entry / "root" / rel).st_mode & 0o222 for rel, *_ in meta["files"])
    assert {rel for rel, *_ in meta["files"]} == {
        p.relative_to(entry / "root").as_posix() for p in (entry / "root").rglob("*") if p.is_file()}


@pytest.mark.parametrize("limit", [16, fill.ASYNC_LIMIT])
def test_a_member_that_does_not_match_the_wheels_record_is_refused(tmp_path: Path, limit: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill, "ASYNC_LIMIT", limit)
    wheel = make_wheel(tmp_path, "pkg", "1.0", files={"pkg/__init__.py": "", "pkg/data.txt": "honest\n" * 100})
    rewrite(wheel, {"pkg/data.txt": b"altered after the RECORD was written\n" * 100})
    with pytest.raises(UnsoundWheelError, match="pkg/data.txt does not match its hash in the wheel's RECORD"):
        unpack(wheel, tmp_path / "root")


def test_a_member_outside_its_folder_is_refused_and_never_written(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "pkg", "1.0", files={"pkg/__init__.py": ""})
    rewrite(wheel, {"pkg-1.0.data/data/../../../../escaped.txt": b"out of the entry\n"})
    with pytest.raises(UnsoundWheelError):
        unpack(wheel, tmp_path / "deep" / "er" / "root")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_pip_gets_the_script_names_pip_gives_itself() -> None:
    assert fill._pip_script_names("pip", "3.11") == ["pip", "pip3", "pip3.11"]
    assert fill._pip_script_names("pip3", "3.11") == [] and fill._pip_script_names("pip3.9", "3.11") == []
    assert fill._pip_script_names("tool", "3.11") == ["tool"]
