"""Start-up cost of the runtime shims: the environment's python with and without them, side by side.

Target (shims issue): at most 3 ms over `python -c pass`; `import transformers` must not get slower.
Usage: python benchmarks/shim_overhead.py --venv DIR/.venv [--runs 60]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, compare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", default=".venv")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--import-runs", type=int, default=10)
    args = parser.parse_args()
    py = str(Path(args.venv) / "bin" / "python")
    on, off = base_env(), base_env(IMMUTABLE_INSTALLER_SHIMS_DISABLE="1")
    on.pop("CI", None)
    off.pop("CI", None)
    start = compare({"shims on: -c pass": ([py, "-c", "pass"], on),
                     "shims off: -c pass": ([py, "-c", "pass"], off)}, runs=args.runs, warmup=5)
    imports = compare({"shims on: import transformers": ([py, "-c", "import transformers"], on),
                       "shims off: import transformers": ([py, "-c", "import transformers"], off)},
                      runs=args.import_runs, warmup=1)
    for name, seconds in {**start, **imports}.items():
        print(f"{name:34} {seconds * 1000:8.1f} ms")
    print(f"shim start-up overhead: {(start['shims on: -c pass'] - start['shims off: -c pass']) * 1000:+.2f} ms")
    print(f"import transformers difference: "
          f"{(imports['shims on: import transformers'] - imports['shims off: import transformers']) * 1000:+.1f} ms")


if __name__ == "__main__":
    main()
