"""`lock` of the shipped spec: uv's resolver (markers for the target) vs pip's, side by side, interleaved, medians.

Both write a fresh manifest (no existing pins to keep) from metadata/requirements.toml with the user's pip
configuration (mirrors, find-links); both resolvers' caches are warmed by one untimed run each.
Usage: python benchmarks/lock_speed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, compare

REPO = Path(__file__).resolve().parent.parent

OURS = [sys.executable, "-m", "immutable_installer"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = base_env()
    with tempfile.TemporaryDirectory() as tmp:
        def cmd(resolver: str) -> list[str]:
            return [*OURS, "lock", "--spec", str(REPO / "metadata/requirements.toml"),
                    "-o", f"{tmp}/{resolver}.json", "--resolver", resolver]

        results = compare({"lock --resolver pip": (cmd("pip"), env), "lock --resolver uv": (cmd("uv"), env)},
                          runs=args.runs, warmup=1, cwd=tmp)
        same = Path(f"{tmp}/pip.json").read_bytes() == Path(f"{tmp}/uv.json").read_bytes()
    for name, seconds in results.items():
        print(f"{name:22} {seconds:6.1f} s (median of {args.runs})")
    print(f"ratio uv / pip: {results['lock --resolver uv'] / results['lock --resolver pip']:.2f}; "
          f"identical manifests: {same}")


if __name__ == "__main__":
    main()
