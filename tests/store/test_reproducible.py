"""Reproducible store entries: one wheel and one interpreter give the same entry bytes and content digest on any
path, at any time, under any umask; `store verify` checks the digest and `store verify --rebuild` audits an
entry against its wheel built again."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Synthetic, cli, target_env
from immutable_installer.store.entries import Store
from immutable_installer.store.fill import ENTRY_MTIME, entry_digest

TOOL = {
    "tool_pkg/__init__.py": "def main():\n    raise RuntimeError('from tool_pkg')\n",
    "tool_pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\ntool = tool_pkg:main\n",
    "tool_pkg-1.0.data/scripts/rawtool": "#!python\nprint('raw tool ran')\n",
}


def stack(root: Path) -> Synthetic:
    return Synthetic(root, extra={"tool-pkg": TOOL}, imports=["tiny_a", "tool_pkg"])


def entry_files(store: Path) -> dict[str, bytes]:
    """Every file of every entry (entry.json aside: it says when and with which interpreter path it was built)."""
    out = {}
    for path in sorted((store / "entries").rglob("*")):
        if path.is_file() and path.name != "entry.json":
            out[str(path.relative_to(store / "entries"))] = path.read_bytes()
    return out


def digests(store: Path) -> dict[str, str]:
    s = Store(store)
    return {key: str(s.load(key).content_digest) for key in s.entry_keys()}


def test_the_same_wheels_give_the_same_entries_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two stores on paths of different lengths, built a second apart, the second under umask 077 with
    SOURCE_DATE_EPOCH set (which makes py_compile write hash-based bytecode unless told otherwise): the same
    files, byte for byte, and the same content digests."""
    first = stack(tmp_path / "a")
    first.install(store=tmp_path / "store-a")
    time.sleep(1.1)
    second = stack(tmp_path / "b" / "a-much-longer-folder-name")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    old = os.umask(0o077)
    try:
        second.install(store=tmp_path / "b" / "another-store")
    finally:
        os.umask(old)
    a, b = entry_files(tmp_path / "store-a"), entry_files(tmp_path / "b" / "another-store")
    assert a.keys() == b.keys() and len(a) > 20
    assert [k for k in a if a[k] != b[k]] == []
    assert digests(tmp_path / "store-a") == digests(tmp_path / "b" / "another-store")
    assert all(d.startswith("sha256:") for d in digests(tmp_path / "store-a").values())


def test_entry_bytecode_is_valid_and_names_the_real_path(tmp_path: Path) -> None:
    """Every entry file has the fixed mtime the bytecode records, so imports use the bytecode as it is; the
    bytecode names its source by a relative path and the import system gives code the real one (tracebacks)."""
    built = stack(tmp_path)
    built.install()
    store = Store(built.store)
    for key in store.entry_keys():
        root = store.load(key).root
        assert {int(p.stat().st_mtime) for p in root.rglob("*") if p.is_file()} == {ENTRY_MTIME}
    pyc = next(built.store.rglob("tool_pkg/__pycache__/__init__.*.pyc")).read_bytes()
    assert int.from_bytes(pyc[8:12], "little") == ENTRY_MTIME and str(built.store).encode() not in pyc
    proc = subprocess.run([str(built.python()), "-B", "-c", "import tool_pkg; tool_pkg.main()"], capture_output=True,
                          text=True, env=target_env())
    where = f'File "{tmp_path}/.venv'  # an absolute path in the environment, never the relative name in the pyc
    assert "RuntimeError: from tool_pkg" in proc.stderr and where in proc.stderr, proc.stderr
    assert "site-packages/tool_pkg/__init__.py\", line 2, in main" in proc.stderr
    scripts = [p for p in built.store.rglob("bin/*") if p.is_file()]
    assert scripts and all(p.read_bytes().startswith(b"#!python\n") for p in scripts), "a placeholder, no path"
    assert subprocess.run([str(built.target / "bin" / "tool")], capture_output=True, env=target_env()).returncode != 0
    assert subprocess.run([str(built.target / "bin" / "rawtool")], capture_output=True, text=True,
                          env=target_env()).stdout == "raw tool ran\n"


def test_the_digest_is_the_listing_of_the_files(tmp_path: Path) -> None:
    built = stack(tmp_path)
    built.install()
    entry = Store(built.store).load(next(k for k in Store(built.store).entry_keys()
                                         if "tool" in str(Store(built.store).load(k).meta["wheel"])))
    assert entry.content_digest == entry_digest(entry.files, entry.executables)
    assert "bin/tool" in entry.executables and "bin/rawtool" in {str(f[0]) for f in entry.files}
    flipped = [f for f in entry.executables if f != "bin/tool"]
    assert entry_digest(entry.files, flipped) != entry.content_digest, "a mode is part of the content"


