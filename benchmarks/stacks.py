"""The real-world corpus: 30+ stacks from the public index, each installed by uv and by us, side by side.

For every stack, in a fresh folder, as a new user would:
  uv:   ``uv venv`` + ``uv pip install REQS``, then ``import`` of the modules the lock chose to verify;
  ours: ``lock REQS -o deps.json``, ``install --manifest deps.json``, ``verify`` (plain requirements, first time).
When our first try stops with an option named (``--build NAME``, ``--allow-pth FILE``), it is tried again with that
option, so the table shows both the first answer and that the option works. The requested packages' versions are
compared with uv's.

    python benchmarks/stacks.py --project . [--only NAME ...] [--write docs/stacks.md]

Needs the network (PyPI). Everything lives under one scratch root (``--root``, default a temporary folder): its
own store, caches and uv cache, so neither the user's store nor their uv cache is touched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STACKS: dict[str, list[str]] = {
    "requests": ["requests"],
    "sklearn-pandas-datasets": ["scikit-learn", "pandas", "datasets"],
    "polars-pyarrow-duckdb": ["polars", "pyarrow", "duckdb"],
    "hydra": ["hydra-core", "omegaconf"],
    "hydra>=1.3": ["hydra-core>=1.3"],
    "spacy": ["spacy"],
    "bs4-lxml": ["beautifulsoup4", "lxml"],
    "pillow-opencv": ["pillow", "opencv-python-headless"],
    "pyzmq-psycopg2": ["pyzmq", "psycopg2-binary"],
    "jax": ["jax[cpu]"],
    "fastapi": ["fastapi", "uvicorn", "pydantic"],
    "flask-sqlalchemy": ["flask", "sqlalchemy"],
    "django": ["django"],
    "matplotlib-seaborn": ["matplotlib", "seaborn"],
    "scipy-statsmodels": ["scipy", "statsmodels"],
    "numba": ["numba"],
    "lightgbm": ["lightgbm"],
    "networkx-sympy": ["networkx", "sympy"],
    "grpc-protobuf": ["grpcio", "protobuf"],
    "google-cloud-storage": ["google-cloud-storage"],
    "boto3": ["boto3"],
    "cli-tools": ["pyyaml", "jinja2", "click", "rich", "typer"],
    "attrs-cattrs": ["attrs", "cattrs"],
    "httpx-aiohttp": ["httpx", "aiohttp"],
    "pytest-hypothesis": ["pytest", "hypothesis"],
    "nltk": ["nltk"],
    "hf-hub": ["tokenizers", "safetensors", "huggingface-hub"],
    "onnxruntime": ["onnx", "onnxruntime"],
    "sentencepiece": ["sentencepiece"],
    "plotly-dash": ["plotly", "dash"],
    "cryptography-paramiko": ["cryptography", "paramiko"],
    "setuptools": ["setuptools"],
    "opentelemetry": ["opentelemetry-api", "opentelemetry-sdk"],
    "einops-tqdm": ["einops", "tqdm"],
}
OPTION = re.compile(r"(--build [A-Za-z0-9._-]+|--allow-pth [A-Za-z0-9._-]+)")


@dataclass
class Outcome:
    stack: str
    uv_ok: bool = False
    uv_note: str = ""
    uv_versions: dict[str, str] = field(default_factory=dict)
    uv_seconds: float = 0.0
    ours_ok: bool = False
    ours_step: str = ""  # where the first try stopped (lock/install/verify) or ""
    ours_note: str = ""
    ours_versions: dict[str, str] = field(default_factory=dict)
    ours_seconds: float = 0.0
    option: str = ""  # the option the first try named
    with_option_ok: bool | None = None
    held_back: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith(("error:", "×", "ERROR")):
            return line[:200]
    return (lines[-1] if lines else "")[:200]


def ours(tool: list[str], reqs: list[str], folder: Path, env: dict[str, str], extra: list[str],
         outcome: Outcome) -> tuple[bool, str, str]:
    """lock, install, verify; returns (ok, the step that stopped, its one-line cause)."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = run([*tool, "lock", *reqs, *extra, "-o", "deps.json", "--json"], folder, env)
    if lock.returncode != 0:
        return False, "lock", last_error(lock.stderr)
    for line in lock.stdout.splitlines():
        event = json.loads(line)
        if event.get("event") == "held_back" and event.get("requested"):
            outcome.held_back.append(f"{event['package']} {event['pinned']} (newest {event['newest']}): "
                                     f"{event['reason']}"[:240])
            found = OPTION.search(event.get("hint", ""))
            if found and not outcome.option and "--build" not in extra:
                outcome.option = found.group(1)
        if event.get("event") == "message" and not outcome.option:
            found = OPTION.search(event.get("text", ""))
            if found and "--build" not in extra and "--allow-pth" not in extra:
                outcome.option = found.group(1)
    manifest = json.loads((folder / "deps.json").read_text())
    outcome.imports = list(manifest["verify"]["imports"])
    outcome.ours_versions = {p["name"]: p["version"] for p in manifest["packages"]}
    install = run([*tool, "install", "--manifest", "deps.json", "--venv", ".venv", "--variant", "auto"], folder, env)
    if install.returncode != 0:
        return False, f"install (exit {install.returncode})", last_error(install.stderr)
    verify = run([*tool, "verify", "--venv", ".venv", "--manifest", "deps.json", "--json"], folder, env)
    if verify.returncode != 0:
        failed = [c for c in json.loads(verify.stdout)["checks"] if c["status"] == "fail"]
        return False, "verify", "; ".join(f"{c['name']}: {c['detail']}" for c in failed)[:200]
    return True, "", ""


