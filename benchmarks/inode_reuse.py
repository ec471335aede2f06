"""Does this filesystem make new files slow after many were deleted? Creates 30,000 empty files in a fresh
folder, deletes them, creates 30,000 again at once, then again after a pause. On a journal-less ext4 the inode
allocator skips recently deleted inodes (``recently_deleted`` in fs/ext4/ialloc.c), so the second and third
batches are many times slower; with a journal (and on other filesystems) all three cost about the same.
Benchmarks that delete one contender's tree before the next runs are skewed by it (benchmarks/install.py).

Usage: python benchmarks/inode_reuse.py [--dir DIR] [--pause 70]   (DIR on the filesystem to test; default .)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time


def create(folder: str, files: int = 30_000) -> tuple[float, float]:
    """Seconds of wall and system time to create ``files`` empty files, 100 per folder."""
    os.makedirs(folder)
    started, before = time.perf_counter(), os.times()
    for i in range(0, files, 100):
        sub = os.path.join(folder, str(i))
        os.mkdir(sub)
        for j in range(100):
            os.close(os.open(os.path.join(sub, str(j)), os.O_CREAT | os.O_WRONLY, 0o644))
    return time.perf_counter() - started, os.times().system - before.system


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=".")
    parser.add_argument("--pause", type=float, default=70.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        steps = [("fresh", 0.0), ("right after deleting them", 0.0), (f"{args.pause:.0f} s later", args.pause)]
        for n, (label, pause) in enumerate(steps):
            time.sleep(pause)
            wall, system = create(os.path.join(base, str(n)))
            print(f"30,000 files, {label:28} {wall:5.2f} s (system {system:.2f} s)")
            shutil.rmtree(os.path.join(base, str(n)))
            os.sync()


if __name__ == "__main__":
    main()
