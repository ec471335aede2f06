"""The store and generations linked from it: real wheels, real pip, real processes, temporary stores only."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, SLOW_TO_COMPILE, Synthetic, cli, target_env, write_json
from immutable_installer.core.errors import BuildError
from immutable_installer.dists.installed import installed_dists, site_packages
from immutable_installer.generation.generations import Generations
from immutable_installer.store.entries import Store
from immutable_installer.verify.verifier import fingerprint

TOOL = {
    "tool_pkg/__init__.py": "def main():\n    print('tool ran')\n",
    "tool_pkg/sub/mod.py": "VALUE = 42\n",
    "tool_pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\ntool = tool_pkg:main\n",
    "tool_pkg-1.0.data/scripts/rawtool": "#!python\nprint('raw tool ran')\n",
    "tool_pkg-1.0.data/data/share/tool_pkg/readme.txt": "data scheme\n",
    "tool_pkg-1.0.data/headers/tool.h": "/* headers scheme */\n",
    "tool_pkg-1.0.data/purelib/tool_extra.py": "EXTRA = 1\n",
}


def tool_stack(root: Path) -> Synthetic:
    """The synthetic stack plus a wheel with a console script and a ``#!python`` data script."""
    return Synthetic(root, extra={"tool-pkg": TOOL}, imports=["tiny_a", "tool_pkg"])


def files_of(stack: Synthetic) -> list[str]:
    return ["--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house), "--venv", str(stack.target)]


def current(stack: Synthetic) -> Path:
    return Path(os.path.realpath(stack.target))


def snapshot(site: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(site)): (p.stat().st_mtime_ns, p.stat().st_ino) for p in site.rglob("*") if p.is_file()}


def pip_venv(path: Path, stack: Synthetic) -> None:
    """The same wheels installed by pip directly (group order, no store), at ``path``."""
    subprocess.run([sys.executable, "-m", "virtualenv", "--no-seed", "--quiet", "--python", sys.executable, str(path)],
                   check=True)
    manifest = stack.manifest()
    for group in manifest.groups:
        reqs = [f"{p.name}=={p.version}" for p in manifest.packages if p.group == group]
        if reqs:
            subprocess.run([sys.executable, "-m", "pip", "--python", str(path / "bin/python"), "install", "-q",
                            "--isolated", "--no-index", "--no-deps", "--no-compile", "--find-links",
                            str(stack.house), *reqs], check=True)


# ---------------------------------------------------------------------------------------- fidelity
@pytest.mark.parametrize("mode", ["auto", "hardlink", "copy"])
def test_linked_generation_is_what_pip_would_have_written(tmp_path: Path, mode: str) -> None:
    stack = tool_stack(tmp_path)
    result = stack.install(link_mode=mode)
    assert result.report.ok, result.report.failures()
    gen = current(stack)
    site = site_packages(gen)
    ours = {p: (gen / p).read_bytes() for p in ("bin/tool", "bin/rawtool")}
    record = next(site.glob("tool_pkg-1.0.dist-info")) / "RECORD"
    ours["RECORD"] = record.read_bytes()
    ours_fp = fingerprint(installed_dists(site))
    ours_files = recorded_files(site)
    assert {"share/tool_pkg/readme.txt", "include/site/python3.11/tool-pkg/tool.h"} <= {
        os.path.relpath(site / f, gen) for f in ours_files} or sys.version_info[:2] != (3, 11)
    assert ours_fp == result.fingerprint
    assert subprocess.run([str(gen / "bin/tool")], capture_output=True, text=True).stdout == "tool ran\n"
    assert subprocess.run([str(gen / "bin/rawtool")], capture_output=True, text=True).stdout == "raw tool ran\n"

    # pip, at the very same path: byte-identical scripts and RECORD, same fingerprint
    os.unlink(stack.target)
    shutil.rmtree(gen)
    pip_venv(gen, stack)
    assert (gen / "bin/tool").read_bytes() == ours["bin/tool"]
    assert (gen / "bin/rawtool").read_bytes() == ours["bin/rawtool"]
    assert record.read_bytes() == ours["RECORD"]
    assert fingerprint(installed_dists(site_packages(gen))) == ours_fp
    assert recorded_files(site_packages(gen)) == ours_files, "every installed file, byte for byte"


