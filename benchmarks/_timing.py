"""Shared helpers: run commands alternately (so machine noise hits all sides alike), report medians."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def time_once(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def compare(commands: Mapping[str, tuple[Sequence[str], Mapping[str, str] | None]], runs: int,
            warmup: int = 2, cwd: str | None = None) -> dict[str, float]:
    """Median seconds per named command, interleaved run by run."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(warmup):
        for cmd, env in commands.values():
            time_once(cmd, env, cwd)
    for _ in range(runs):
        for name, (cmd, env) in commands.items():
            samples[name].append(time_once(cmd, env, cwd))
    return {name: statistics.median(values) for name, values in samples.items()}


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def stack_arguments(parser: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path, Any, list[Any]]:
    """``--project DIR --runs N --variant V`` (the benchmarks that install a project's stack), the project's folder,
    its manifest and the wheels the manifest selects for that variant on its first platform."""
    parser.add_argument("--project", default=".")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--variant", default="cpu")
    args = parser.parse_args()
    project = Path(args.project).resolve()
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from immutable_installer.core.manifest import load_manifest
    from immutable_installer.core.selection import select

    manifest = load_manifest(project / "metadata" / "dependencies.json")
    return args, project, manifest, list(select(manifest, args.variant, manifest.platforms[0]).wheels)


def pinned_requirements(needed: Sequence[Any], operator: str = "===") -> str:
    """One hash-pinned requirement line per selected wheel, for pip and uv. ``===`` (an exact string) by default:
    with both torch builds in a wheelhouse, ==2.13.0 would also match 2.13.0+cpu."""
    return "".join(f"{n.package.name}{operator}{n.package.version} --hash=sha256:{n.wheel.sha256}\n" for n in needed)
