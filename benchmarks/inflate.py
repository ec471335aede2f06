"""Reading every member of every wheel in the wheelhouse from memory: ``zipfile`` (the system zlib, CRC) against
``dists.members`` (ISA-L, the same checks). CPU seconds of this process, medians, the two interleaved.

On a cold install every core is busy compiling bytecode while the wheels are unpacked, so the CPU the
unpacking takes is what the install waits for.

Usage: python benchmarks/inflate.py --project DIR [--runs 5]   (DIR: a complete wheelhouse/)
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))
from immutable_installer.dists.members import INFLATE, data_limits, open_member


def with_zipfile(wheels: list[bytes]) -> int:
    total = 0
    for data in wheels:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                with zf.open(info) as stream:
                    while chunk := stream.read(1 << 20):
                        total += len(chunk)
    return total


def with_members(wheels: list[bytes]) -> int:
    total = 0
    for data in wheels:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            limits = data_limits(zf)
            for info in zf.infolist():
                stream = open_member(data, zf, info, limits[info.filename])
                while chunk := stream.read(1 << 20):
                    total += len(chunk)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=".")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    wheels = [p.read_bytes() for p in sorted((Path(args.project) / "wheelhouse").glob("*.whl"))]
    samples: dict[str, list[float]] = {"zipfile (zlib)": [], f"dists.members ({INFLATE.__name__})": []}
    sizes = set()
    for _ in range(args.runs):
        for name, read in zip(samples, (with_zipfile, with_members), strict=True):
            started = time.process_time()
            sizes.add(read(wheels))
            samples[name].append(time.process_time() - started)
    assert len(sizes) == 1, "the two readers disagree on the bytes"
    print(f"{len(wheels)} wheels, {sum(map(len, wheels)) / 1e6:.0f} MB compressed, {sizes.pop() / 1e6:.0f} MB out")
    base = statistics.median(next(iter(samples.values())))
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:32} {median:5.2f} s CPU  ({median / base:.2f} x)   runs: "
              + ", ".join(f"{v:.2f}" for v in values))


if __name__ == "__main__":
    main()
