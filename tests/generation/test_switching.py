"""The journalled switch (the Windows fallback) tested on Linux: a crash after every step is recovered.

Symbolic links stand in for junctions; this logic has never run on Windows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from immutable_installer.generation.switching import JournalSwitcher, PosixSwitcher


class Crash(Exception):
    pass


def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    old, new = tmp_path / "gens" / "g0001", tmp_path / "gens" / "g0002"
    old.mkdir(parents=True)
    new.mkdir()
    target = tmp_path / ".venv"
    PosixSwitcher().switch(target, old)
    return target, old, new


def points_at(target: Path) -> str:
    return Path(os.path.realpath(target)).name


def test_journal_switch_completes(tmp_path: Path) -> None:
    target, _old, new = setup(tmp_path)
    JournalSwitcher().switch(target, new)
    assert points_at(target) == "g0002"
    assert not JournalSwitcher.journal(target).exists() and not os.path.lexists(JournalSwitcher.aside(target))


@pytest.mark.parametrize(("crash_after", "expected"),
                         [("journal", "g0001"), ("aside", "g0001"), ("link", "g0002"), ("cleanup", "g0002")])
def test_crash_after_each_step_is_recovered(tmp_path: Path, crash_after: str, expected: str) -> None:
    target, _old, new = setup(tmp_path)

    def step(name: str) -> None:
        if name == crash_after:
            raise Crash(name)

    with pytest.raises(Crash):
        JournalSwitcher(step=step).switch(target, new)
    JournalSwitcher().recover(target)
    assert points_at(target) == expected
    assert not JournalSwitcher.journal(target).exists() and not os.path.lexists(JournalSwitcher.aside(target))
    JournalSwitcher().switch(target, new)  # and the next switch works
    assert points_at(target) == "g0002"


def test_recover_recreates_the_old_link_if_the_aside_vanished(tmp_path: Path) -> None:
    target, old, new = setup(tmp_path)

    def step(name: str) -> None:
        if name == "aside":
            raise Crash(name)

    with pytest.raises(Crash):
        JournalSwitcher(step=step).switch(target, new)
    os.unlink(JournalSwitcher.aside(target))
    JournalSwitcher().recover(target)
    assert points_at(target) == old.name


def test_first_switch_without_an_old_target(tmp_path: Path) -> None:
    gen = tmp_path / "g0001"
    gen.mkdir()
    JournalSwitcher().switch(tmp_path / ".venv", gen)
    assert points_at(tmp_path / ".venv") == "g0001"
