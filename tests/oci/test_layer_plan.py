"""Which entries go in which layer, and what a layer holds: deterministic, sorted, under the prefix."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from immutable_installer.core.errors import UsageError
from immutable_installer.oci import tarball
from immutable_installer.oci.layers import META_DIR, Planned, check_prefix, entry_members, plan_layers, pyvenv_cfg
from immutable_installer.store.entries import Entry
from immutable_installer.store.fill import ENTRY_MTIME, entry_digest


def fake(n: int, size: int) -> Entry:
    key = f"cp311-{n:064x}"
    files = [[f"lib/python3.11/site-packages/p{n}/__init__.py", "sha256=x", size]]
    return Entry(key, Path("/nowhere") / key, {"files": files, "executables": [],
                                               "content_digest": entry_digest(files, [])})


def test_one_layer_per_entry_when_they_fit() -> None:
    entries = [fake(i, 10 * i) for i in range(1, 6)]
    plan = plan_layers(list(reversed(entries)), budget=5)
    assert [p.keys for p in plan] == [[e.key] for e in entries]


def test_past_the_budget_the_largest_keep_their_own_and_the_rest_are_grouped() -> None:
    entries = [fake(i, 1000 if i % 7 == 0 else i) for i in range(1, 131)]
    plan = plan_layers(entries, budget=98)
    assert len(plan) <= 98
    assert sorted(k for p in plan for k in p.keys) == sorted(e.key for e in entries), "every entry, once"
    own = {p.keys[0] for p in plan if len(p.keys) == 1}
    assert {e.key for e in entries if e.bytes == 1000} <= own, "the large ones keep their own layer"
    assert plan_layers(list(reversed(entries)), budget=98) == plan, "a function of the set, not its order"
    changed = [*entries[:-1], fake(130, 131)]  # one small package changes
    other = plan_layers(changed, budget=98)
    assert sum(a != b for a, b in zip(plan, other, strict=True)) == 1, "one group's layer changes, no other"


def test_a_budget_too_small_is_refused() -> None:
    with pytest.raises(UsageError):
        plan_layers([fake(1, 1), fake(2, 2)], budget=1)


def test_prefixes() -> None:
    assert check_prefix("/opt/venv/") == "/opt/venv"
    for bad in ("opt/venv", "/opt/../etc", "/opt/ven v", "/"):
        with pytest.raises(UsageError):
            check_prefix(bad)


def test_an_entry_layer_is_sorted_owned_by_nobody_and_timeless(tmp_path: Path) -> None:
    root = tmp_path / "cp311-e" / "root"
    (root / "bin").mkdir(parents=True)
    (root / "lib").mkdir()
    (root / "bin" / "tool").write_bytes(b"#!python\n")
    (root / "lib" / "m.py").write_bytes(b"x = 1\n")
    files = [["bin/tool", "sha256=a", 9], ["lib/m.py", "sha256=b", 6]]
    meta = {"key": "cp311-e", "files": files, "executables": ["bin/tool"], "content_digest": entry_digest(files, ["bin/tool"])}
    members, expected = entry_members(Planned((Entry("cp311-e", root.parent, meta),)), "/opt/venv")
    names = [m.name for m in members]
    assert names == sorted(names) and names[:2] == ["opt", "opt/venv"]
    assert names.index(f"opt/venv/{META_DIR}/cp311-e.json") < names.index("opt/venv/bin/tool"), "the listing first"
    assert expected == {"opt/venv/bin/tool": "sha256=a", "opt/venv/lib/m.py": "sha256=b"}
    data = b"".join(tarball.stream(members))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        infos = {i.name: i for i in tar.getmembers()}
    assert {(i.uid, i.gid, i.uname, i.gname, i.mtime) for i in infos.values()} == {(0, 0, "", "", ENTRY_MTIME)}
    assert infos["opt/venv/bin/tool"].mode == 0o555 and infos["opt/venv/lib/m.py"].mode == 0o444
    assert tarball.digest_and_size(members) == tarball.digest_and_size(entry_members(
        Planned((Entry("cp311-e", root.parent, meta),)), "/opt/venv")[0])


def test_pyvenv_cfg_names_the_image_interpreter() -> None:
    local = ("home = /root/.pyenv/versions/3.11.7/bin\nimplementation = CPython\nversion_info = 3.11.7.final.0\n"
             "include-system-site-packages = false\nbase-prefix = /root/.pyenv/versions/3.11.7\n"
             "base-exec-prefix = /root/.pyenv/versions/3.11.7\nbase-executable = /root/.pyenv/versions/3.11.7/bin/"
             "python3.11\n")
    cfg = pyvenv_cfg(local, "/usr/local/bin/python3.11").decode()
    assert "home = /usr/local/bin\n" in cfg and "base-prefix = /usr/local\n" in cfg
    assert "base-executable = /usr/local/bin/python3.11\n" in cfg and "pyenv" not in cfg
    assert "include-system-site-packages = false" in cfg