def uv(uv_bin: str, reqs: list[str], imports: list[str], folder: Path, env: dict[str, str],
       outcome: Outcome) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    made = run([uv_bin, "venv", "--python", sys.executable, "--no-config", str(folder / ".venv")], folder, env)
    done = run([uv_bin, "pip", "install", "--no-config", "--python", str(folder / ".venv" / "bin" / "python"), *reqs],
               folder, env) if made.returncode == 0 else made
    outcome.uv_seconds = time.monotonic() - started
    if done.returncode != 0:
        outcome.uv_note = last_error(done.stderr)
        return
    frozen = run([uv_bin, "pip", "freeze", "--python", str(folder / ".venv" / "bin" / "python")], folder, env)
    outcome.uv_versions = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
                           for line in frozen.stdout.split() if "==" in line}
    code = "; ".join(f"import {m}" for m in imports) or "pass"
    imported = run([str(folder / ".venv" / "bin" / "python"), "-c", code], folder, env)
    outcome.uv_ok = imported.returncode == 0
    outcome.uv_note = "" if outcome.uv_ok else f"import: {last_error(imported.stderr)}"


def table(outcomes: list[Outcome]) -> str:
    rows = ["| stack | uv: install + import | ours, first time | with the option it named | requested versions "
            "as uv | held back (said) |", "|---|---|---|---|---|---|"]
    for o in outcomes:
        requested = [r.split("[")[0] for r in STACKS[o.stack]]
        names = [re.split(r"[<>=!~ ;]", r)[0].lower() for r in requested]
        same = [n for n in names if o.uv_versions.get(n) and o.uv_versions.get(n) == o.ours_versions.get(n)]
        versions = "yes" if len(same) == len(names) else ", ".join(
            f"{n} {o.ours_versions.get(n, '-')} vs uv {o.uv_versions.get(n, '-')}" for n in names if n not in same)
        first = "ok" if o.ours_ok else f"{o.ours_step}: {o.ours_note}".replace("|", "/")
        option = "" if o.with_option_ok is None else f"`{o.option}`: {'ok' if o.with_option_ok else 'failed'}"
        uv_cell = "ok" if o.uv_ok else o.uv_note.replace("|", "/")
        rows.append(f"| {o.stack} | {uv_cell} | {first} | {option} | {versions} | "
                    f"{'<br>'.join(h.replace('|', '/') for h in o.held_back)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--project", type=Path, default=Path("."))
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--write", type=Path, default=None, help="write the table into this markdown file")
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="stacks-"))
    project = args.project.resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    env.update({"IMMUTABLE_INSTALLER_STORE": str(root / "store"), "IMMUTABLE_INSTALLER_CACHE": str(root / "cache"),
                "UV_CACHE_DIR": str(root / "uv-cache"), "PYTHONPATH": str(project)})
    tool = [sys.executable, "-m", "immutable_installer"]
    from uv import find_uv_bin

    uv_bin = str(find_uv_bin())
    outcomes = []
    started = time.monotonic()
    for name, reqs in STACKS.items():
        if args.only and name not in args.only:
            continue
        outcome = Outcome(name)
        folder = root / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        t0 = time.monotonic()
        outcome.ours_ok, outcome.ours_step, outcome.ours_note = ours(tool, reqs, folder / "ours", env, [], outcome)
        outcome.ours_seconds = time.monotonic() - t0
        if outcome.option:
            ok, _, _ = ours(tool, reqs, folder / "ours-with-option", env, outcome.option.split(), Outcome(name))
            outcome.with_option_ok = ok
        uv(uv_bin, reqs, outcome.imports, folder / "uv", env, outcome)
        print(f"{name}: uv {'ok' if outcome.uv_ok else outcome.uv_note}; ours "
              f"{'ok' if outcome.ours_ok else outcome.ours_step + ': ' + outcome.ours_note}"
              + (f"; with {outcome.option}: {outcome.with_option_ok}" if outcome.option else ""), flush=True)
        outcomes.append(outcome)
        shutil.rmtree(folder, ignore_errors=True)
    text = table(outcomes)
    summary = (f"uv {sum(o.uv_ok for o in outcomes)}/{len(outcomes)}; ours first time "
               f"{sum(o.ours_ok for o in outcomes)}/{len(outcomes)}, with the option it named "
               f"{sum(o.ours_ok or bool(o.with_option_ok) for o in outcomes)}/{len(outcomes)}")
    print(text)
    print(summary)
    if args.write:
        when = datetime.date.today().isoformat()
        machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"
        block = (f"<!-- stacks:begin -->\nMeasured {when} on this project's machine ({machine}) with "
                 f"`python benchmarks/stacks.py --project . --write docs/stacks.md` "
                 f"({(time.monotonic() - started) / 60:.0f} min). {summary}.\n\n{text}\n<!-- stacks:end -->")
        current = args.write.read_text() if args.write.exists() else ""
        if "<!-- stacks:begin -->" in current:
            current = re.sub(r"<!-- stacks:begin -->.*<!-- stacks:end -->", lambda _: block, current, flags=re.S)
        else:
            current = current + "\n" + block + "\n"
        args.write.write_text(current)


if __name__ == "__main__":
    main()
