"""The install plan is pure: groups in manifest order, each wheel's wheelhouse state."""

from __future__ import annotations

from pathlib import Path

from conftest import make_wheel, manifest_data, sha256
from immutable_installer.core.manifest import manifest_from_data
from immutable_installer.core.plan import make_plan
from immutable_installer.core.selection import select


def test_plan_orders_groups_and_marks_states(tmp_path: Path) -> None:
    b = make_wheel(tmp_path, "tiny-b", "1.0")
    a = make_wheel(tmp_path, "tiny-a", "2.0", requires=["tiny-b"])
    c = make_wheel(tmp_path, "tiny-c", "1.0")
    manifest = manifest_from_data(manifest_data([(b, {}), (c, {}), (a, {"requires": ["tiny-b"], "group": "app"})]))
    selection = select(manifest, "cpu", manifest.platform("linux_x86_64"))
    plan = make_plan(selection, present={b.name}, bad={c.name}, stored={sha256(a)})
    assert [(s.group, s.number, s.of) for s in plan.steps] == [("base", 1, 2), ("app", 2, 2)]
    states = {w.name: w.state for s in plan.steps for w in s.wheels}
    assert states == {"tiny-b": "present", "tiny-c": "bad-hash", "tiny-a": "missing"}
    assert [w.filename for w in plan.to_fetch()] == [c.name, a.name]
    assert {w.name: w.store for s in plan.steps for w in s.wheels} == {"tiny-b": "new", "tiny-c": "new",
                                                                       "tiny-a": "stored"}
    assert plan.to_json()["to_store"] == [b.name, c.name]


def test_plan_carries_sizes_edges_and_the_disk_it_would_take(tmp_path: Path) -> None:
    b = make_wheel(tmp_path, "tiny-b", "1.0")
    a = make_wheel(tmp_path, "tiny-a", "2.0", requires=["tiny-b; sys_platform == 'linux'", "other; sys_platform == 'win32'"])
    manifest = manifest_from_data(manifest_data([(b, {}), (a, {"requires": ["tiny-b; sys_platform == 'linux'"],
                                                                 "group": "app"})]))
    selection = select(manifest, "cpu", manifest.platform("linux_x86_64"))
    plan = make_plan(selection, present={a.name, b.name}, bad=set(), stored={sha256(b)},
                     unpacked={a.name: 500, b.name: 300})
    wheels = {w.name: w for s in plan.steps for w in s.wheels}
    assert wheels["tiny-a"].requires == ("tiny-b",) and wheels["tiny-b"].requires == ()
    assert wheels["tiny-a"].size == a.stat().st_size
    assert plan.disk() == {"download": 0, "store_new": 500, "unpacked_total": 800}
    missing = make_plan(selection, present={b.name}, bad=set(), stored=set(), unpacked={b.name: 300})
    assert missing.disk() == {"download": a.stat().st_size, "store_new": None, "unpacked_total": None}
    assert missing.to_json()["steps"][1]["wheels"][0]["requires"] == ["tiny-b"]