def recorded_files(site: Path) -> dict[str, bytes]:
    """Every file every RECORD of ``site`` lists, with its bytes (bytecode aside: its header holds an mtime)."""
    out = {}
    for dist in installed_dists(site).values():
        for path, _digest in dist.record:
            if "__pycache__" not in path:
                out[path] = (site / path).read_bytes()
    return out


def test_clone_mode_links_or_says_why(tmp_path: Path) -> None:
    """Copy-on-write needs btrfs/XFS; elsewhere the forced mode fails with a hint, never half-built."""
    stack = Synthetic(tmp_path)
    try:
        result = stack.install(link_mode="clone")
    except BuildError as exc:
        assert "--link-mode clone is not possible here" in exc.message and "--link-mode auto" in exc.hint
        assert Generations(stack.target).current() is None
        assert not list(Generations(stack.target).root.glob("g0*"))
    else:
        assert result.report.ok


def test_hardlinked_files_share_the_store_inode_and_are_read_only(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    stack.install(link_mode="hardlink")
    gen = current(stack)
    module = site_packages(gen) / "tiny_a" / "__init__.py"
    receipt = json.loads((gen / "installer-receipt.json").read_text())
    assert receipt["link_mode"] == "hardlink" and receipt["store"] == str(stack.store)
    entry = next(p["store_entry"] for p in receipt["packages"] if p["name"] == "tiny-a")
    stored = stack.store / "entries" / entry / "root" / module.relative_to(gen)
    assert module.stat().st_ino == stored.stat().st_ino
    assert not os.access(stored, os.W_OK) or os.geteuid() == 0  # root ignores permission bits
    assert not stored.stat().st_mode & 0o222


def test_importing_in_a_linked_generation_writes_no_bytecode(tmp_path: Path) -> None:
    stack = tool_stack(tmp_path)
    stack.install()
    site = site_packages(current(stack))
    before = snapshot(site)
    assert any(p.endswith(".pyc") and "tool_pkg/sub" in p for p in before), "bytecode comes from the store"
    env = target_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env  # Python would write any missing or stale .pyc
    proc = subprocess.run([str(stack.python()), "-v", "-c", "import tiny_a, tiny_b, tool_pkg.sub.mod"],
                          capture_output=True, text=True, env=env, check=True)
    assert "tool_pkg/sub/__pycache__/mod.cpython" in proc.stderr and "matches" in proc.stderr
    assert snapshot(site) == before


def test_second_generation_costs_almost_no_disk(tmp_path: Path) -> None:
    stack = tool_stack(tmp_path)
    stack.install()
    stack.install(force=True)
    gens = Generations(stack.target).complete()
    assert len(gens) == 2
    first, second = (site_packages(g.path) for g in gens)
    shared = [p for p in first.rglob("*.py") if (second / p.relative_to(first)).stat().st_ino == p.stat().st_ino]
    assert len(shared) >= 6


# ------------------------------------------------------------------------------------- concurrency
def test_store_entry_built_once_by_four_concurrent_installs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    stacks = [tool_stack(tmp_path / f"s{i}") for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant", "cpu",
                               "--json", *files_of(s), "--store", str(store)],
                              cwd=s.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for s in stacks]
    built = 0
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        events = [json.loads(line) for line in out.splitlines()]
        built += max((e["done"] for e in events if e["event"] == "progress" and e["phase"] == "store"), default=0)
    entries = Store(store).entry_keys()
    assert len(entries) == len(stacks[0].wheels)
    assert built == len(entries), "every entry was built by exactly one installer"
    inodes = {(site_packages(current(s)) / "tiny_a" / "__init__.py").stat().st_ino for s in stacks}
    assert len(inodes) == 1
    assert Store(store).verify() == []


