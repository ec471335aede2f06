"""How many times an install reads each wheel: bytes read from wheelhouse files by the whole process tree
(under strace), divided by the wheelhouse's size. The target is at most 1.0 (each wheel read at most once): a
cold install reads each wheel once, a warm one none (the store's entries kept what the scan read).

Counts read/pread64 on file descriptors opened on a path inside the wheelhouse (strace -f follows every child;
only our own process opens wheelhouse files: pip, uv and the compilers are not involved).

Usage: python benchmarks/wheel_reads.py --project DIR [--variant cpu]   (DIR: metadata/ + a complete wheelhouse/)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env

OPEN = re.compile(r'^(\d+)\s+openat\([^,]+, "([^"]+)", [^)]*\)\s*=\s*(\d+)')
READ = re.compile(r"^(\d+)\s+p?read(?:64)?\((\d+), .*\)\s*=\s*(\d+)$")
READ_STARTS = re.compile(r"^(\d+)\s+p?read(?:64)?\((\d+),\s*<unfinished \.\.\.>$")
READ_ENDS = re.compile(r"^(\d+)\s+<\.\.\. p?read(?:64)? resumed>.*\)\s*=\s*(\d+)$")
OPEN_STARTS = re.compile(r'^(\d+)\s+openat\([^,]+, "([^"]+)", .*<unfinished \.\.\.>$')
OPEN_ENDS = re.compile(r"^(\d+)\s+<\.\.\. openat resumed>.*\)\s*=\s*(\d+)$")
CLOSE = re.compile(r"^\d+\s+close\((\d+)\)")


def bytes_read(log: Path, house: Path) -> int:
    """Bytes read from wheelhouse wheels; a read strace splits (``<unfinished ...>`` then ``<... read
    resumed>``, when threads interleave) is matched by thread id, and so is a split open."""
    fds: dict[str, str] = {}
    pending: dict[str, str] = {}  # thread id -> fd of its unfinished read
    opening: dict[str, str] = {}  # thread id -> path of its unfinished open
    total = 0
    prefix = str(house.resolve()) + "/"

    def count(fd: str, nbytes: str) -> int:
        path = fds.get(fd, "")
        return int(nbytes) if path.startswith(prefix) and path.endswith(".whl") else 0

    for line in log.read_text(errors="replace").splitlines():
        if m := OPEN.match(line):
            fds[m.group(3)] = m.group(2)
        elif m := OPEN_STARTS.match(line):
            opening[m.group(1)] = m.group(2)
        elif (m := OPEN_ENDS.match(line)) and m.group(1) in opening:
            fds[m.group(2)] = opening.pop(m.group(1))
        elif m := READ.match(line):
            total += count(m.group(2), m.group(3))
        elif m := READ_STARTS.match(line):
            pending[m.group(1)] = m.group(2)
        elif (m := READ_ENDS.match(line)) and m.group(1) in pending:
            total += count(pending.pop(m.group(1)), m.group(2))
        elif m := CLOSE.match(line):
            fds.pop(m.group(1), None)
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default=".")
    parser.add_argument("--variant", default="cpu")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    house = project / "wheelhouse"
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from immutable_installer.core.manifest import load_manifest
    from immutable_installer.core.selection import select

    manifest = load_manifest(project / "metadata" / "dependencies.json")
    selection = select(manifest, args.variant, manifest.platforms[0])
    size = sum((house / n.wheel.filename).stat().st_size for n in selection.wheels)
    with tempfile.TemporaryDirectory(dir=project) as tmp_name:
        tmp = Path(tmp_name)
        store = tmp / "store"
        for label in ("cold (empty store)", "warm (store filled)"):
            log = tmp / "strace.log"
            subprocess.run(["strace", "-f", "-qq", "-s", "0", "-e", "trace=openat,read,pread64,close", "-o",
                            str(log), sys.executable, "-m", "immutable_installer", "install", "--skip-wheelhouse",
                            "--force", "--keep", "0", "--variant", args.variant, "--json", "--venv",
                            str(tmp / "venv"), "--store", str(store)],
                           check=True, cwd=project, env=base_env(), stdout=subprocess.DEVNULL)
            read = bytes_read(log, house)
            print(f"{label:22} {read / 1e6:8.1f} MB read of a {size / 1e6:.1f} MB wheelhouse: "
                  f"{read / size:.2f} x")
            log.unlink()


if __name__ == "__main__":
    main()
