"""Downloads against a real local index: sources, resume, tampering, failures, concurrency, offline mode."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from conftest import PLATFORM, Index, make_wheel, manifest_data, write_json
from immutable_installer.core.errors import WheelhouseError
from immutable_installer.core.manifest import load_manifest, manifest_from_data
from immutable_installer.core.model import Platform
from immutable_installer.core.selection import Selection, select
from immutable_installer.net import fetch
from immutable_installer.wheelhouse.download import Downloader, audit, require_complete

PLAT = Platform(PLATFORM["name"], tuple(PLATFORM["tags"]), PLATFORM["environment"])


def sel(manifest: Any, variant: str) -> Selection:
    return select(manifest, variant, manifest.platform("linux_x86_64"))


def stack(index: Index, with_urls: bool = False) -> tuple[dict, list[Path]]:
    b = make_wheel(index.root, "tiny-b", "1.0")
    a = make_wheel(index.root, "tiny-a", "2.0", requires=["tiny-b>=1"])
    urls = {p.name: index.file_url(p.name) for p in (a, b)} if with_urls else None
    data = manifest_data([(b, {}), (a, {"requires": ["tiny-b>=1"], "group": "app"})], index_url=index.url, urls=urls)
    data["indexes"]["default"] = index.url if not with_urls else data["indexes"]["default"]
    return data, [a, b]


def downloader(wheelhouse: Path) -> Downloader:
    return Downloader(wheelhouse, use_configured_sources=False)


def test_download_with_pip_from_the_pinned_index_then_skip_present(tmp_path: Path, index: Index) -> None:
    data, wheels = stack(index)
    manifest = manifest_from_data(data)
    house = tmp_path / "wh"
    state = downloader(house).download(sel(manifest, "cpu"))
    assert state.ok and len(state.present) == 2
    before = {p.name: p.stat().st_mtime_ns for p in house.glob("*.whl")}
    index.faults.update({w.name: "500" for w in wheels})  # a second run must not touch the network
    downloader(house).download(sel(manifest, "cpu"))
    assert {p.name: p.stat().st_mtime_ns for p in house.glob("*.whl")} == before


def test_download_from_pinned_urls_and_find_links(tmp_path: Path, index: Index) -> None:
    data, wheels = stack(index, with_urls=True)
    manifest = manifest_from_data(data)
    links = tmp_path / "links"
    links.mkdir()
    (links / wheels[1].name).write_bytes(wheels[1].read_bytes())
    house = tmp_path / "wh"
    events: list = []
    Downloader(house, reporter=events.append, find_links=[links], use_configured_sources=False).download(
        sel(manifest, "cpu"))
    text = " ".join(getattr(e, "text", "") for e in events)
    assert f"{wheels[1].name}: from {links}" in text and f"{wheels[0].name}: from http" in text


@pytest.mark.parametrize("fault", ["tamper", "truncate", "404", "500"])
def test_bad_responses_exit_4_and_leave_no_partial_file(tmp_path: Path, index: Index, fault: str) -> None:
    wheel = make_wheel(index.root, "tiny-b", "1.0")
    sha = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    index.faults[wheel.name] = fault
    house = tmp_path / "wh"
    house.mkdir()
    with pytest.raises(WheelhouseError) as info:
        fetch(index.file_url(wheel.name), house / wheel.name, sha, sleep=lambda s: None)
    assert info.value.exit_code == 4
    assert wheel.name in info.value.message and "127.0.0.1" in info.value.message
    assert list(house.iterdir()) == []


def test_tampered_file_in_wheelhouse_is_refetched_and_offline_mode_lists_it(tmp_path: Path, index: Index) -> None:
    data, wheels = stack(index)
    manifest = manifest_from_data(data)
    house = tmp_path / "wh"
    downloader(house).download(sel(manifest, "cpu"))
    target = house / wheels[0].name
    target.write_bytes(target.read_bytes() + b"x")
    (house / wheels[1].name).unlink()
    with pytest.raises(WheelhouseError) as info:
        require_complete(house, sel(manifest, "cpu"))
    assert info.value.exit_code == 4
    assert any("sha256 mismatch" in d and wheels[0].name in d for d in info.value.details)
    assert any("missing" in d and wheels[1].name in d for d in info.value.details)
    downloader(house).download(sel(manifest, "cpu"))
    assert audit(house, sel(manifest, "cpu").wheels).ok


def _download_worker(args: tuple[str, str]) -> bool:
    manifest_path, house = args
    manifest = load_manifest(manifest_path)
    Downloader(Path(house), use_configured_sources=False).download(sel(manifest, "cpu"))
    return True


def test_four_concurrent_downloaders(tmp_path: Path, index: Index) -> None:
    wheels = [make_wheel(index.root, f"tiny-{i}", "1.0", files={f"tiny_{i}/data.bin": "x" * 200_000}) for i in range(6)]
    data = manifest_data([(w, {}) for w in wheels], index_url=index.url)
    path = write_json(tmp_path / "m.json", data)
    house = tmp_path / "wh"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert all(pool.map(_download_worker, [(str(path), str(house))] * 4))
    manifest = load_manifest(path)
    assert audit(house, sel(manifest, "cpu").wheels).ok
    assert sorted(p.name for p in house.iterdir() if not p.name.startswith(".")) == sorted(w.name for w in wheels)
    assert not list(house.glob(".*.part-*"))


def test_missing_from_every_source_exits_4(tmp_path: Path, index: Index) -> None:
    data, wheels = stack(index)
    for w in wheels:
        w.unlink()
    with pytest.raises(WheelhouseError) as info:
        downloader(tmp_path / "wh").download(sel(manifest_from_data(data), "cpu"))
    assert info.value.exit_code == 4
    json.dumps(info.value.details)


def test_download_reports_byte_progress(tmp_path: Path, index: Index) -> None:
    data, wheels = stack(index)
    manifest = manifest_from_data(data)
    events: list = []
    Downloader(tmp_path / "wh", reporter=events.append, use_configured_sources=False).download(sel(manifest, "cpu"))
    progress = [e for e in events if getattr(e, "kind", "") == "progress"]
    total = sum(w.stat().st_size for w in wheels)
    assert progress and progress[-1].unit == "bytes" and progress[-1].total == total
    assert progress[-1].done == total


def test_variant_selects_the_torch_build_from_the_cuda_index(tmp_path: Path, index: Index, cuda_index: Index) -> None:
    helper = make_wheel(index.root, "helper", "1.0")
    cpu = make_wheel(cuda_index.root, "torch", "2.0.0+cpu")
    cu = make_wheel(cuda_index.root, "torch", "2.0.0+cu124")
    data = manifest_data([(helper, {"variants": ["cpu", "cu124"]}), (cpu, {"variants": ["cpu"], "index": "cuda"}),
                          (cu, {"variants": ["cu124"], "index": "cuda"})], index_url=index.url,
                         variants={"cpu": {"index": "cuda", "torch_packages": ["torch"], "cuda": None,
                                           "min_driver": None},
                                   "cu124": {"index": "cuda", "torch_packages": ["torch"], "cuda": "12.4",
                                             "min_driver": "550.54.14"}})
    data["indexes"]["cuda"] = cuda_index.url
    manifest = manifest_from_data(data)
    house = tmp_path / "wh"
    downloader(house).download(sel(manifest, "cu124"))
    assert sorted(p.name for p in house.glob("*.whl")) == sorted([cu.name, helper.name])
    downloader(house).download(sel(manifest, "cpu"))
    assert (house / cpu.name).exists()
    assert audit(house, sel(manifest, "cpu").wheels).strays == [cu.name]


@pytest.mark.parametrize("fault", ["huge", "huge-unannounced"])
def test_a_server_sending_more_than_the_pin_is_cut_off_at_once(tmp_path: Path, index: Index, fault: str) -> None:
    """200 MB offered for a 1 KB pin: refused on the announced length, or cut off just past the pinned size."""
    from immutable_installer.net import UntrustedSource

    wheel = make_wheel(index.root, "tiny-b", "1.0")
    sha = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    index.faults[wheel.name] = fault
    house = tmp_path / "wh"
    house.mkdir()
    read: list[int] = []
    with pytest.raises(UntrustedSource) as info:
        fetch(index.file_url(wheel.name), house / wheel.name, sha, size=wheel.stat().st_size,
              on_bytes=read.append, sleep=lambda s: None)
    assert info.value.exit_code == 4 and wheel.name in info.value.message
    assert sum(read) <= wheel.stat().st_size, "not one byte past the pin was kept"
    assert [r for r in index.requests if r[0] == wheel.name] == [(wheel.name, None)], "no retry of a lying source"
    assert list(house.iterdir()) == []


def test_a_dropped_connection_resumes_with_a_range_request(tmp_path: Path, index: Index) -> None:
    wheel = make_wheel(index.root, "tiny-b", "1.0", files={"tiny_b/data.py": "x = 1\n" * 5000})
    sha = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    index.faults[wheel.name] = "drop-once"
    house = tmp_path / "wh"
    house.mkdir()
    read: list[int] = []
    fetch(index.file_url(wheel.name), house / wheel.name, sha, size=wheel.stat().st_size, on_bytes=read.append,
          sleep=lambda s: None)
    assert (house / wheel.name).read_bytes() == wheel.read_bytes()
    half = wheel.stat().st_size // 2
    assert index.requests == [(wheel.name, None), (wheel.name, f"bytes={half}-")]
    assert sum(read) == wheel.stat().st_size, "the first half was not downloaded twice"


def test_a_server_that_ignores_range_gets_the_file_started_over(tmp_path: Path, index: Index) -> None:
    wheel = make_wheel(index.root, "tiny-b", "1.0", files={"tiny_b/data.py": "x = 1\n" * 5000})
    sha = __import__("hashlib").sha256(wheel.read_bytes()).hexdigest()
    index.faults[wheel.name] = "drop-once-ignoring-range"
    house = tmp_path / "wh"
    house.mkdir()
    fetch(index.file_url(wheel.name), house / wheel.name, sha, sleep=lambda s: None)
    assert (house / wheel.name).read_bytes() == wheel.read_bytes() and len(index.requests) == 2
    assert [p.name for p in house.iterdir()] == [wheel.name]


def test_an_index_sending_more_than_the_pin_stops_pip_at_once(tmp_path: Path, index: Index) -> None:
    """The index route (pip download): pip is killed as soon as its progress passes the pinned size."""
    data, wheels = stack(index)
    index.faults[wheels[0].name] = "huge"
    manifest = manifest_from_data(data)
    house = tmp_path / "wh"
    with pytest.raises(WheelhouseError) as info:
        Downloader(house, use_configured_sources=False).download(sel(manifest, "cpu"))
    assert info.value.exit_code == 4 and wheels[0].name in info.value.message
    assert "pinned file has" in info.value.message
    assert not (house / wheels[0].name).exists() and not list(house.glob(".*part*")) and not list(house.glob(".download-*"))
