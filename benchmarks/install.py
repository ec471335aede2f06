"""Offline install of the reference wheelhouse: immutable-installer (store) vs pip vs uv, side by side in one run.

All contenders install the same pinned wheels from the same wheelhouse into a fresh environment with no index.
pip and uv only install (and compile bytecode); immutable-installer also writes shims/locks/receipt and runs the
full verifier (torch + transformers forward pass) before switching, so its time is "usable and proven".

Contenders, interleaved run by run (medians):
  pip                      fresh venv, pip install --no-index --no-deps --require-hashes (compiles bytecode)
  uv (warm cache)          fresh venv, uv pip install --offline --compile-bytecode, cache filled beforehand
  uv (cold cache)          the same with a new, empty cache (uv's first install on a machine)
  ours, warm store         install --skip-wheelhouse --force of an unchanged manifest
  ours, empty store        the same with a new, empty --store (first install on a machine)
  ours, one package new    a manifest that changes one small package (tqdm) whose store entry is removed first
Then, for each of our contenders, what its verify weighed (the seconds its ``--json`` result gives the verify)
and the same ratios without it; then the disk cost of generations (du, hard links counted once).

Nothing a contender wrote is deleted until the end (about 7 GB a run): this host's ext4 runs without a
journal, and there allocating an inode skips every inode deleted in the last minutes (``recently_deleted`` in
ext4's allocator, 6 % of a cold install's profile), so creating 30,000 files took 0.17 s in a fresh folder
and 2.4 s right after 30,000 others were deleted. Deleting one contender's tree before the next made every
later run pay for it, by turns (docs/performance.md). Start a run some minutes after deleting large trees.
Each timed command starts after ``os.sync()`` (not timed): a contender leaves up to a gigabyte of dirty pages,
which the kernel would otherwise write back during the next contender's run, whoever that is.

Usage: python benchmarks/install.py --project DIR [--runs 3]   (DIR: metadata/ + a complete wheelhouse/;
network is needed once to download the other tqdm version)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, pinned_requirements, stack_arguments

OTHER_TQDM = "4.67.1"

OURS = [sys.executable, "-m", "immutable_installer"]


def ensure_uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uv"], check=True)
    return uv


def du(*paths: Path) -> int:
    """Bytes on disk of ``paths`` together, each hard-linked file counted once (GNU du's default)."""
    out = subprocess.run(["du", "-s", "-B1", "-c", *map(str, paths)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1].split()[0])


def changed_manifest(project: Path, out: Path, env: dict[str, str]) -> tuple[Path, str]:
    """The reference manifest with tqdm at another version (downloaded into the wheelhouse once)."""
    house = project / "wheelhouse"
    if not list(house.glob(f"tqdm-{OTHER_TQDM}-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                        "-d", str(house), f"tqdm=={OTHER_TQDM}"], check=True, env=env)
    wheel = next(house.glob(f"tqdm-{OTHER_TQDM}-*.whl"))
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    data = json.loads((project / "metadata/dependencies.json").read_text())
    for package in data["packages"]:
        if package["name"] == "tqdm":
            package["version"] = OTHER_TQDM
            package["files"] = [{**package["files"][0], "filename": wheel.name, "sha256": sha,
                                 "size": wheel.stat().st_size, "url": None}]
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return out, sha


def settled_start() -> float:
    """The start of a timed command, after the previous contender's dirty pages are written back (not timed)."""
    os.sync()
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser()
    args, project, manifest, needed = stack_arguments(parser)
    house = project / "wheelhouse"
    uv = ensure_uv()
    env = base_env()
    names = ["pip", "uv (warm cache)", "uv (cold cache)", "ours, warm store", "ours, empty store",
             "ours, one package new"]
    samples: dict[str, list[float]] = {k: [] for k in names}
    verified: dict[str, list[float]] = {k: [] for k in names if k.startswith("ours")}  # each run's verify
    with tempfile.TemporaryDirectory(dir=project) as tmp_name:
        tmp = Path(tmp_name)
        reqs = tmp / "reqs.txt"
        reqs.write_text(pinned_requirements(needed))
        cache = tmp / "uv-cache"
        warm_store = tmp / "store"
        other, other_sha = changed_manifest(project, tmp / "changed.json", env)
        other_key = f"cp{manifest.python.version.replace('.', '')}-{other_sha}"

        def ours(venv: str, store: Path, manifest_file: Path | None = None, name: str | None = None) -> None:
            """One install; under the contender ``name``, its seconds and its verify's own seconds (from the
            ``--json`` result) are kept (without ``name``: an untimed fill)."""
            started = settled_start()
            done = subprocess.run([*OURS, "install", "--skip-wheelhouse", "--force", "--keep",
                                   "0", "--variant", args.variant, "--json", "--venv", str(tmp / venv), "--store",
                                   str(store), *(["--manifest", str(manifest_file)] if manifest_file else [])],
                                  check=True, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
            if name is not None:
                samples[name].append(time.perf_counter() - started)
                verified[name].append(json.loads(done.stdout.splitlines()[-1])["phases"]["verify"])

        def uv_install(venv: Path, cache_dir: Path) -> None:
            """uv's whole path: a fresh venv, then every wheel with its bytecode compiled."""
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
            subprocess.run([uv, "pip", "install", "-q", "--offline", "--no-index", "--no-deps", "--find-links",
                            str(house), "--compile-bytecode", "--cache-dir", str(cache_dir), "--python",
                            str(venv / "bin/python"), "-r", str(reqs)], check=True, env=env)

        # fill the warm store and uv's cache once (not timed)
        ours("warm", warm_store)
        ours("changed", warm_store, other)
        uv_install(tmp / "uv-fill", cache)
        for run in range(args.runs):
            venv = tmp / f"pip-{run}"
            started = settled_start()
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
            subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
                            "--isolated", "--no-index", "--no-deps", "--require-hashes", "--find-links", str(house),
                            "-r", str(reqs)], check=True, env=env)
            samples["pip"].append(time.perf_counter() - started)
            started = settled_start()
            uv_install(tmp / f"uv-{run}", cache)
            samples["uv (warm cache)"].append(time.perf_counter() - started)
            started = settled_start()
            uv_install(tmp / f"uv-cold-{run}", tmp / f"uv-cold-cache-{run}")
            samples["uv (cold cache)"].append(time.perf_counter() - started)
            ours("warm", warm_store, name="ours, warm store")
            ours(f"cold-venv-{run}", tmp / f"cold-{run}", name="ours, empty store")
            shutil.rmtree(warm_store / "entries" / other_key)  # the changed package is new to the store again
            ours("changed", warm_store, other, name="ours, one package new")

        # ratios to three places: the targets sit at the second (0.154 is not within 0.15)
        medians = {k: statistics.median(v) for k, v in samples.items()}
        for name, seconds in medians.items():
            print(f"{name:24} {seconds:6.1f} s  ratio to pip {seconds / medians['pip']:.3f}  "
                  f"to uv warm {seconds / medians['uv (warm cache)']:.3f}  "
                  f"to uv cold {seconds / medians['uv (cold cache)']:.3f}   runs: "
                  + ", ".join(f"{s:.1f}" for s in samples[name]))
        print(f"one package new / warm store: {medians['ours, one package new'] / medians['ours, warm store']:.3f}")
        # What the verify (which pip and uv do not do) weighs: its own median, and each of our installs without it
        # (run by run, then the median), against the same pip and uv medians.
        for name, verifies in verified.items():
            check = statistics.median(verifies)
            rest = statistics.median(total - own for total, own in zip(samples[name], verifies, strict=True))
            print(f"{name:24} verify {check:4.1f} s = {check / medians['pip']:.3f} x pip; without it {rest:4.1f} s = "
                  f"{rest / medians['pip']:.3f} x pip, {rest / medians['uv (cold cache)']:.3f} x uv cold")

        # disk: the first generation with its store, then what one more generation adds
        subprocess.run([*OURS, "install", "--skip-wheelhouse", "--force", "--keep", "5",
                        "--variant", args.variant, "--json", "--venv", str(tmp / "warm"), "--store", str(warm_store)],
                       check=True, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gens = sorted(p for p in (tmp / "warm.generations").iterdir() if p.is_dir())
        first = du(warm_store, gens[0])
        second = du(warm_store, gens[0], gens[1]) - first
        print(f"disk: store + first generation {first / 1e9:.2f} GB; a second generation adds {second / 1e6:.1f} MB "
              f"({100 * second / first:.2f} %); --keep 5 (6 generations) costs {5 * second / 1e6:.0f} MB over the "
              "first")
        print(f"plain pip venv for comparison: {du(tmp / 'uv-fill') / 1e9:.2f} GB (uv's, compiled)")


if __name__ == "__main__":
    main()
