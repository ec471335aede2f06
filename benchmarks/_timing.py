"""Shared helpers: run commands alternately (so machine noise hits all sides alike), report medians."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence


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
