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
        "550.54.15", ("NVIDIA A100-SXM4-40GB", "NVIDIA A100"), ())
    assert parse_nvidia_smi("NVIDIA-SMI has failed")[0] is None
    assert parse_nvidia_smi("580.82.07, NVIDIA H100 80GB HBM3, 9.0\n580.82.07, Tesla V100-SXM2, 7.0\n") == (
        "580.82.07", ("NVIDIA H100 80GB HBM3", "Tesla V100-SXM2"), ("9.0", "7.0"))


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


# ---------------------------------------------------------------- GPU minimums: SIMULATED, no GPU here
CUDA13 = {
    "cpu": {"index": "default", "torch_packages": [], "cuda": None, "min_driver": None},
    "cu126": {"index": "default", "torch_packages": [], "cuda": "12.6", "min_driver": "525.60.13",
              "min_compute_capability": "5.0"},
    "cu130": {"index": "default", "torch_packages": [], "cuda": "13.0", "min_driver": "580.65.06",
              "min_compute_capability": "7.5"},
}


@pytest.fixture
def cuda13(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = make_wheel(tmp_path, "tiny", "1.0")
    return manifest_from_data(manifest_data([(w, {"variants": list(CUDA13)})], variants=CUDA13))


def gpu(driver: str, *caps: str) -> Hardware:
    return Hardware("3.11", "cpython", ("linux_x86_64",), driver, "injected", None,
                    tuple(f"GPU {i}" for i in range(len(caps))), caps)


@pytest.mark.parametrize(("machine", "expected", "why"), [
    (gpu("580.82.07", "8.0"), "cu130", ""),
    (gpu("580.82.07", "7.0"), "cu126", "compute capability 7.0 is older than the 7.5"),  # V100: a 12.6 build
    (gpu("580.82.07", "8.0", "6.0"), "cu126", "compute capability 6.0"),  # every GPU must be able to run it
    (gpu("570.10", "8.6"), "cu126", "driver 570.10 is older than the 580.65.06 CUDA 13.0 needs"),
    (gpu("470.10", "8.6"), "cpu", "driver 470.10 is older than the 525.60.13"),
])
def test_auto_never_picks_what_the_driver_or_gpu_cannot_run(cuda13, machine, expected, why) -> None:  # type: ignore[no-untyped-def]
    from immutable_installer.hardware import variant_fits

    assert choose_variant(cuda13, machine).name == expected
    refused = [f.why for f in variant_fits(cuda13, machine) if not f.ok]
    assert (why in " ".join(refused)) if why else not refused


def test_an_explicit_cuda_variant_the_machine_cannot_run_is_refused(cuda13) -> None:  # type: ignore[no-untyped-def]
    from immutable_installer.core.errors import UsageError
    from immutable_installer.hardware import resolve_variant

    with pytest.raises(UsageError) as info:
        resolve_variant(cuda13, "cu130", gpu("580.82.07", "7.0"))
    assert info.value.exit_code == 2 and "compute capability 7.0" in info.value.message
    assert "--variant auto` picks cu126" in info.value.hint
    assert resolve_variant(cuda13, "cu130", Hardware("3.11", "cpython", (), None, None)).name == "cu130", \
        "no driver found (a build machine): nothing is known, nothing refused"


def test_detect_reads_compute_capability_and_falls_back_for_old_drivers(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIMULATION: one fake nvidia-smi that knows compute_cap, one that predates it (exits 2 on that query)."""
    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    fake.write_text("#!/bin/sh\necho '580.82.07, NVIDIA Simulated GPU, 8.6'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    found = detect(proc_path=str(tmp_path / "no-proc"), use_libcuda=False)
    assert found.compute_capabilities == ("8.6",) and found.gpus == ("NVIDIA Simulated GPU",)
    fake.write_text("#!/bin/sh\ncase \"$1\" in *compute_cap*) echo 'Field \"compute_cap\" is not a valid field' >&2; "
                    "exit 2;; esac\necho '470.10, NVIDIA Old GPU'\n")
    old = detect(proc_path=str(tmp_path / "no-proc"), use_libcuda=False)
    assert old.driver == "470.10" and old.gpus == ("NVIDIA Old GPU",) and old.compute_capabilities == ()


def _just_below(version: str) -> str:
    """The driver release just before ``version`` (580.65.06 -> 580.65.5): one the minimum must refuse."""
    parts = [int(p) for p in version.split(".")]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] > 0:
            parts[i] -= 1
            return ".".join(map(str, parts[: i + 1])) + (".999" if i < len(parts) - 1 else "")
    raise AssertionError(version)


@pytest.mark.parametrize("cuda", ["12.4", "12.6", "12.8", "13.0", "13.2", "13.9"])
def test_a_variant_without_minimums_gets_the_tables_and_auto_obeys_them(tmp_path: Path, cuda: str) -> None:
    """A CUDA variant whose manifest names no driver or GPU minimum: the tables decide, and a driver exactly
    at the minimum runs it while one release older falls back to cpu (behaviour, not the tables' numbers)."""
    from immutable_installer.core.cuda import min_compute_capability_for, min_driver_for

    name = "cu" + cuda.replace(".", "")
    variants = {"cpu": VARIANTS["cpu"], name: {"index": "default", "torch_packages": [], "cuda": cuda,
                                               "min_driver": None}}
    w = make_wheel(tmp_path, "tiny", "1.0")
    m = manifest_from_data(manifest_data([(w, {"variants": list(variants)})], variants=variants))
    driver, capability = min_driver_for(cuda), min_compute_capability_for(cuda)
    assert driver is not None, f"CUDA {cuda} has a driver minimum"
    arch = capability or "9.0"
    assert choose_variant(m, gpu(driver, arch)).name == name
    assert choose_variant(m, gpu(_just_below(driver), arch)).name == "cpu"
    if capability is not None:
        assert choose_variant(m, gpu(driver, _just_below(capability))).name == "cpu"


def test_newer_cuda_never_asks_less_of_the_machine() -> None:
    """Across every CUDA version the tables know (and the ones they do not), the driver and GPU minimums never
    go down as CUDA goes up; an unknown old CUDA refuses nothing (None), an unknown newer one inherits."""
    from packaging.version import Version

    from immutable_installer.core.cuda import ARCH_MINIMUMS, DRIVER_MINIMUMS, min_compute_capability_for, min_driver_for

    versions = sorted({*DRIVER_MINIMUMS, *ARCH_MINIMUMS, "12.0", "12.4", "13.1", "13.5", "14.0"}, key=Version)
    drivers = [min_driver_for(v) for v in versions]
    archs = [min_compute_capability_for(v) for v in versions]
    known_drivers = [Version(d) for d in drivers if d is not None]
    known_archs = [Version(a) for a in archs if a is not None]
    assert known_drivers == sorted(known_drivers) and known_archs == sorted(known_archs)
    assert min_driver_for("11.8") is None and min_driver_for(None) is None and min_compute_capability_for("12.4") is None


def test_detect_and_install_on_a_simulated_v100(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIMULATION: a V100 (compute capability 7.0) with a new driver: detect says cu130 cannot run and why,
    `install --variant cu130` is refused before anything is built, `auto` installs cpu."""
    import json

    from conftest import Synthetic, cli, write_json

    fake = tmp_path / "bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho '580.82.07, Tesla V100-SXM2-16GB, 7.0'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    stack = Synthetic(tmp_path / "stack")
    cuda_torch = make_wheel(stack.house, "torch", "1.0+cu130")
    variants = {"cpu": {"index": "default", "torch_packages": ["torch"], "cuda": None, "min_driver": None},
                "cu130": {"index": "default", "torch_packages": ["torch"], "cuda": "13.0", "min_driver": "580.65.06"}}
    data = manifest_data([(stack.wheels["tiny-b"], {"variants": ["cpu", "cu130"]}),
                          (stack.wheels["torch"], {"variants": ["cpu"]}), (cuda_torch, {"variants": ["cu130"]})],
                         variants=variants)
    manifest = write_json(tmp_path / "m.json", data)
    detected = json.loads(cli("detect", "--json", "--manifest", str(manifest), cwd=tmp_path).stdout)
    assert detected["compute_capability"] == ["7.0"] and detected["variant"] == "cpu"
    assert {v["name"]: v["ok"] for v in detected["variants"]} == {"cpu": True, "cu130": False}
    args = ("install", "--manifest", str(manifest), "--wheelhouse", str(stack.house), "--skip-wheelhouse",
            "--venv", str(tmp_path / ".venv"), "--store", str(tmp_path / "store"))
    refused = cli(*args, "--variant", "cu130", cwd=tmp_path)
    assert refused.returncode == 2 and "compute capability 7.0" in refused.stderr and "picks cpu" in refused.stderr
    assert not (tmp_path / ".venv").exists()
    assert cli(*args, "--variant", "auto", "--json", cwd=tmp_path).returncode == 0
