"""`import torch; from transformers import PreTrainedModel` in two environments, interleaved (medians): what a
change to how the store writes bytecode costs the imports (reproducible entries: a fixed source mtime and
prefix-relative names in the bytecode, against bytecode naming the fill's staging folder).

Usage: python benchmarks/import_speed.py --before VENV --after VENV [--runs 10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, compare

CODE = "import torch; from transformers import PreTrainedModel"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = base_env()
    results = compare({
        "before": ([str(Path(args.before) / "bin" / "python"), "-c", CODE], env),
        "after": ([str(Path(args.after) / "bin" / "python"), "-c", CODE], env),
    }, runs=args.runs, warmup=2)
    for name, seconds in results.items():
        print(f"{name:8} {seconds:.3f} s (median of {args.runs})")
    print(f"after / before: {results['after'] / results['before']:.3f}")


if __name__ == "__main__":
    main()
