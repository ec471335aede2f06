"""Linking a stack's store entries into an empty folder with 1, 2, 4 and 8 placing threads (populate.py).

Usage: python benchmarks/link_threads.py --project . [--store DIR] [--runs 4]
The store must hold every entry of the project's manifest (run an install first). Runs alternate between the
thread counts, with a sync and a pause before each so the previous run's deletions do not land on the next.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=".")
    parser.add_argument("--store", default=None)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    project = Path(args.project).resolve()
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import immutable_installer.generation.populate as populate
    from immutable_installer.core.manifest import load_manifest
    from immutable_installer.core.selection import select
    from immutable_installer.generation.linking import Linker
    from immutable_installer.store.entries import Store, interpreter_tag

    manifest = load_manifest(project / "metadata" / "dependencies.json")
    selection = select(manifest, manifest.default_variant, manifest.platforms[0])
    store = Store(Path(args.store) if args.store else None)
    interp = interpreter_tag(manifest.python.implementation, manifest.python.minor)
    entries = [store.load(store.key(n.wheel.sha256, interp)) for n in selection.wheels]
    samples: dict[int, list[float]] = {n: [] for n in (1, 2, 4, 8)}
    with tempfile.TemporaryDirectory(dir=project) as tmp:
        target = Path(tmp) / "generation"
        for _ in range(args.runs):
            for threads in samples:
                shutil.rmtree(target, ignore_errors=True)
                os.sync()
                time.sleep(1)
                target.mkdir()
                populate.PLACING_THREADS = threads
                started = time.perf_counter()
                populator = populate.Populator(str(target), Linker("auto"), sys.executable)
                populator.add(entries)
                samples[threads].append(time.perf_counter() - started)
        files = populator.stats.files
    for threads, values in samples.items():
        print(f"{threads} thread(s): {statistics.median(values):.2f} s median ({files} files; runs "
              + ", ".join(f"{v:.2f}" for v in values) + ")")


if __name__ == "__main__":
    main()
