"""The wheel reader's facts survive being kept in a store entry: what the scan reads from a wheel's bytes is
what a later install gets back from the entry, field for field (``record`` aside: it only serves unpacking)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from conftest import make_wheel
from immutable_installer.dists.wheel import WheelInfo, read_wheel


def test_facts_round_trip_through_json(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "helper", "1.0", requires=["tiny-b>=1.0"], files={
        "helper/__init__.py": "", "helper.pth": "import os\n", "helper-1.0.dist-info/entry_points.txt":
        "[console_scripts]\nhelp-me = helper:main\n"})
    info = read_wheel(wheel)
    assert info.startup and info.entry_points and info.installed and info.requires_dist  # every field carries data
    back = WheelInfo.from_facts(json.loads(json.dumps(info.facts())))
    assert back == dataclasses.replace(info, record={})


@pytest.mark.parametrize("damage", [{}, {"installed": ["a list"]}, {"size": "big"}, {"startup": None}])
def test_facts_that_are_not_facts_are_refused(tmp_path: Path, damage: dict[str, object]) -> None:
    facts = read_wheel(make_wheel(tmp_path, "helper", "1.0")).facts()
    data = {**facts, **damage} if damage else {k: v for k, v in facts.items() if k != "installed"}
    with pytest.raises(ValueError, match="not a wheel's facts"):
        WheelInfo.from_facts(data)


def test_entry_points_are_read_as_the_store_writes_them(tmp_path: Path) -> None:
    """One parser (PyPA ``installer``'s) for the scan and the scripts: comments are no scripts, extras and
    spaces are understood, other sections are not scripts."""
    text = ("# a comment = not a script\n[console_scripts]\n; another = comment\nrun-it = helper.cli:main [extra]\n"
            "spaced   =   helper.cli : other\n[gui_scripts]\nwin = helper.gui:run\n[helper.plugins]\np = helper:x\n")
    info = read_wheel(make_wheel(tmp_path, "helper", "1.0", files={"helper/__init__.py": "",
                                                                   "helper-1.0.dist-info/entry_points.txt": text}))
    assert info.entry_points == {"run-it": "helper.cli:main", "spaced": "helper.cli:other", "win": "helper.gui:run"}


@pytest.mark.parametrize("text", ["[console_scripts]\nbad = not a target!\n",
                                  "[console_scripts]\nx = a:b\n[console_scripts]\ny = c:d\n"])
def test_an_unreadable_entry_points_file_is_named(tmp_path: Path, text: str) -> None:
    wheel = make_wheel(tmp_path, "helper", "1.0", files={"helper-1.0.dist-info/entry_points.txt": text})
    with pytest.raises(ValueError, match=r"entry_points.txt cannot be read"):
        read_wheel(wheel)