@pytest.mark.slow
def test_sigkill_while_entries_are_built_never_leaves_a_complete_looking_entry(tmp_path: Path) -> None:
    """Killed while its entries are really being built (a build folder exists and a large module is still
    compiling), at a random instant within that window: never a half-built entry, and the next run finishes."""
    rng = random.Random(11)
    stack = Synthetic(tmp_path, extra={"tool-pkg": TOOL, "big-pkg": {"big_pkg/__init__.py": SLOW_TO_COMPILE}},
                      imports=["tiny_a", "tool_pkg"])
    for run in range(6):
        store = tmp_path / f"store-{run}"
        proc = subprocess.Popen([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant",
                                 "cpu", "--force", "--store", str(store), *files_of(stack)], cwd=stack.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 60
        while not [p for p in (store / "tmp").glob("*") if p.is_dir()] and time.monotonic() < deadline:
            assert proc.poll() is None, "the install ended before it built anything"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.5))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        s = Store(store)
        assert len(s.entry_keys()) < 8, "the kill landed while entries were being built"
        for key in s.entry_keys():  # whatever is under entries/ is complete and intact
            assert (s.entry_path(key) / "entry.json").is_file()
        assert s.verify() == []
        again = cli("install", "--skip-wheelhouse", "--variant", "cpu", "--force", "--store", str(store), *files_of(stack),
                    cwd=stack.root)
        assert again.returncode == 0, again.stderr
        assert s.verify() == [] and len(s.entry_keys()) == 8
        assert not [p for p in (store / "tmp").iterdir()], "the next run cleaned the killed build"


def test_gc_beside_a_running_install_takes_nothing_it_needs(tmp_path: Path) -> None:
    stack = tool_stack(tmp_path)
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant", "cpu",
                             "--store", str(store), *files_of(stack)], cwd=stack.root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    collected = 0
    while proc.poll() is None:
        collected += len(Store(store).gc()["removed"])
    assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    assert collected == 0
    assert stack.install(store=store).report.ok


# --------------------------------------------------------------------------------- damage and repair
def test_tampered_store_file_is_caught_everywhere_and_repaired(tmp_path: Path) -> None:
    stack = tool_stack(tmp_path)
    stack.install(link_mode="hardlink")
    stack.install(force=True, link_mode="hardlink")
    gens = Generations(stack.target).complete()
    assert len(gens) == 2
    entry = next(p.store_entry for p in gens[0].receipt.packages if p.name == "tiny-a")
    victim = stack.store / "entries" / entry / "root" / site_packages(gens[0].path).relative_to(gens[0].path) \
        / "tiny_a" / "__init__.py"
    os.chmod(victim, 0o644)
    with open(victim, "a") as fh:  # an in-place edit: every generation linking the inode sees it
        fh.write("import os  # tampered\n")

    for gen in gens:
        report = stack.verify(gen.path)
        integrity = next(c for c in report.checks if c.name == "integrity")
        assert integrity.status == "fail" and "tiny_a/__init__.py (tiny-a)" in integrity.detail
        assert f"store entry {entry[:24]}" in integrity.detail and "store verify --repair" in integrity.detail

    found = cli("store", "verify", "--store", str(stack.store), "--json", cwd=stack.root)
    assert found.returncode == 1
    assert entry in json.loads(found.stdout)["damaged"][0]
    repaired = cli("store", "verify", "--repair", "--store", str(stack.store), "--wheelhouse", str(stack.house),
                   cwd=stack.root)
    assert repaired.returncode == 0, repaired.stderr
    assert cli("store", "verify", "--store", str(stack.store), cwd=stack.root).returncode == 0
    assert stack.install(force=True).report.ok  # a fresh generation from the healed entry


def test_store_gc_keeps_what_kept_generations_use(tmp_path: Path) -> None:
    stack = tool_stack(tmp_path)
    stack.install()
    old_keys = set(Store(stack.store).entry_keys())
    # a new manifest without tool-pkg: the next generation no longer uses its entry
    data = json.loads(stack.manifest_path.read_text())
    data["packages"] = [p for p in data["packages"] if p["name"] != "tool-pkg"]
    data["verify"]["imports"] = ["tiny_a"]
    write_json(stack.manifest_path, data)
    stack.install(keep=1)
    assert cli("store", "gc", "--store", str(stack.store), cwd=stack.root).returncode == 0
    assert set(Store(stack.store).entry_keys()) == old_keys, "the kept old generation still uses tool-pkg"
    stack.install(force=True, keep=0)  # prunes every older generation
    gc = cli("store", "gc", "--store", str(stack.store), "--json", cwd=stack.root)
    removed = json.loads(gc.stdout)["removed"]
    assert len(removed) == 1 and set(Store(stack.store).entry_keys()) == old_keys - set(removed)
    status = json.loads(cli("store", "status", "--store", str(stack.store), "--json", cwd=stack.root).stdout)
    assert status["count"] == len(old_keys) - 1 and status["unused"] == 0
    assert all(e["used_by"] == [str(current(stack))] for e in status["entries"])
    assert stack.install(force=True).report.ok


