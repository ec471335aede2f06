"""Every blacklist route the scanner must catch, with its chain, and no false positives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import make_wheel, manifest_data
from immutable_installer.core.errors import BlacklistedPin, BlacklistError, ManifestError, WheelhouseError
from immutable_installer.core.manifest import manifest_from_data, parse_manifest
from immutable_installer.core.names import pattern_matches
from immutable_installer.core.selection import select
from immutable_installer.wheelhouse.scan import scan

RULE = [{"name": "torchao", "reason": "breaks transformers' PreTrainedModel import", "import_names": ["torchao"]}]


def run(tmp_path: Path, wheels: list[tuple[Path, dict[str, Any]]], extra_files: list[Path] = ()) -> Any:
    house = tmp_path / "wh"
    house.mkdir(exist_ok=True)
    for path, _ in wheels:
        shutil.copy(path, house)
    for path in extra_files:
        shutil.copy(path, house)
    manifest = manifest_from_data(manifest_data(wheels, blacklist=RULE))
    return scan(select(manifest, "cpu", manifest.platform("linux_x86_64")), house)


def chain_stack(tmp_path: Path, deep_requires: list[str], extras: list[str] | None = None) -> list:
    src = tmp_path / "src"
    deep = make_wheel(src, "deep", "1.0", requires=deep_requires, extras=["quant"])
    mid = make_wheel(src, "mid", "1.0", requires=["deep>=1"])
    app = make_wheel(src, "app", "1.0", requires=["mid>=1"])
    # the manifest claims deep needs nothing: the scanner must trust the wheel, not the manifest
    return [(deep, {"extras": extras or []}), (mid, {"requires": ["deep>=1"]}), (app, {"requires": ["mid>=1"]})]


def test_clean_stack_passes(tmp_path: Path) -> None:
    result = run(tmp_path, chain_stack(tmp_path, []))
    assert len(result.wheels) == 3


def test_three_levels_deep_through_real_metadata(tmp_path: Path) -> None:
    with pytest.raises(BlacklistError) as info:
        run(tmp_path, chain_stack(tmp_path, ["torchao>=0.5"]))
    assert info.value.exit_code == 3
    assert info.value.details == ["app 1.0 -> mid 1.0 -> deep 1.0 -> torchao>=0.5 "
                                  "(forbidden: breaks transformers' PreTrainedModel import)"]
    assert info.value.to_event()["chains"] == [["app", "mid", "deep", "torchao"]], "as names, for the graph"


def test_chains_of_a_stray_and_a_shipped_module_name_the_package(tmp_path: Path) -> None:
    stray = make_wheel(tmp_path / "strays", "TorchAO", "0.6")
    with pytest.raises(BlacklistError) as info:
        run(tmp_path, chain_stack(tmp_path, []), [stray])
    assert info.value.chains == [["torchao"]]
    fork = make_wheel(tmp_path / "src", "ao-fork", "1.0", files={"torchao/__init__.py": ""})
    (tmp_path / "second").mkdir()
    with pytest.raises(BlacklistError) as shipped:
        run(tmp_path / "second", [(fork, {})])
    assert shipped.value.chains == [["ao-fork"]]


def test_the_scan_reports_each_wheel_it_reads(tmp_path: Path) -> None:
    from immutable_installer.core.events import Progress

    events: list[object] = []
    house = tmp_path / "wh"
    house.mkdir()
    wheels = chain_stack(tmp_path, [])
    for path, _ in wheels:
        shutil.copy(path, house)
    manifest = manifest_from_data(manifest_data(wheels, blacklist=RULE))
    scan(select(manifest, "cpu", manifest.platform("linux_x86_64")), house, events.append)
    ticks = [(e.done, e.total) for e in events if isinstance(e, Progress)]
    assert ticks == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(("marker", "caught"), [("sys_platform == 'win32'", False), ("sys_platform == 'linux'", True)])
def test_marker_conditional_both_ways(tmp_path: Path, marker: str, caught: bool) -> None:
    stack = chain_stack(tmp_path, [f"torchao>=0.5; {marker}"])
    if caught:
        with pytest.raises(BlacklistError, match="deep 1.0 -> torchao"):
            run(tmp_path, stack)
    else:
        run(tmp_path, stack)


@pytest.mark.parametrize(("requested", "caught"), [([], False), (["quant"], True)])
def test_via_an_extra_only_when_requested(tmp_path: Path, requested: list[str], caught: bool) -> None:
    stack = chain_stack(tmp_path, ["torchao>=0.5; extra == 'quant'"], extras=requested)
    if caught:
        with pytest.raises(BlacklistError, match="torchao"):
            run(tmp_path, stack)
    else:
        run(tmp_path, stack)


def test_stray_wheel_in_wheelhouse(tmp_path: Path) -> None:
    stray = make_wheel(tmp_path / "strays", "TorchAO", "0.6")
    with pytest.raises(BlacklistError, match="stray file"):
        run(tmp_path, chain_stack(tmp_path, []), [stray])


def test_renamed_fork_shipping_the_module(tmp_path: Path) -> None:
    fork = make_wheel(tmp_path / "src", "fast-kernels", "1.0", files={"torchao/__init__.py": "", "fk.py": ""})
    with pytest.raises(BlacklistError, match="fast-kernels 1.0 -> ships importable 'torchao/'"):
        run(tmp_path, [(fork, {})])


@pytest.mark.parametrize("name", ["torchao", "TorchAO", "torch_ao", "torch-ao", "Torch.AO"])
def test_name_variants_are_one_name(tmp_path: Path, name: str) -> None:
    assert pattern_matches("torchao", name)
    with pytest.raises(BlacklistError):
        run(tmp_path, chain_stack(tmp_path, [f"{name}>=0.5"]))


def test_glob_rules_and_no_false_positive() -> None:
    assert pattern_matches("torchao-*", "torchao-nightly")
    assert not pattern_matches("torchao", "torchaudio")
    assert not pattern_matches("torchao-*", "torch")


def test_pinned_directly_is_exit_3(tmp_path: Path) -> None:
    ao = make_wheel(tmp_path, "torchao", "0.6")
    with pytest.raises(BlacklistedPin) as info:
        parse_manifest(json.dumps(manifest_data([(ao, {})], blacklist=RULE)).encode())
    assert info.value.exit_code == 3


def test_missing_wheel_is_exit_4_before_anything_else(tmp_path: Path) -> None:
    stack = chain_stack(tmp_path, ["torchao"])
    house = tmp_path / "wh"
    house.mkdir()
    with pytest.raises(WheelhouseError):
        manifest = manifest_from_data(manifest_data(stack, blacklist=RULE))
        scan(select(manifest, "cpu", manifest.platform("linux_x86_64")), house)


def test_real_metadata_not_closed_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not pin"):
        run(tmp_path, chain_stack(tmp_path, ["unpinned-thing>=1"]))
