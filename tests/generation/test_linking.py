"""Link modes on real files: what each keeps, and auto's fallback across filesystems."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from immutable_installer.core.errors import UsageError
from immutable_installer.generation.linking import Linker


def make(tmp_path: Path) -> Path:
    src = tmp_path / "src.py"
    src.write_text("x = 1\n")
    os.utime(src, ns=(1_000_000_000, 1_000_000_000))
    return src


@pytest.mark.parametrize("mode", ["hardlink", "copy"])
def test_modes_keep_content_and_mtime(tmp_path: Path, mode: str) -> None:
    src = make(tmp_path)
    linker = Linker(mode)
    linker.place(str(src), str(tmp_path / "dst.py"))
    dst = tmp_path / "dst.py"
    assert dst.read_text() == "x = 1\n" and dst.stat().st_mtime_ns == 1_000_000_000
    assert (dst.stat().st_ino == src.stat().st_ino) == (mode == "hardlink")


def test_auto_settles_on_hardlink_on_one_filesystem(tmp_path: Path) -> None:
    src = make(tmp_path)
    linker = Linker("auto")
    linker.place(str(src), str(tmp_path / "a"))
    assert linker.mode == "hardlink"


def test_auto_falls_back_across_filesystems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem here")
    src = shm / f"ii-link-{os.getpid()}.py"
    src.write_text("x = 1\n")
    try:
        linker = Linker("auto")
        linker.place(str(src), str(tmp_path / "a"))
        assert linker.mode in ("clone", "copy")
        assert (tmp_path / "a").stat().st_mtime_ns == src.stat().st_mtime_ns
    finally:
        src.unlink()


def test_unknown_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--link-mode 'symlink'"):
        Linker("symlink")
