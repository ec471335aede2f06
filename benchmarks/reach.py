"""export-index and bundle verify against cp / sha256sum of the same files, and download --index-url against
pip download from the same local static index; side by side, interleaved, medians.

Usage: python benchmarks/reach.py --project DIR [--runs 3] [--variant cpu]
(DIR: metadata/ + a complete wheelhouse/; the page cache is warm for every contender alike)
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, pinned_requirements, stack_arguments


def timed(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    args, project, _, needed = stack_arguments(parser)
    house = project / "wheelhouse"
    files = [str(house / n.wheel.filename) for n in needed]
    mb = sum(Path(f).stat().st_size for f in files) / 1e6
    env = base_env()
    ii = [sys.executable, "-m", "immutable_installer"]
    samples: dict[str, list[float]] = {}

    def add(name: str, seconds: float) -> None:
        samples.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(dir=project) as tmp_name:
        tmp = Path(tmp_name)
        bundle = tmp / "stack.tar"
        subprocess.run([*ii, "bundle", "-o", str(bundle), "--variant", args.variant], check=True, cwd=project,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bundle_mb = bundle.stat().st_size / 1e6
        served = tmp / "served"
        subprocess.run([*ii, "export-index", str(served)], check=True, cwd=project, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(served)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/simple"
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        reqs = tmp / "reqs.txt"
        reqs.write_text(pinned_requirements(needed, "=="))
        try:
            for run in range(args.runs):
                add("export-index (hash check + hard links)", timed([*ii, "export-index", str(tmp / f"x{run}")],
                                                                  env, project))
                shutil.rmtree(tmp / f"x{run}")
                add("cp of the same wheels", timed(["cp", *files, str(tmp)], env))
                for f in files:
                    (tmp / Path(f).name).unlink()
                add("sha256sum of the same wheels", timed(["sha256sum", *files], env))
                add("bundle verify", timed([*ii, "bundle", "verify", str(bundle)], env, project))
                add("sha256sum of the bundle", timed(["sha256sum", str(bundle)], env))
                add("download --index-url (static index)",
                    timed([*ii, "download", "--variant", args.variant, "--wheelhouse", str(tmp / f"w{run}"),
                           "--index-url", url], env, project))
                shutil.rmtree(tmp / f"w{run}")
                add("pip download (same index)",
                    timed([sys.executable, "-m", "pip", "download", "--isolated", "--no-deps", "--only-binary",
                           ":all:", "--require-hashes", "-q", "--index-url", url, "-d", str(tmp / f"p{run}"),
                           "-r", str(reqs)], env))
                shutil.rmtree(tmp / f"p{run}")
        finally:
            server.kill()
            server.wait()
    print(f"wheels: {len(files)} files, {mb:.0f} MB; bundle {bundle_mb:.0f} MB")
    for name, values in samples.items():
        med = statistics.median(values)
        size = bundle_mb if "bundle" in name else mb
        print(f"{name:42} {med:6.2f} s  {size / med:7.0f} MB/s   runs: {', '.join(f'{v:.2f}' for v in values)}")
    ratio = statistics.median(samples["download --index-url (static index)"]) / statistics.median(
        samples["pip download (same index)"])
    print(f"download --index-url / pip download: {ratio:.2f}")


if __name__ == "__main__":
    main()
