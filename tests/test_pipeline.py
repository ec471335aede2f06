"""The install pipeline's order of work: the entries the store already holds are linked while the new ones are
still being read, each new one as soon as it is compiled, and nothing of that survives when a wheel is
refused."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import Synthetic, make_wheel, manifest_data, store_files, write_json
from immutable_installer.core.errors import StartupCodeError, WheelhouseError
from immutable_installer.core.selection import select
from immutable_installer.generation.generations import Generations
from immutable_installer.pipeline import Pipeline
from immutable_installer.store.entries import Store

SITE = "lib/python3.11/site-packages"


def add_package(stack: Synthetic, wheel: Path) -> None:
    """The stack's manifest with one more package (group app, last)."""
    data = json.loads(stack.manifest_path.read_text())
    extra = manifest_data([(wheel, {"group": "app"})])["packages"][0]
    data["packages"].append({**extra, "order": len(data["packages"]) + 1})
    write_json(stack.manifest_path, data)


def phases(events: list[Any]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.name) for e in events if type(e).__name__ in ("Phase", "PhaseDone")]


def test_a_rebuild_links_what_the_store_holds_while_the_new_wheel_is_unpacked(synthetic: Synthetic) -> None:
    synthetic.install()
    add_package(synthetic, make_wheel(synthetic.house, "tiny-new", "1.0"))
    events: list[Any] = []
    held_linked = threading.Event()
    waited: list[bool] = []

    def reporter(event: Any) -> None:
        events.append(event)
        kind = type(event).__name__
        if kind == "Progress" and event.phase == "link" and event.done == 6:  # the six entries the store holds
            held_linked.set()
        if kind == "Phase" and event.name == "store":  # the pass, about to unpack the new wheel, waits for them
            waited.append(held_linked.wait(timeout=60))

    manifest = synthetic.manifest()
    pipeline = Pipeline(synthetic.target, synthetic.house, Store(synthetic.store, reporter), reporter)
    result = pipeline.install(select(manifest, "cpu", manifest.platform("linux_x86_64")))
    assert result.changed and result.report.ok
    assert waited == [True]  # linked while the pass was still running: it would have waited in vain otherwise
    linked = [e.done for e in events if type(e).__name__ == "Progress" and e.phase == "link"]
    assert linked == [1, 2, 3, 4, 5, 6, 7]
    order = phases(events)
    assert order.index(("PhaseDone", "link")) > order.index(("PhaseDone", "store"))
    assert synthetic.run_py("import tiny_new, tiny_a").returncode == 0