# ------------------------------------------------------------------------------------ filesystems
def test_copy_mode_when_hard_links_are_impossible(tmp_path: Path) -> None:
    """A store on another filesystem (tmpfs /dev/shm): auto falls back and says so; forced hardlink refuses."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev or not os.access(shm, os.W_OK):
        pytest.skip("no second filesystem to put the store on (simulation only: forced copy below)")
    store = Path(shm / f"ii-store-{os.getpid()}-{random.randrange(1 << 30)}")
    try:
        stack = Synthetic(tmp_path)
        with pytest.raises(BuildError, match="--link-mode hardlink is not possible here"):
            stack.install(store=store, link_mode="hardlink")
        assert Generations(stack.target).current() is None
        events: list[Any] = []
        result = stack.install(store=store, reporter=events.append)
        assert result.report.ok
        receipt = json.loads((current(stack) / "installer-receipt.json").read_text())
        assert receipt["link_mode"] in ("copy", "clone")
        assert any(f"placed by {receipt['link_mode']}" in getattr(e, "text", "") for e in events)
        # copies keep their mtimes: the store's bytecode is still valid for them
        site = site_packages(current(stack))
        before = snapshot(site)
        subprocess.run([str(stack.python()), "-c", "import tiny_a"], env=target_env(), check=True)
        assert snapshot(site) == before
    finally:
        shutil.rmtree(store, ignore_errors=True)


def test_forced_copy_mode_builds_an_independent_generation(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    assert stack.install(link_mode="copy").report.ok
    module = site_packages(current(stack)) / "tiny_a" / "__init__.py"
    assert module.stat().st_nlink == 1


def test_a_module_full_of_compile_warnings_does_not_stall_the_compilers(tmp_path: Path) -> None:
    """Each line below makes the compiler print a SyntaxWarning (~1 MB on stderr in all): a compiler whose
    stderr is a pipe nobody reads would block on it forever. The install finishes and the bytecode exists."""
    noisy = "".join(f"assert (x{i}, 'always true')\n" for i in range(8000))
    stack = Synthetic(tmp_path, extra={"noisy-pkg": {"noisy_pkg/__init__.py": "", "noisy_pkg/warn.py": noisy}})
    proc = subprocess.run([sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--variant",
                           "cpu", "--store", str(tmp_path / "store"), *files_of(stack)], cwd=stack.root,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    site = site_packages(current(stack))
    assert (site / "noisy_pkg" / "__pycache__" / f"warn.cpython-{sys.version_info[0]}{sys.version_info[1]}.pyc").is_file()


def test_an_entry_keeps_the_scan_facts_of_its_own_wheel_only(tmp_path: Path) -> None:
    """``wheel_facts`` are given back only when they describe the wheel the entry was built from (its sha256,
    the key's): facts of another wheel, or unreadable ones, mean "read the wheel"."""
    stack = Synthetic(tmp_path)
    stack.install()
    store = Store(stack.store)
    key = next(k for k in store.entry_keys() if store.load(k).meta["name"] == "tiny-a")
    entry = store.load(key)
    facts = entry.wheel_facts
    assert facts is not None and facts.sha256 == entry.meta["sha256"] and facts.requires_dist == ("tiny-b>=1.0",)
    assert store.wheel_facts(key) == facts and store.wheel_facts("cp311-" + "0" * 64) is None
    other = {**entry.meta["wheel_facts"], "sha256": "0" * 64}
    assert type(entry)(key, entry.path, {**entry.meta, "wheel_facts": other}).wheel_facts is None
    assert type(entry)(key, entry.path, {**entry.meta, "wheel_facts": {"name": "x"}}).wheel_facts is None
