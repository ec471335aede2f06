"""CUDA driver detection and variant choice: SIMULATED (fake nvidia-smi, injected strings), no GPU here."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conftest import make_wheel, manifest_data
from immutable_installer.core.manifest import manifest_from_data
from immutable_installer.hardware import Hardware, choose_variant, detect, parse_nvidia_smi, parse_proc_version

VARIANTS = {
    "cpu": {"index": "default", "torch_packages": [], "cuda": None, "min_driver": None},
    "cu118": {"index": "default", "torch_packages": [], "cuda": "11.8", "min_driver": "520.61.05"},
    "cu124": {"index": "default", "torch_packages": [], "cuda": "12.4", "min_driver": "550.54.14"},
}


@pytest.fixture
def manifest(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = make_wheel(tmp_path, "tiny", "1.0")
    return manifest_from_data(manifest_data([(w, {"variants": ["cpu", "cu118", "cu124"]})], variants=VARIANTS))


def hw(driver: str | None, api: str | None = None) -> Hardware:
    return Hardware("3.11", "cpython", ("linux_x86_64",), driver, "injected" if driver else None, api)


@pytest.mark.parametrize(("driver", "api", "expected"), [
    (None, None, "cpu"), ("470.57.02", None, "cpu"), ("525.60.13", None, "cu118"), ("550.54.15", None, "cu124"),
    ("560.35.03", "12.1", "cu118"),
])
def test_choose_variant_simulated(manifest, driver, api, expected) -> None:  # type: ignore[no-untyped-def]
    assert choose_variant(manifest, hw(driver, api)).name == expected


def test_proc_version_parsing() -> None:
    text = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version: 12"
    assert parse_proc_version(text) == "550.54.15"
    assert parse_proc_version("garbage") is None


def test_nvidia_smi_parsing() -> None:
    assert parse_nvidia_smi("550.54.15, NVIDIA A100-SXM4-40GB\n550.54.15, NVIDIA A100\n") == (
        "550.54.15", ("NVIDIA A100-SXM4-40GB", "NVIDIA A100"))
    assert parse_nvidia_smi("NVIDIA-SMI has failed")[0] is None


def test_detect_with_a_fake_nvidia_smi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest) -> None:  # type: ignore[no-untyped-def]
    """SIMULATION: a shell script stands in for nvidia-smi; nothing here ran on a GPU."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '550.54.15, NVIDIA Simulated GPU'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    found = detect(proc_path=str(tmp_path / "no-proc"), use_libcuda=False)
    assert found.driver == "550.54.15" and found.driver_source == "nvidia-smi"
    assert found.gpus == ("NVIDIA Simulated GPU",)
    assert choose_variant(manifest, found).name == "cu124"


def test_detect_without_driver_is_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, manifest) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PATH", str(tmp_path))
    found = detect(proc_path=str(tmp_path / "no-proc"), use_libcuda=False)
    assert found.driver is None
    assert choose_variant(manifest, found).name == "cpu"