def test_a_refused_new_wheel_leaves_nothing_of_the_rebuild(synthetic: Synthetic, tmp_path: Path) -> None:
    """The held entries are already linked when the new wheel's start-up code is found: the half-built
    generation goes, the current one and the store stay as they were, the payload never runs."""
    first = synthetic.install()
    before = store_files(synthetic.store)
    marker = tmp_path / "payload-ran"
    evil = make_wheel(synthetic.house, "evil-helper", "1.0", files={
        "evil_helper/__init__.py": "", f"evil_helper-1.0.data/data/{SITE}/evil.pth":
        f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"})
    add_package(synthetic, evil)
    with pytest.raises(StartupCodeError):
        synthetic.install()
    gens = Generations(synthetic.target)
    assert [g.name for g in gens.complete()] == [first.generation] and gens.current().name == first.generation
    assert sorted(p.name for p in gens.root.iterdir()) == [".lock", first.generation]  # nothing half-built left
    assert store_files(synthetic.store) == before
    assert synthetic.run_py("import tiny_a").returncode == 0
    assert not marker.exists() and not os.path.exists(synthetic.target / SITE / "evil.pth")


def test_a_cold_install_links_each_new_entry_before_the_store_commits(synthetic: Synthetic) -> None:
    """An empty store: every entry is linked from its staging folder as soon as it is compiled, so the
    linking is done when the store's phase ends instead of starting then."""
    events: list[Any] = []
    synthetic.install(reporter=events.append)
    order = [(type(e).__name__, getattr(e, "name", None) or getattr(e, "phase", None)) for e in events]
    store_done = order.index(("PhaseDone", "store"))
    linked = [i for i, item in enumerate(order) if item == ("Progress", "link")]
    assert len(linked) == 6 and max(linked) < store_done
    assert order.index(("Phase", "store")) < order.index(("Phase", "link")) < store_done
    assert synthetic.run_py("import tiny_a").returncode == 0
    assert list((synthetic.store / "tmp").iterdir()) == []  # every staging folder renamed into the store


def test_a_refused_wheel_after_new_entries_were_linked_leaves_nothing(synthetic: Synthetic, tmp_path: Path) -> None:
    """An empty store, and the wheel refused last: entries (the refused one among them, unpacked but never
    run) may be linked from their staging folders before the scan's verdict. Nothing of them survives: no
    generation, no store entry, no staging folder, no target, and the payload never ran."""
    marker = tmp_path / "payload-ran"
    evil = make_wheel(synthetic.house, "evil-helper", "1.0", files={
        "evil_helper/__init__.py": "", f"evil_helper-1.0.data/data/{SITE}/evil.pth":
        f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"})
    add_package(synthetic, evil)
    linked_first = threading.Event()
    waited: list[bool] = []

    def reporter(event: Any) -> None:
        kind = type(event).__name__
        if kind == "Progress" and event.phase == "link":
            linked_first.set()
        if kind == "Progress" and event.phase == "scan" and event.done == event.total:  # the verdict comes next
            waited.append(linked_first.wait(timeout=60))

    with pytest.raises(StartupCodeError):
        synthetic.install(reporter=reporter)
    assert waited == [True]  # an entry was in the generation before the scan refused the wheel
    gens = Generations(synthetic.target)
    assert gens.current() is None and sorted(p.name for p in gens.root.iterdir()) == [".lock"]
    assert store_files(synthetic.store) == []
    assert not marker.exists() and not os.path.lexists(synthetic.target)


def test_a_rebuild_scans_the_wheels_the_store_holds_without_reading_them(synthetic: Synthetic, tmp_path: Path) -> None:
    """The store's entries were built from bytes with the pinned sha256 (their key) and kept what the scan read
    from them: a rebuild installs from them even when the wheelhouse file is gone or has been replaced by a
    hostile one, and the replacement never runs."""
    first = synthetic.install()
    marker = tmp_path / "payload-ran"
    synthetic.wheels["tiny-b"].unlink()
    hostile = make_wheel(tmp_path / "other", "tiny-a", "2.0", requires=["tiny-b>=1.0"], files={
        "tiny_a/__init__.py": "__version__ = 'replaced'\n",
        "tiny_a-2.0.data/data/" + SITE + "/evil.pth": f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"})
    synthetic.wheels["tiny-a"].write_bytes(hostile.read_bytes())
    events: list[Any] = []
    result = synthetic.install(force=True, reporter=events.append)
    assert result.changed and result.report.ok and result.generation != first.generation
    assert result.fingerprint == first.fingerprint  # the same files as the first time
    scanned = [e.item for e in events if type(e).__name__ == "Progress" and e.phase == "scan"]
    assert len(scanned) == 6 and all(m.endswith("(scanned from its store entry)") for m in scanned)
    assert synthetic.run_py("import tiny_a; assert tiny_a.__version__ == '2.0'").returncode == 0
    assert not marker.exists() and not os.path.exists(synthetic.target / SITE / "evil.pth")


def test_a_held_wheel_whose_start_up_code_the_manifest_no_longer_allows_is_refused(synthetic: Synthetic,
                                                                                   tmp_path: Path) -> None:
    """The verdict on a wheel the store holds is the new manifest's, taken on what its entry kept: its wheel
    file may be gone, its `.pth` is still refused before anything could run it."""
    marker = tmp_path / "payload-ran"
    helper = make_wheel(synthetic.house, "evil-helper", "1.0", files={
        "evil_helper/__init__.py": "", "evil_helper.pth":
        f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"})
    add_package(synthetic, helper)
    data = json.loads(synthetic.manifest_path.read_text())
    data["verify"]["allowed_pth"] = ["evil_helper.pth"]
    write_json(synthetic.manifest_path, data)
    first = synthetic.install()
    assert first.report.ok and marker.exists()  # allowed: it runs at every start, the probe's included
    marker.unlink()
    data["verify"]["allowed_pth"] = []
    write_json(synthetic.manifest_path, data)
    helper.unlink()  # only the entry can tell what the wheel ships
    before = store_files(synthetic.store)
    with pytest.raises(StartupCodeError, match="evil_helper-1.0-py3-none-any.whl ships evil_helper.pth"):
        synthetic.install(force=True)
    gens = Generations(synthetic.target)
    assert gens.current().name == first.generation and [g.name for g in gens.complete()] == [first.generation]
    assert store_files(synthetic.store) == before and not marker.exists()


def test_an_entry_that_kept_no_wheel_facts_has_its_wheel_read(synthetic: Synthetic) -> None:
    """Entries written before entries kept the scan's facts (or whose record of them is damaged): the wheel is
    read as before, and a missing one is the wheelhouse error it always was."""
    synthetic.install()
    store = Store(synthetic.store)
    for key in store.entry_keys():
        meta_file = store.entry_path(key) / "entry.json"
        meta = json.loads(meta_file.read_text())
        meta.pop("wheel_facts")
        meta_file.chmod(0o644)
        meta_file.write_text(json.dumps(meta))
        assert store.load(key).wheel_facts is None
    events: list[Any] = []
    assert synthetic.install(force=True, reporter=events.append).report.ok
    scanned = [e.item for e in events if type(e).__name__ == "Progress" and e.phase == "scan"]
    assert len(scanned) == 6 and not any("store" in m for m in scanned)
    synthetic.wheels["tiny-b"].unlink()
    with pytest.raises(WheelhouseError, match="tiny_b-1.0-py3-none-any.whl"):
        synthetic.install(force=True)
