"""How long the window takes to show the plan of the reference manifest (offscreen), and the CLI runs it makes.

The window asks the command line for the hardware (`detect`), the plan (`install --dry-run`) and the
generations (`status`), one child run after another; this times `MainWindow(...)` to "plan shown" and prints
each child's share, median of N.

Usage: python benchmarks/gui_open.py [--runs 5]   (needs the [gui] extra and the cpu wheels in wheelhouse/)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    from immutable_installer.gui.model import Options
    from immutable_installer.gui.window import MainWindow

    app = QApplication([])
    totals: list[float] = []
    children: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.runs):
            options = Options(REPO / "metadata" / "dependencies.json", Path(tmp) / ".venv", REPO / "wheelhouse",
                              "cpu", True, Path(tmp) / "store")
            started = time.perf_counter()
            window = MainWindow(options, cwd=tmp)
            window.show()
            marks: list[tuple[str, float]] = []
            while window.busy:
                app.processEvents()
                if window.child is not None and (not marks or marks[-1][0] != window.child.action):
                    marks.append((window.child.action, time.perf_counter()))
                time.sleep(0.002)
            ended = time.perf_counter()
            totals.append(ended - started)
            for (action, at), (_, nxt) in zip(marks, [*marks[1:], ("", ended)], strict=True):
                children.setdefault(action, []).append(nxt - at)
            window.close()
    print(f"window to plan shown: {statistics.median(totals):.2f} s (median of {args.runs})")
    for action, spans in children.items():
        print(f"  {action:8} {statistics.median(spans):.2f} s")


if __name__ == "__main__":
    main()
