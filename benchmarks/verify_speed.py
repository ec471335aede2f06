"""`verify` of an environment against `python -c "import torch; from transformers import PreTrainedModel"`.

Target (verifier issue): verify <= 1.15 x the bare imports, measured side by side in one run.
Usage: python benchmarks/verify_speed.py --project DIR [--runs 5]
       (DIR holds metadata/dependencies.json and a built .venv, e.g. after the README's first command)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, compare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=".")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    project = Path(args.project).resolve()
    venv_python = str(project / ".venv" / "bin" / "python")
    tool = [sys.executable, "-m", "immutable_installer"]
    env = base_env()
    results = compare({
        "bare imports": ([venv_python, "-c", "import torch; from transformers import PreTrainedModel"], env),
        "immutable-installer verify": ([*tool, "verify", "--json"], env),
    }, runs=args.runs, warmup=1, cwd=str(project))
    for name, seconds in results.items():
        print(f"{name:28} {seconds:6.2f} s (median of {args.runs})")
    print(f"ratio verify / bare imports: {results['immutable-installer verify'] / results['bare imports']:.2f}")


if __name__ == "__main__":
    main()
