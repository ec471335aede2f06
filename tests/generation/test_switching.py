"""The three switch modes: a crash after every step of a journalled switch leaves the old or the new generation
in place once the next run recovers, and the mode is chosen by what the filesystem really does.

The junction mode's logic runs here with symbolic links standing in for junctions (Linux has none); the
rename mode runs here for real and under Wine in CI (.ci/windows).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from immutable_installer.core.generation_files import GENERATION_NAME, generation_name
from immutable_installer.generation import switching
from immutable_installer.generation.switching import (
    JunctionSwitcher,
    PosixSwitcher,
    RenameSwitcher,
    aside_path,
    journal_path,
    mode_of,
    probe_mode,
    recover,
)

STEPS = ["journal", "aside", "link"]


class Crash(Exception):
    pass


def crash_at(step_name: str):  # type: ignore[no-untyped-def]
    def step(name: str) -> None:
        if name == step_name:
            raise Crash(name)
    return step


def symlink(source: Path, link: Path) -> None:  # the stand-in for a junction
    os.symlink(source, link, target_is_directory=True)


def generation(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / GENERATION_NAME).write_text(name + "\n", encoding="utf-8")
    (path / "payload").write_text(name, encoding="utf-8")
    return path


def two_generations(tmp_path: Path, first: PosixSwitcher | RenameSwitcher) -> tuple[Path, Path, Path, Path]:
    """g0001 made current by ``first``, g0002 waiting: (target, root, g0001's path, g0002's path)."""
    root = tmp_path / ".venv.generations"
    old, new = generation(root, "g0001"), generation(root, "g0002")
    target = tmp_path / ".venv"
    first.switch(target, old)
    return target, root, old, new


def link_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    target, _root, old, new = two_generations(tmp_path, PosixSwitcher())
    return target, old, new


def rename_setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    target, root, _old, new = two_generations(tmp_path, RenameSwitcher())
    return target, root, new


def current(target: Path) -> str:
    return (target / "payload").read_text(encoding="utf-8")


def no_leftovers(target: Path) -> bool:
    return not journal_path(target).exists() and not os.path.lexists(aside_path(target))


# -- symlink (POSIX)
def test_symlink_switch_is_a_relative_link_renamed_over_the_target(tmp_path: Path) -> None:
    target, _old, new = link_setup(tmp_path)
    PosixSwitcher().switch(target, new)
    assert os.readlink(target) == os.path.join(".venv.generations", "g0002") and current(target) == "g0002"
    assert not list(tmp_path.glob(".venv.link-*"))


# -- junction (Windows), symbolic links standing in
def test_junction_switch_completes(tmp_path: Path) -> None:
    target, _old, new = link_setup(tmp_path)
    JunctionSwitcher(make_link=symlink).switch(target, new)
    assert current(target) == "g0002" and no_leftovers(target)


@pytest.mark.parametrize(("crash_after", "expected"),
                         [("journal", "g0001"), ("aside", "g0001"), ("link", "g0002"), ("cleanup", "g0002")])
def test_junction_crash_after_each_step_is_recovered(tmp_path: Path, crash_after: str, expected: str) -> None:
    target, _old, new = link_setup(tmp_path)
    with pytest.raises(Crash):
        JunctionSwitcher(make_link=symlink, step=crash_at(crash_after)).switch(target, new)
    assert recover(target, symlink) in ("finished", "undone")
    assert current(target) == expected and no_leftovers(target)
    JunctionSwitcher(make_link=symlink).switch(target, new)  # and the next switch works
    assert current(target) == "g0002"


def test_junction_recover_remakes_the_old_link_if_the_aside_vanished(tmp_path: Path) -> None:
    target, old, new = link_setup(tmp_path)
    with pytest.raises(Crash):
        JunctionSwitcher(make_link=symlink, step=crash_at("aside")).switch(target, new)
    os.unlink(aside_path(target))
    assert recover(target, symlink) == "undone"
    assert current(target) == old.name


def test_junction_first_switch_without_an_old_target(tmp_path: Path) -> None:
    gen = generation(tmp_path / ".venv.generations", "g0001")
    JunctionSwitcher(make_link=symlink).switch(tmp_path / ".venv", gen)
    assert current(tmp_path / ".venv") == "g0001"


# -- rename (no link possible)
def test_rename_switch_moves_folders_and_keeps_every_generation(tmp_path: Path) -> None:
    target, root, new = rename_setup(tmp_path)
    assert not target.is_symlink() and generation_name(target) == "g0001" and not (root / "g0001").exists()
    RenameSwitcher().switch(target, new)
    assert generation_name(target) == "g0002" and current(target) == "g0002"
    assert (root / "g0001" / "payload").read_text(encoding="utf-8") == "g0001"  # back in its slot
    assert not new.exists() and no_leftovers(target) and mode_of(target) == "rename"


@pytest.mark.parametrize(("crash_after", "expected"), [("journal", "g0001"), ("aside", "g0002"), ("link", "g0002")])
def test_rename_crash_after_each_step_is_recovered(tmp_path: Path, crash_after: str, expected: str) -> None:
    target, root, new = rename_setup(tmp_path)
    with pytest.raises(Crash):
        RenameSwitcher(step=crash_at(crash_after)).switch(target, new)
    if crash_after == "aside":  # the instant with no target at all: the journal still names the mode
        assert not target.exists() and mode_of(target) == "rename"
    assert recover(target) in ("finished", "undone")
    assert current(target) == expected and no_leftovers(target)
    other = "g0002" if expected == "g0001" else "g0001"
    assert (root / other / "payload").read_text(encoding="utf-8") == other  # the other one is intact
    assert sorted(p.name for p in root.iterdir()) == [other]


def test_rename_recover_undoes_when_the_new_generation_vanished(tmp_path: Path) -> None:
    target, _root, new = rename_setup(tmp_path)
    with pytest.raises(Crash):
        RenameSwitcher(step=crash_at("aside")).switch(target, new)
    os.rename(new, tmp_path / "elsewhere")  # whatever happened, never leave the target missing if one is there
    assert recover(target) == "undone" and current(target) == "g0001"


def test_recover_without_a_journal_does_nothing(tmp_path: Path) -> None:
    target, _old, _new = link_setup(tmp_path)
    assert recover(target) is None and current(target) == "g0001"


def test_an_unreadable_journal_is_treated_as_a_junction_switch(tmp_path: Path) -> None:
    target, _old, _new = link_setup(tmp_path)
    journal_path(target).write_text("{not json", encoding="utf-8")
    assert recover(target, symlink) == "finished" and current(target) == "g0001" and no_leftovers(target)


# -- choosing the mode
def test_probe_finds_symlinks_here_and_leaves_nothing(tmp_path: Path) -> None:
    assert probe_mode(tmp_path / "gens") == "symlink"
    assert list((tmp_path / "gens").iterdir()) == []


def test_probe_falls_back_to_rename_where_links_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kw: object) -> None:
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(switching.os, "symlink", refuse)
    assert probe_mode(tmp_path / "gens") == "rename"
    assert list((tmp_path / "gens").iterdir()) == []


def test_probe_falls_back_when_a_link_reports_success_and_makes_nothing(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(switching.os, "symlink", lambda *_a, **_k: None)  # what Wine's os.symlink does
    assert probe_mode(tmp_path / "gens") == "rename"


def test_mode_of_reads_the_target(tmp_path: Path) -> None:
    target, _old, _new = link_setup(tmp_path)
    assert mode_of(target) == "symlink"
    assert mode_of(tmp_path / "absent") is None
    (tmp_path / "someones-venv").mkdir()
    assert mode_of(tmp_path / "someones-venv") is None  # a folder without a generation name is not ours
