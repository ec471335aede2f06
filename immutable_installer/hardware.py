"""Platform and CUDA driver detection, and the variant `--variant auto` picks.

The driver is read without importing torch (torch is what we are about to install): first
``/proc/driver/nvidia/version``, then ``nvidia-smi``; libcuda (via ctypes) tells the newest CUDA the driver
supports. None of this has run on a GPU here: it is tested with a fake ``nvidia-smi`` on PATH and injected
driver strings (docs/hardware.md).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sys
from dataclasses import dataclass, field

from packaging.markers import default_environment
from packaging.tags import sys_tags
from packaging.version import Version

from immutable_installer.core.cuda import at_least, min_compute_capability_for, min_driver_for, version_or_none
from immutable_installer.core.errors import UsageError
from immutable_installer.core.model import Manifest, Platform, Variant
from immutable_installer.runner import Runner, clean_env

PROC_VERSION = "/proc/driver/nvidia/version"
_DRIVER_RE = re.compile(r"Kernel Module(?:\s+for\s+\w+)?\s+(\d+\.\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Hardware:
    """What detection found; ``source`` says where the driver version came from."""

    python: str
    implementation: str
    platform_tags: tuple[str, ...]
    driver: str | None
    driver_source: str | None
    cuda_driver_api: str | None = None
    gpus: tuple[str, ...] = field(default_factory=tuple)
    compute_capabilities: tuple[str, ...] = field(default_factory=tuple)  # one per GPU, e.g. "8.0"


def parse_proc_version(text: str) -> str | None:
    """Driver version from the kernel module banner in /proc/driver/nvidia/version."""
    match = _DRIVER_RE.search(text)
    return match.group(1) if match else None


def parse_nvidia_smi(text: str) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``nvidia-smi --query-gpu=driver_version,name[,compute_cap] --format=csv,noheader`` -> driver, GPU names,
    compute capabilities (empty when the query had no ``compute_cap``: older drivers lack it)."""
    drivers, names, caps = [], [], []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if not parts or not re.fullmatch(r"\d+\.\d+(\.\d+)?", parts[0]):
            continue
        drivers.append(parts[0])
        rest = parts[1:]
        if rest and re.fullmatch(r"\d+\.\d+", rest[-1]):
            caps.append(rest.pop())
        if rest:
            names.append(", ".join(rest))  # a GPU name may hold a comma
    return (drivers[0] if drivers else None), tuple(names), tuple(caps)


def libcuda_version() -> str | None:
    """Newest CUDA version the installed driver supports (cuDriverGetVersion), or None without libcuda."""
    for lib in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        version = ctypes.c_int()
        try:
            if cuda.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value:
                return f"{version.value // 1000}.{(version.value % 1000) // 10}"
        except AttributeError:
            return None
    return None


def find_nvidia_smi() -> str | None:
    """``nvidia-smi`` on PATH (``nvidia-smi.exe`` through PATHEXT on Windows), else where Windows drivers put it:
    ``System32`` (drivers since 2019) or ``NVSMI`` under Program Files (older ones), neither always on PATH."""
    found = shutil.which("nvidia-smi", path=os.environ.get("PATH"))
    if found or os.name != "nt":
        return found
    candidates = [os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32", "nvidia-smi.exe"),
                  os.path.join(os.environ.get("PROGRAMW6432") or os.environ.get("PROGRAMFILES", r"C:\Program Files"),
                               "NVIDIA Corporation", "NVSMI", "nvidia-smi.exe")]
    return next((c for c in candidates if os.path.isfile(c)), None)


def detect(proc_path: str = PROC_VERSION, use_libcuda: bool = True) -> Hardware:
    """Detect python, platform tags and the NVIDIA driver of this machine."""
    runner = Runner()
    tags = tuple(dict.fromkeys(t.platform for t in sys_tags()))
    driver, source = None, None
    gpus: tuple[str, ...] = ()
    try:
        with open(proc_path, encoding="utf-8", errors="replace") as fh:
            driver = parse_proc_version(fh.read())
            source = proc_path if driver else None
    except OSError:
        pass
    caps: tuple[str, ...] = ()
    smi = find_nvidia_smi()
    if smi:
        for query in ("driver_version,name,compute_cap", "driver_version,name"):  # compute_cap: drivers >= 510
            result = runner.run([smi, f"--query-gpu={query}", "--format=csv,noheader"], env=clean_env(), timeout=20)
            if result.ok:
                smi_driver, gpus, caps = parse_nvidia_smi(result.stdout)
                if driver is None and smi_driver:
                    driver, source = smi_driver, "nvidia-smi"
                break
    api = libcuda_version() if use_libcuda and driver else None
    impl = sys.implementation.name
    return Hardware(f"{sys.version_info.major}.{sys.version_info.minor}", impl, tags, driver, source, api, gpus,
                    caps)


@dataclass(frozen=True)
class Fit:
    """Whether this machine can run a variant, and why not."""

    variant: Variant
    ok: bool
    why: str


