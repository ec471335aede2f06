"""When, during a cold fill, the modules the verify's probe imports get their bytecode, against all modules.

Could the probe start before the last entry is compiled? Only if the modules it imports were compiled early.
This compares the bytecode files' write times in a freshly built store: every module of the stack against the
ones that ``import torch; from transformers import PreTrainedModel`` loads in a generation linked from it.

Usage: python benchmarks/probe_order.py --store DIR --venv DIR
(DIR: a store filled by one cold ``install --store DIR --venv VENV``, and that VENV)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

LIST_IMPORTED = """
import json, os, sys, torch
from transformers import PreTrainedModel
cached = [m.__dict__.get("__cached__") for m in list(sys.modules.values()) if hasattr(m, "__dict__")]
print(json.dumps([c.split("site-packages/", 1)[1] for c in cached if isinstance(c, str) and "site-packages/" in c]))
sys.stdout.flush()
os._exit(0)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--venv", required=True)
    args = parser.parse_args()
    out = subprocess.run([str(Path(args.venv) / "bin" / "python"), "-c", LIST_IMPORTED], capture_output=True,
                         text=True, check=True).stdout
    imported = set(json.loads(out.splitlines()[-1]))
    every: list[float] = []
    probed: list[float] = []
    for folder, _dirs, files in os.walk(Path(args.store) / "entries"):
        for name in files:
            if name.endswith(".pyc") and "site-packages/" in folder + "/":
                path = os.path.join(folder, name)
                written = os.stat(path).st_mtime
                every.append(written)
                if path.split("site-packages/", 1)[1] in imported:
                    probed.append(written)
    first = min(every)
    every.sort()
    probed.sort()
    print(f"{len(every)} modules compiled, {len(probed)} of them imported by the probe "
          f"({len(imported)} modules with bytecode in sys.modules)")
    for share in (0.5, 0.8, 0.9, 0.99, 1.0):
        print(f"{share:4.0%} compiled by {every[round(share * (len(every) - 1))] - first:5.1f} s;"
              f" of the probe's: by {probed[round(share * (len(probed) - 1))] - first:5.1f} s")


if __name__ == "__main__":
    main()
