"""Empty-store installs by two versions of immutable-installer, interleaved run by run: a change to the cold
path measured against the commit before it on the same day (the host's speed drifts by 2x between days).

Each version runs from its own interpreter (a venv with that checkout installed), in a scratch copy of the
project (``python -m`` would otherwise import the package from the current directory), with a new store and
target every run. Wall time, CPU of the process tree (user, system) and the phases of each run; nothing is
deleted until the end (benchmarks/install.py says why).

Usage: python benchmarks/cold_ab.py --project DIR --baseline OLD/bin/python [--runs 3]
  e.g. git worktree add /tmp/old HEAD~3 && python3 -m venv /tmp/oldtool && /tmp/oldtool/bin/pip install -e /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env


def cold_install(python: str, project: Path, scratch: Path) -> tuple[float, float, float, dict[str, float]]:
    """One install into a new store and target; (wall, user, system, phases)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([python, "-m", "immutable_installer", "install", "--skip-wheelhouse", "--force", "--keep",
                           "0", "--json", "--venv", str(scratch / "venv"), "--store", str(scratch / "store")],
                          cwd=project, env=base_env(HOME=str(scratch)), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = next(e for e in map(json.loads, proc.stdout.splitlines()) if e.get("event") == "result")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, result["phases"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=".")
    parser.add_argument("--baseline", required=True, help="the interpreter of a venv holding the older version")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    contenders = {"baseline": args.baseline, "this checkout": sys.executable}
    samples: dict[str, list[tuple[float, float, float, dict[str, float]]]] = {k: [] for k in contenders}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        project = tmp / "project"  # metadata copied, the wheelhouse linked: no package in the working directory
        shutil.copytree(Path(args.project) / "metadata", project / "metadata")
        os.symlink(Path(args.project, "wheelhouse").resolve(), project / "wheelhouse")
        for run in range(args.runs):
            for name, python in contenders.items():
                scratch = tmp / f"{name.replace(' ', '-')}-{run}"
                scratch.mkdir()
                samples[name].append(cold_install(python, project, scratch))
        for name, runs in samples.items():
            walls = [r[0] for r in runs]
            print(f"{name:14} median {statistics.median(walls):5.1f} s   runs: " + ", ".join(f"{w:.1f}" for w in walls))
            for wall, user, system, phases in runs:
                print(f"    {wall:5.1f} s  user {user:5.1f}  sys {system:5.1f}  "
                      + " ".join(f"{k} {v:.1f}" for k, v in sorted(phases.items())))


if __name__ == "__main__":
    main()
