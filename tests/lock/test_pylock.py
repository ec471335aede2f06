"""PEP 751 export: the pins of one variant, parsed by packaging.pylock."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from packaging.pylock import Pylock

from conftest import REPO, make_wheel, manifest_data
from installer.core.manifest import load_manifest, manifest_from_data
from installer.lock import pylock


def test_synthetic_export_parses(tmp_path: Path) -> None:
    b = make_wheel(tmp_path, "tiny-b", "1.0")
    a = make_wheel(tmp_path, "tiny-a", "2.0", requires=["tiny-b>=1"])
    manifest = manifest_from_data(manifest_data([(b, {}), (a, {"requires": ["tiny-b>=1"], "group": "app"})]))
    out = tmp_path / "lock" / "pylock.toml"
    out.parent.mkdir()
    text = pylock.export(manifest, "cpu", "linux_x86_64", str(out), str(tmp_path / "wheelhouse"))
    lock = Pylock.from_dict(tomllib.loads(text))
    assert [p.name for p in lock.packages] == ["tiny-b", "tiny-a"]
    wheel = lock.packages[1].wheels[0]
    assert wheel.path == "../wheelhouse/tiny_a-2.0-py3-none-any.whl" and wheel.hashes["sha256"]


def test_reference_manifest_exports_both_variants(tmp_path: Path) -> None:
    manifest = load_manifest(REPO / "metadata" / "dependencies.json")
    for variant in manifest.variant_names():
        text = pylock.export(manifest, variant, "linux_x86_64", str(tmp_path / f"{variant}.toml"), "wheelhouse")
        lock = Pylock.from_dict(tomllib.loads(text))
        torch = next(p for p in lock.packages if p.name == "torch")
        assert str(torch.version).endswith("+cpu") == (variant == "cpu")
        if variant == "cpu":
            assert torch.wheels[0].url.startswith("https://download.pytorch.org/whl/cpu/")