def store_verify(store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("store", "verify", "--store", str(store), "--json", *extra, cwd=store.parent)


def _writable(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_store_verify_checks_the_digest_and_what_the_listing_leaves_out(tmp_path: Path) -> None:
    built = stack(tmp_path)
    built.install()
    assert store_verify(built.store).returncode == 0
    store = Store(built.store)
    key = store.entry_keys()[0]
    entry = store.load(key)
    stray = entry.root / "lib" / "stray.py"
    stray.write_text("planted\n")
    proc = store_verify(built.store)
    assert proc.returncode == 1 and "lib/stray.py" in proc.stdout and "not in its listing" in proc.stdout
    stray.unlink()
    meta_path = entry.path / "entry.json"
    meta = json.loads(meta_path.read_text())
    _writable(meta_path)
    meta["content_digest"] = "sha256:" + "0" * 64
    meta_path.write_text(json.dumps(meta))
    proc = store_verify(built.store)
    assert proc.returncode == 1 and "does not give its content digest" in proc.stdout
    del meta["content_digest"]
    meta_path.write_text(json.dumps(meta))
    proc = store_verify(built.store)
    assert proc.returncode == 1 and "no content digest" in proc.stdout and "--repair" in proc.stdout
    repaired = store_verify(built.store, "--repair", "--wheelhouse", str(built.house))
    assert repaired.returncode == 0 and key in json.loads(repaired.stdout)["repaired"]
    assert store_verify(built.store).returncode == 0


def test_rebuild_audits_an_entry_whose_listing_was_forged_to_match(tmp_path: Path) -> None:
    """A planted change that also rewrote entry.json (hashes and digest) passes `store verify`; only building
    the entry again from its wheel shows it, naming the file."""
    built = stack(tmp_path)
    built.install()
    store = Store(built.store)
    key = next(k for k in store.entry_keys() if "tool" in str(store.load(k).meta["wheel"]))
    same = store_verify(built.store, "--rebuild", key, "--wheelhouse", str(built.house))
    assert same.returncode == 0, same.stdout + same.stderr
    result = json.loads(same.stdout)["rebuilt"][0]
    assert result["same"] and result["rebuilt"] == store.load(key).content_digest
    entry = store.load(key)
    module = entry.root / "lib" / f"python{built.manifest().python.version}" / "site-packages" / "tool_pkg" / "__init__.py"
    _writable(module)
    module.write_text("def main():\n    import os; os.system('touch PWNED')\n")
    os.utime(module, (ENTRY_MTIME, ENTRY_MTIME))
    module.chmod(0o444)
    from immutable_installer.dists.hashing import file_record_digest

    meta = dict(entry.meta)
    rel = str(module.relative_to(entry.root))
    meta["files"] = [[f[0], file_record_digest(module) if f[0] == rel else f[1],
                      module.stat().st_size if f[0] == rel else f[2]] for f in entry.files]
    meta["content_digest"] = entry_digest(meta["files"], meta["executables"])
    meta_path = entry.path / "entry.json"
    _writable(meta_path)
    meta_path.write_text(json.dumps(meta))
    assert store_verify(built.store).returncode == 0, "the forgery is consistent: only a rebuild can tell"
    audit = store_verify(built.store, "--rebuild", key, "--wheelhouse", str(built.house))
    assert audit.returncode == 1
    result = json.loads(audit.stdout)["rebuilt"][0]
    assert not result["same"] and rel in result["differences"]
    assert module.read_text().startswith("def main():\n    import os"), "the audit changes nothing in the store"
    assert not list((built.store / "tmp").iterdir()), "the scratch store is gone"


def test_rebuild_needs_the_wheel_and_an_entry_it_holds(tmp_path: Path) -> None:
    built = stack(tmp_path)
    built.install()
    key = Store(built.store).entry_keys()[0]
    missing = store_verify(built.store, "--rebuild", key, "--wheelhouse", str(tmp_path / "empty"))
    assert missing.returncode == 2 and "is not in" in missing.stderr
    unknown = store_verify(built.store, "--rebuild", "cp311-" + "0" * 64, "--wheelhouse", str(built.house))
    assert unknown.returncode == 2 and "holds no such entry" in unknown.stderr
