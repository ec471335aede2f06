"""`lock` of the shipped spec against uv's own `uv pip compile` of the same requests, and against `lock
--resolver pip`: side by side, interleaved, medians.

The uv contender replays exactly the `uv pip compile` calls our lock makes (one per variant and target
platform: same requirements, constraints, indexes, find-links, platform and Python), captured from one
in-process lock; so the ratio is what our lock adds around uv's resolution (reading each wheel's metadata,
blacklist chains, the manifest). All write fresh output (no existing pins); caches are warmed by one untimed
run of each. Every lock uses the machine's pip configuration as a source (`--use-pip-config`): a fresh lock
needs torch's CPU build, and where the PyTorch CPU index is unreachable (as on this project's machine) that
configuration's find-links or mirror is where it is.

Usage: python benchmarks/lock_speed.py [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, compare

REPO = Path(__file__).resolve().parent.parent

OURS = [sys.executable, "-m", "immutable_installer"]


def captured_uv_calls(keep: Path) -> list[list[str]]:
    """The `uv pip compile` commands one lock of the shipped spec runs, with their input files copied to
    ``keep`` (the lock deletes its own temporary copies)."""
    sys.path.insert(0, str(REPO))
    from immutable_installer.core.spec import load_spec
    from immutable_installer.lock.locker import Locker, LockOptions
    from immutable_installer.runner import Runner

    calls: list[list[str]] = []
    original = Runner.run

    def spy(self: Runner, args: list[str], **kwargs: object) -> object:
        argv = [str(a) for a in args]
        if len(argv) > 2 and argv[1:3] == ["pip", "compile"]:
            call = []
            for i, arg in enumerate(argv):
                src = Path(arg)
                if arg.startswith("/") and src.is_file() and "immutable-lock-" in arg:
                    dst = keep / f"{len(calls)}-{i}-{src.name}"
                    shutil.copy(src, dst)
                    arg = str(dst)
                elif i > 0 and argv[i - 1] == "-o":
                    arg = str(keep / f"pylock.out{len(calls)}.toml")
                call.append(arg)
            calls.append(call)
        return original(self, args, **kwargs)  # type: ignore[arg-type]

    Runner.run = spy  # type: ignore[method-assign]
    try:
        Locker().lock(load_spec(REPO / "metadata/requirements.toml"), LockOptions(isolated=False))
    finally:
        Runner.run = original  # type: ignore[method-assign]
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = base_env()
    with tempfile.TemporaryDirectory() as tmp:
        calls = captured_uv_calls(Path(tmp))
        script = Path(tmp) / "uv-calls.sh"
        script.write_text("set -e\n" + "".join(" ".join(f"'{a}'" for a in call) + "\n" for call in calls))

        def cmd(resolver: str) -> list[str]:
            return [*OURS, "lock", "--spec", str(REPO / "metadata/requirements.toml"),
                    "-o", f"{tmp}/{resolver}.json", "--resolver", resolver, "--use-pip-config"]

        results = compare({"uv pip compile (same calls)": (["bash", str(script)], env),
                           "lock (uv)": (cmd("uv"), env), "lock --resolver pip": (cmd("pip"), env)},
                          runs=args.runs, warmup=1, cwd=tmp)
        same = Path(f"{tmp}/pip.json").read_bytes() == Path(f"{tmp}/uv.json").read_bytes()
    for name, seconds in results.items():
        print(f"{name:28} {seconds:6.1f} s (median of {args.runs})")
    print(f"{len(calls)} uv pip compile calls; lock (uv) / uv pip compile: "
          f"{results['lock (uv)'] / results['uv pip compile (same calls)']:.2f}; "
          f"lock (uv) / lock --resolver pip: {results['lock (uv)'] / results['lock --resolver pip']:.2f}; "
          f"identical manifests: {same}")


if __name__ == "__main__":
    main()
