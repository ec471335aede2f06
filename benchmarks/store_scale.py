"""How install time grows with the number of wheels: 50, 500, 2,000 tiny synthetic wheels in 5 groups.

For each size, interleaved run by run (medians): pip into a fresh venv (bytecode compiled), ours with an empty
store (cold), ours with a warm store (`install --force` of an unchanged manifest). The wheels are the tests'
own tiny wheels (tests/conftest.py: a package with two small modules each).

Usage: python benchmarks/store_scale.py [--sizes 50 500 2000] [--runs 3]
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

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _timing import base_env  # noqa: E402

from conftest import make_wheel, manifest_data, write_json  # noqa: E402

GROUPS = ["g1", "g2", "g3", "g4", "g5"]

OURS = [sys.executable, "-m", "immutable_installer"]


def stack(root: Path, count: int) -> Path:
    house = root / "wheelhouse"
    wheels = []
    for i in range(count):
        name = f"synth-{i:05d}"
        module = name.replace("-", "_")
        wheel = make_wheel(house, name, "1.0", files={
            f"{module}/__init__.py": f"from .core import VALUE\nNAME = {name!r}\n",
            f"{module}/core.py": "".join(f"def f{k}(x):\n    return x + {k}\n" for k in range(20)) + "VALUE = 1\n"})
        wheels.append((wheel, {"group": GROUPS[i * len(GROUPS) // count]}))
    manifest = manifest_data(wheels, groups=GROUPS, imports=["synth_00000"])
    return write_json(root / "dependencies.json", manifest)


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = base_env()
    print(f"{'wheels':>7} {'pip':>8} {'ours cold':>10} {'ours warm':>10} {'warm/pip':>9} {'cold/pip':>9}")
    for count in args.sizes:
        with tempfile.TemporaryDirectory() as tmp_name:
            root = Path(tmp_name)
            manifest = stack(root, count)
            house = root / "wheelhouse"
            reqs = [str(p) for p in sorted(house.glob("*.whl"))]
            ours = [*OURS, "install", "--skip-wheelhouse", "--force", "--keep", "0",
                    "--variant", "cpu", "--manifest", str(manifest), "--wheelhouse", str(house)]
            timed([*ours, "--venv", str(root / "warm"), "--store", str(root / "store")], env, root)  # fill
            samples: dict[str, list[float]] = {"pip": [], "cold": [], "warm": []}
            for run in range(args.runs):
                venv = root / f"pip-{run}"
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=env)
                subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "-q",
                                "--isolated", "--no-index", "--no-deps", *reqs], check=True, env=env)
                samples["pip"].append(time.perf_counter() - started)
                shutil.rmtree(venv)
                samples["cold"].append(timed([*ours, "--venv", str(root / f"cold-{run}"),
                                              "--store", str(root / f"cold-store-{run}")], env, root))
                shutil.rmtree(root / f"cold-store-{run}")
                shutil.rmtree(root / f"cold-{run}.generations")
                samples["warm"].append(timed([*ours, "--venv", str(root / "warm"), "--store", str(root / "store")],
                                             env, root))
            m = {k: statistics.median(v) for k, v in samples.items()}
            print(f"{count:>7} {m['pip']:>7.1f}s {m['cold']:>9.1f}s {m['warm']:>9.1f}s "
                  f"{m['warm'] / m['pip']:>9.2f} {m['cold'] / m['pip']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
