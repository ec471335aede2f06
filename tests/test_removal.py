"""Deleting trees of read-only hard links the way Windows allows it: Windows refuses to delete a read-only file,
and clearing the attribute on one name clears it on every hard link. ``windows_unlink`` imposes that rule here
(Linux deletes read-only files freely), so the same code path runs as on Windows: the generation goes, the store
is made read-only again, nothing else is touched."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import Synthetic
from immutable_installer.removal import remove_tree
from immutable_installer.store.entries import Store

_REAL_UNLINK: Callable[..., None] = os.unlink


def windows_unlink(path: str | os.PathLike[str], *, dir_fd: int | None = None) -> None:
    if not os.lstat(path, dir_fd=dir_fd).st_mode & stat.S_IWRITE:
        raise PermissionError(13, "Access is denied", str(path))
    _REAL_UNLINK(path, dir_fd=dir_fd)


@pytest.fixture
def windows_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "unlink", windows_unlink)


def read_only_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o444)
    return path


def test_a_tree_of_read_only_links_is_deleted_and_the_sharing_reported(tmp_path: Path, windows_rule: None) -> None:
    store_file = read_only_file(tmp_path / "store" / "a.py", "a")
    generation = tmp_path / "gen"
    (generation / "pkg").mkdir(parents=True)
    os.link(store_file, generation / "pkg" / "a.py")
    read_only_file(generation / "own.txt", "only here")
    assert remove_tree(generation) is True  # a shared file had to be made writable
    assert not generation.exists() and store_file.read_text(encoding="utf-8") == "a"


def test_unshared_read_only_files_report_no_sharing(tmp_path: Path, windows_rule: None) -> None:
    read_only_file(tmp_path / "gen" / "own.txt", "x")
    assert remove_tree(tmp_path / "gen") is False and not (tmp_path / "gen").exists()


def test_a_link_or_a_missing_path_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "keep").write_text("k", encoding="utf-8")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert remove_tree(tmp_path / "link") is False and (tmp_path / "real" / "keep").exists()
    assert remove_tree(tmp_path / "absent") is False


def test_pruning_under_the_windows_rule_keeps_the_store_read_only(tmp_path: Path, windows_rule: None) -> None:
    stack = Synthetic(tmp_path)
    stack.install()
    result = stack.install(force=True, keep=0)
    assert result.pruned == ["g0001"] and not (tmp_path / ".venv.generations" / "g0001").exists()
    assert Store(stack.store).verify() == []  # every entry file read-only and intact again (Store.reseal)


def test_a_virtualenv_shaped_tree_is_deleted_on_threads_with_the_sharing_reported(
        tmp_path: Path, windows_rule: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many package folders (deleted side by side): every one goes, the one shared file is reported, and a link
    inside the tree pointing outside it is removed as a link, never followed."""
    import immutable_installer.removal as removal

    seen: list[str] = []
    real_remove = removal._remove
    monkeypatch.setattr(removal, "_remove", lambda path: seen.append(path) or real_remove(path))
    outside = tmp_path / "outside"
    read_only_file(outside / "keep.txt", "keep")
    store_file = read_only_file(tmp_path / "store" / "shared.py", "s")
    site = tmp_path / "gen" / "lib" / "python3.11" / "site-packages"
    for n in range(20):
        read_only_file(site / f"pkg{n}" / "sub" / "m.py", str(n))
    os.link(store_file, site / "pkg7" / "shared.py")
    (site / "escape").symlink_to(outside, target_is_directory=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert remove_tree(tmp_path / "gen", pool.map) is True
    assert not (tmp_path / "gen").exists()
    assert len(seen) == 21  # twenty package folders on the threads, then the rest
    assert (outside / "keep.txt").read_text(encoding="utf-8") == "keep" and store_file.exists()
