"""`immutable-installer --help` / `--version` start-up against a ten-line default typer app, side by side.

Usage: python benchmarks/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _timing import base_env, compare

TYPER_APP = '''import typer

app = typer.Typer()


@app.command()
def main(name: str = "world", count: int = 1) -> None:
    """Say hello."""
    typer.echo(f"hello {name}" * count)


app()
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    py = sys.executable
    script = shutil.which("immutable-installer") or str(Path(py).with_name("immutable-installer"))
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "typer_app.py"
        app.write_text(TYPER_APP)
        env = base_env()
        results = compare({
            "python -c pass": ([py, "-c", "pass"], env),
            "immutable-installer --help": ([script, "--help"], env),
            "immutable-installer --version": ([script, "--version"], env),
            "immutable-installer install --help": ([script, "install", "--help"], env),
            "immutable-installer gui --help": ([script, "gui", "--help"], env),
            "default typer app --help": ([py, str(app), "--help"], env),
        }, runs=args.runs)
    for name, seconds in results.items():
        print(f"{name:34} {seconds * 1000:7.1f} ms (median of {args.runs})")
    ratio = results["immutable-installer --help"] / results["default typer app --help"]
    print(f"ratio --help / default typer --help: {ratio:.2f}")
    code = "from immutable_installer.cli.entry import main; main(['--help'])"
    proc = subprocess.run([py, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, env=base_env())
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "self [us]" not in line:
            parts = [p.strip() for p in line.split(":", 1)[1].split("|")]
            rows.append((int(parts[1]), parts[2]))
    print("top cumulative import costs for --help:")
    for cumulative, name in sorted(rows, reverse=True)[:8]:
        print(f"  {cumulative / 1000:7.1f} ms  {name}")


if __name__ == "__main__":
    main()
