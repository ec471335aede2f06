"""A fleet through a registry: `push` once, then "machine B" (an empty store, an empty wheelhouse, the registry on
loopback) installs with `install --from`, against uv and pip installing the same pinned wheels from a local
wheelhouse into a fresh environment, side by side in one run (medians).

Contenders, interleaved run by run:
  pip                       fresh venv, pip install --no-index --no-deps --require-hashes (compiles bytecode)
  uv (cold cache)           uv venv + uv pip install --no-index --no-deps --compile-bytecode, an empty cache
  ours, install --from      empty store and wheelhouse: pull the image's entries, link, verify (verify included)
Before the runs (once each, timed): the cold install that fills machine A's store, the push of that stack to an
empty registry, and a second push of the same stack (nothing to upload).

Usage: python benchmarks/registry.py --project DIR [--runs 3] [--variant cpu]
       (DIR: metadata/ + a complete wheelhouse/; needs Debian's docker-registry)
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, pinned_requirements, stack_arguments
from install import OURS, ensure_uv, settled_start


def start_registry(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"127.0.0.1:{port}"
    (root / "config.yml").write_text(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                                     f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
                                     f"http:\n  addr: {host}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1).close()
            break
        except urllib.error.HTTPError:
            break
        except OSError:
            time.sleep(0.05)
    return proc, host


def stored(root: Path) -> int:
    blobs = root / "data" / "docker" / "registry" / "v2" / "blobs"
    return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.is_dir() else 0


def phase_seconds(stdout: str) -> dict[str, float]:
    """Each phase's seconds from an install's --json events (the pull's, which comes before the pipeline's)."""
    out: dict[str, float] = {}
    for line in stdout.splitlines():
        event = json.loads(line)
        if event["event"] == "phase_done":
            out[event["name"]] = out.get(event["name"], 0.0) + float(event["seconds"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    args, project, _, needed = stack_arguments(parser)
    house = project / "wheelhouse"
    uv = ensure_uv()
    env = base_env()
    with tempfile.TemporaryDirectory(dir=project) as tmp_name:
        tmp = Path(tmp_name)
        env["IMMUTABLE_INSTALLER_CACHE"] = str(tmp / "cache")  # no layer digests cached from earlier runs
        reqs = tmp / "reqs.txt"
        reqs.write_text(pinned_requirements(needed))
        (tmp / "registry").mkdir()
        registry, host = start_registry(tmp / "registry")
        try:
            meta = tmp / "a" / "metadata"
            shutil.copytree(project / "metadata", meta)
            started = settled_start()
            subprocess.run([*OURS, "install", "--skip-wheelhouse", "--variant", args.variant, "--wheelhouse",
                            str(house), "--store", str(tmp / "a" / "store"), "--json"], cwd=tmp / "a", env=env,
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cold = time.perf_counter() - started
            pushes = []
            for _ in range(2):
                started = settled_start()
                done = subprocess.run([*OURS, "push", f"{host}/ml/stack:{args.variant}", "--json"], cwd=tmp / "a",
                                      env=env, check=True, capture_output=True, text=True)
                pushes.append((time.perf_counter() - started, json.loads(done.stdout.splitlines()[-1])))
            image = pushes[0][1]["reference"]
            print(f"cold install that filled the store: {cold:.1f} s")
            print(f"push to an empty registry:          {pushes[0][0]:.1f} s = {pushes[0][0] / cold:.3f} x that cold "
                  f"install; {pushes[0][1]['uploaded_bytes'] / 1e6:.0f} MB uploaded in "
                  f"{len(pushes[0][1]['layers'])} layers; the registry stores {stored(tmp / 'registry') / 1e6:.0f} MB")
            print(f"second push of the same stack:      {pushes[1][0]:.2f} s, "
                  f"{pushes[1][1]['uploaded_bytes']} bytes uploaded")
            samples: dict[str, list[float]] = {"pip": [], "uv (cold cache)": [], "ours, install --from": []}
            phases: list[dict[str, float]] = []
            for run in range(args.runs):
                venv = tmp / f"pip-{run}"
                started = settled_start()
                subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
                subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
                                "--isolated", "--no-index", "--no-deps", "--require-hashes", "--find-links",
                                str(house), "-r", str(reqs)], check=True, env=env)
                samples["pip"].append(time.perf_counter() - started)
                started = settled_start()
                uvenv = tmp / f"uv-{run}"
                subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(uvenv)], check=True, env=env)
                subprocess.run([uv, "pip", "install", "-q", "--offline", "--no-index", "--no-deps", "--find-links",
                                str(house), "--compile-bytecode", "--cache-dir", str(tmp / f"uv-cache-{run}"),
                                "--python", str(uvenv / "bin/python"), "-r", str(reqs)], check=True, env=env)
                samples["uv (cold cache)"].append(time.perf_counter() - started)
                node = tmp / f"node-{run}"
                shutil.copytree(meta, node / "metadata")
                started = settled_start()
                done = subprocess.run([*OURS, "install", "--from", image, "--variant", args.variant, "--store",
                                       str(node / "store"), "--wheelhouse", str(node / "wheelhouse"), "--json"],
                                      cwd=node, env=env, check=True, capture_output=True, text=True)
                samples["ours, install --from"].append(time.perf_counter() - started)
                phases.append(phase_seconds(done.stdout))
            medians = {k: statistics.median(v) for k, v in samples.items()}
            for name, seconds in medians.items():
                runs = ", ".join(f"{s:.1f}" for s in samples[name])
                print(f"{name:22} {seconds:6.1f} s  ratio to pip {seconds / medians['pip']:.3f}  to uv cold "
                      f"{seconds / medians['uv (cold cache)']:.3f}   runs: {runs}")
            for phase in ("pull", "scan", "link", "shims", "verify", "switch"):
                values = [p.get(phase, 0.0) for p in phases]
                print(f"  install --from, {phase:7} {statistics.median(values):5.2f} s (median)")
        finally:
            registry.terminate()
            registry.wait()


if __name__ == "__main__":
    main()
