"""Wheelhouse hashing speed: our parallel hashing vs one thread vs `sha256sum`, on several GB of files.

Target (wheelhouse issue): a torch-sized wheelhouse of several GB hashed in a few seconds.
Usage: python benchmarks/scan_hash.py [--gb 3] [--files 6]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))


def main() -> None:
    from immutable_installer.wheelhouse.download import hash_files

    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=3.0)
    parser.add_argument("--files", type=int, default=6)
    args = parser.parse_args()
    size = int(args.gb * (1 << 30) / args.files)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        paths = []
        block = os.urandom(1 << 20)
        for i in range(args.files):
            path = Path(tmp) / f"big-{i}.whl"
            with open(path, "wb") as fh:
                for _ in range(size >> 20):
                    fh.write(block)
            paths.append(path)
        hash_files(paths)  # warm the page cache for all three
        started = time.perf_counter()
        hash_files(paths)
        parallel = time.perf_counter() - started
        started = time.perf_counter()
        for path in paths:
            hashlib.sha256(path.read_bytes()).hexdigest()
        single = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run(["sha256sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)
        coreutils = time.perf_counter() - started
    total = args.gb
    print(f"{total:.1f} GB in {args.files} files")
    for name, seconds in (("parallel (ours)", parallel), ("one thread", single), ("sha256sum", coreutils)):
        print(f"{name:16} {seconds:6.2f} s  {total / seconds:5.2f} GB/s")


if __name__ == "__main__":
    main()
