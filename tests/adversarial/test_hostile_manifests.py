"""A manifest committed to a repository is input from whoever wrote it: strings that reach file names, scripts
or the terminal are validated at load (exit 2 naming the JSON path), so nothing built from it can run them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import Synthetic, cli, write_json

Mutation = Callable[[dict[str, Any], str], None]


def rename_platform(d: dict[str, Any], bad: str) -> None:
    d["platforms"][0]["name"] = bad
    for p in d["packages"]:
        for f in p["files"]:
            f["platforms"] = [bad]


def rename_group(d: dict[str, Any], bad: str) -> None:
    d["groups"] = [bad if g == "base" else g for g in d["groups"]]
    for p in d["packages"]:
        if p["group"] == "base":
            p["group"] = bad


def rename_index(d: dict[str, Any], bad: str) -> None:
    d["indexes"] = {bad: d["indexes"]["default"]}
    d["default_index"] = bad
    for p in d["packages"]:
        p["index"] = bad
    for v in d["variants"].values():
        v["index"] = bad


CASES: list[tuple[str, Mutation, str, str]] = [
    ("name with a newline and a command", lambda d, m: d.__setitem__("name", f"x\ntouch {m}"), "name",
     "control character"),
    ("name with shell syntax", lambda d, m: d.__setitem__("name", f"x'; touch {m}; '"), "name", "plain label"),
    ("platform name", lambda d, m: rename_platform(d, f"linux$(touch {m})"), "platforms[0].name", "platform name"),
    ("group name", lambda d, m: rename_group(d, f"base;touch {m}"), "groups[0]", "group name"),
    ("index name", lambda d, m: rename_index(d, "de`touch x`"), "indexes.de`touch x`", "index name"),
    ("index URL with a quote", lambda d, m: d["indexes"].__setitem__("default", f"https://x/simple'$(touch {m})"),
     "indexes.default", "percent-encoded"),
    ("file URL with a newline", lambda d, m: d["packages"][0]["files"][0].__setitem__("url", "https://x/a.whl\nid"),
     "packages[0].files[0].url", "control character"),
    ("extra with shell syntax", lambda d, m: d["packages"][0].__setitem__("extras", ["a$(id)"]),
     "packages[0].extras[0]", "extra name"),
    ("a terminal escape in a reason", lambda d, m: d.__setitem__("blacklist", [{"name": "zzz", "reason": "\x1b]0;x\x07"}]),
     "blacklist[0].reason", "control character"),
]


@pytest.mark.parametrize(("mutate", "field", "why"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_strings_are_refused_at_load(tmp_path: Path, mutate: Mutation, field: str, why: str) -> None:
    stack = Synthetic(tmp_path)
    marker = tmp_path / "PWNED"
    data = copy.deepcopy(stack.data)
    mutate(data, str(marker))
    write_json(stack.manifest_path, data)
    for args in (["install", "--dry-run"], ["bundle", "-o", str(tmp_path / "b.tar")], ["export-pylock"]):
        proc = cli(*args, "--manifest", str(stack.manifest_path), cwd=tmp_path)
        assert proc.returncode == 2, (args, proc.stderr)
        first = proc.stderr.splitlines()[0]
        assert field in first and why in first, first
        assert "\x1b" not in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "b.tar").exists() and not (tmp_path / "pylock.toml").exists()


def test_a_plain_label_with_spaces_and_versions_still_loads(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    write_json(stack.manifest_path, dict(stack.data, name="Lab stack 2.0+cpu_v1"))
    proc = cli("install", "--dry-run", "--json", "--manifest", str(stack.manifest_path), "--wheelhouse",
               str(stack.house), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manifest"]["name"] == "Lab stack 2.0+cpu_v1"