def variant_fits(manifest: Manifest, hardware: Hardware) -> list[Fit]:
    """Each variant against the detected driver, the CUDA version it supports and the GPUs' architecture."""
    out = []
    lowest_cc = min(hardware.compute_capabilities, key=lambda c: version_or_none(c) or Version("0"), default=None)
    for variant in manifest.variants:
        if not variant.is_cuda:
            out.append(Fit(variant, True, "runs anywhere"))
            continue
        if hardware.driver is None:
            out.append(Fit(variant, False, "no NVIDIA driver found"))
            continue
        need_driver = variant.min_driver or min_driver_for(variant.cuda)
        if at_least(hardware.driver, need_driver) is False:
            out.append(Fit(variant, False, f"driver {hardware.driver} is older than the {need_driver} CUDA "
                                           f"{variant.cuda} needs"))
            continue
        if hardware.cuda_driver_api and at_least(hardware.cuda_driver_api, variant.cuda) is False:
            out.append(Fit(variant, False, f"the driver supports CUDA up to {hardware.cuda_driver_api}, not "
                                           f"{variant.cuda}"))
            continue
        need_cc = variant.min_compute_capability or min_compute_capability_for(variant.cuda)
        if lowest_cc is not None and at_least(lowest_cc, need_cc) is False:
            out.append(Fit(variant, False, f"a GPU of compute capability {lowest_cc} is older than the {need_cc} "
                                           f"this CUDA {variant.cuda} build of torch needs"))
            continue
        out.append(Fit(variant, True, f"driver {hardware.driver}"
                                      + (f", compute capability {lowest_cc}" if lowest_cc else "")))
    return out


def choose_variant(manifest: Manifest, hardware: Hardware) -> Variant:
    """The best variant the machine can run: the newest CUDA its driver and GPUs support, else cpu."""
    fits = [f.variant for f in variant_fits(manifest, hardware) if f.ok and f.variant.is_cuda]
    if fits:
        return max(fits, key=lambda v: version_or_none(v.cuda) or Version("0"))
    for variant in manifest.variants:
        if variant.name == "cpu":
            return variant
    raise UsageError("no variant of the manifest fits this machine (no NVIDIA driver found and no cpu variant)",
                     hint=f"pass --variant with one of {manifest.variant_names()} to force one")


def check_variant(manifest: Manifest, variant: Variant, hardware: Hardware) -> None:
    """An explicit CUDA variant on a machine whose driver or GPU is known to be too old is refused (exit 2):
    it would install and then fail at the first CUDA call. Without a driver (a build machine, a container being
    prepared) nothing is known, and nothing is refused."""
    if not variant.is_cuda or hardware.driver is None:
        return
    fit = next(f for f in variant_fits(manifest, hardware) if f.variant.name == variant.name)
    if not fit.ok:
        better = choose_variant(manifest, hardware)
        raise UsageError(f"variant {variant.name} cannot run on this machine: {fit.why}",
                         hint=f"`--variant auto` picks {better.name} here; or update the NVIDIA driver")


def resolve_variant(manifest: Manifest, requested: str, hardware: Hardware | None = None) -> Variant:
    """``auto`` -> detection; anything else must be a variant of the manifest."""
    if requested == "auto":
        return choose_variant(manifest, hardware or detect())
    if requested not in manifest.variant_names():
        raise UsageError(f"--variant {requested!r} is not in the manifest",
                         hint=f"choose one of: auto, {', '.join(manifest.variant_names())}")
    variant = manifest.variant(requested)
    if variant.is_cuda:
        check_variant(manifest, variant, hardware or detect())
    return variant


def host_platform(manifest: Manifest, hardware: Hardware | None = None) -> Platform:
    """The manifest platform this machine is: its markers match and one of its tags is supported here."""
    env = default_environment()
    tags = set(hardware.platform_tags if hardware else (t.platform for t in sys_tags()))
    for platform in manifest.platforms:
        if all(env.get(k) == v for k, v in platform.environment.items()) and tags & set(platform.tags):
            return platform
    why = []
    for platform in manifest.platforms:
        wrong = [f"{k} {v!r} (here {env.get(k)!r})" for k, v in platform.environment.items() if env.get(k) != v]
        if not tags & set(platform.tags):
            wrong.append(f"tags {', '.join(platform.tags)} (none supported here)")
        why.append(f"{platform.name}: {'; '.join(wrong)}")
    glibc = [t for t in tags if t.startswith("manylinux_2_") and t.split("_")[2].isdigit()]
    best = max(glibc, key=lambda t: int(t.split("_")[2])) if glibc else min(tags, default="")
    raise UsageError(f"this machine ({env['sys_platform']} {env['platform_machine']}) is none of the manifest's "
                     f"platforms: {' | '.join(why)}",
                     hint=f"add this machine to the lock: `immutable-installer lock --platform {best}` (with your "
                          "--spec or requirements), then install")
