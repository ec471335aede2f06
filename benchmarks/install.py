"""Offline install of the reference wheelhouse: immutable-installer vs pip vs uv, side by side in one run.

All three install the same pinned wheels from the same wheelhouse into a fresh environment with no index.
pip and uv only install; immutable-installer also precompiles, writes shims/locks/receipt and runs the full
verifier (torch + transformers forward pass) before switching, so its time is an upper bound of "usable and
proven". uv is installed into the running tool venv if missing (from PyPI).
Usage: python benchmarks/install.py --project DIR [--runs 1]   (DIR: metadata/ + a complete wheelhouse/)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env  # noqa: E402


def ensure_uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "uv"], check=True)
    return uv


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=".")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--variant", default="cpu")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from installer.core.manifest import load_manifest
    from installer.wheelhouse.download import needed_wheels

    manifest = load_manifest(project / "metadata" / "dependencies.json")
    needed = needed_wheels(manifest, args.variant, manifest.platforms[0].name)
    house = project / "wheelhouse"
    uv = ensure_uv()
    env = base_env()
    samples: dict[str, list[float]] = {"pip": [], "uv (cold cache)": [], "uv (warm cache)": [],
                                       "immutable-installer": []}
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "reqs.txt"
        reqs.write_text("".join(f"{n.package.name}=={n.package.version} --hash=sha256:{n.wheel.sha256}\n"
                                for n in needed))
        cache = Path(tmp) / "uv-cache"
        for run in range(args.runs):
            venv = Path(tmp) / f"pip-{run}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
            subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
                            "--isolated", "--no-index", "--no-deps", "--require-hashes", "--find-links", str(house),
                            "-r", str(reqs)], check=True, env=env)
            samples["pip"].append(time.perf_counter() - started)
            for label, cache_dir in (("uv (cold cache)", Path(tmp) / f"cold-{run}"), ("uv (warm cache)", cache)):
                venv = Path(tmp) / f"uv-{label[4:8]}-{run}"
                started = time.perf_counter()
                subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
                subprocess.run([uv, "pip", "install", "-q", "--offline", "--no-index", "--no-deps",
                                "--find-links", str(house), "--compile-bytecode", "--cache-dir", str(cache_dir),
                                "--python", str(venv / "bin/python"), "-r", str(reqs)], check=True, env=env)
                samples[label].append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "installer", "install", "--skip-wheelhouse", "--force", "--keep",
                            "0", "--variant", args.variant, "--json"], check=True, cwd=project, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            samples["immutable-installer"].append(time.perf_counter() - started)
    medians = {k: statistics.median(v) for k, v in samples.items()}
    for name, seconds in medians.items():
        print(f"{name:22} {seconds:6.1f} s  (ratio to pip {seconds / medians['pip']:.2f})")


if __name__ == "__main__":
    main()
