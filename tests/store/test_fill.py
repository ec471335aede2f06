"""Unpacking one wheel into a store entry, in-process: what it writes, and what it refuses (hostile wheels)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from conftest import make_wheel
from immutable_installer.core.errors import BuildError
from immutable_installer.dists.wheel import open_wheel
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


def unpack(wheel: Path, root: Path) -> fill.Staged:
    return fill.unpack(open_wheel(wheel), "pkg", root, VERSION, "/opt/py/bin/python")


@pytest.mark.parametrize("limit", [16, fill.ASYNC_LIMIT])
def test_members_are_written_whole_or_streamed_with_the_same_bytes(tmp_path: Path, limit: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill, "ASYNC_LIMIT", limit)  # 16: every member above 16 bytes takes the streaming path
    big = "".join(f"line {i}\n" for i in range(200_000))
    wheel = make_wheel(tmp_path, "pkg", "1.0", files={"pkg/__init__.py": "", "pkg/big.txt": big})
    staged = unpack(wheel, tmp_path / "root")
    site = tmp_path / "root" / "lib" / f"python{VERSION}" / "site-packages"
    assert (site / "pkg" / "big.txt").read_text() == big
    files = {rel: digest for rel, digest, _ in staged.files}
    assert files[f"lib/python{VERSION}/site-packages/pkg/big.txt"].startswith("sha256=")
    assert staged.sources == [str(site / "pkg" / "__init__.py")]


@pytest.mark.parametrize("limit", [16, fill.ASYNC_LIMIT])
def test_a_member_that_does_not_match_the_wheels_record_is_refused(tmp_path: Path, limit: int,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fill, "ASYNC_LIMIT", limit)
    wheel = make_wheel(tmp_path, "pkg", "1.0", files={"pkg/__init__.py": "", "pkg/data.txt": "honest\n" * 100})
    rewrite(wheel, {"pkg/data.txt": b"altered after the RECORD was written\n" * 100})
    with pytest.raises(BuildError, match="pkg/data.txt does not match the hash in the wheel's RECORD"):
        unpack(wheel, tmp_path / "root")


def test_a_member_outside_its_folder_is_refused_and_never_written(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "pkg", "1.0", files={"pkg/__init__.py": ""})
    rewrite(wheel, {"pkg-1.0.data/data/../../../../escaped.txt": b"out of the entry\n"})
    with pytest.raises(BuildError):
        unpack(wheel, tmp_path / "deep" / "er" / "root")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_pip_gets_the_script_names_pip_gives_itself() -> None:
    assert fill._pip_script_names("pip", "3.11") == ["pip", "pip3", "pip3.11"]
    assert fill._pip_script_names("pip3", "3.11") == [] and fill._pip_script_names("pip3.9", "3.11") == []
    assert fill._pip_script_names("tool", "3.11") == ["tool"]
