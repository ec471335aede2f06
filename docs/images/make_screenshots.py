"""Take the window's screenshots in docs/images/ on a real X server (Xvfb, Qt's xcb plugin).

    python docs/images/make_screenshots.py        # needs the [gui] extra, xvfb and imagemagick (Debian)

The reference manifest (metadata/dependencies.json, variant cpu, its wheels already in wheelhouse/: run
`immutable-installer download --variant cpu` first) is installed for real into a temporary target and store;
the blacklisted example is a stack of tiny wheels built by the tests' helpers. Each picture is the whole
1280x800 screen taken with ImageMagick's `import`, so dialogs are in it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent


def start_display() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, f":{server.stdout.readline().strip()}"


def main() -> None:
    server, display = start_display()
    os.environ.update({"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"})
    work = Path(tempfile.mkdtemp(prefix="ii-shots-"))
    os.environ["IMMUTABLE_INSTALLER_STORE"] = str(work / "store")  # never the user's store
    os.environ["IMMUTABLE_INSTALLER_CACHE"] = str(work / "cache")
    try:
        shoot(display, work)
    finally:
        server.terminate()


def shoot(display: str, work: Path) -> None:
    from PySide6.QtWidgets import QApplication

    from immutable_installer.gui.model import Options
    from immutable_installer.gui.window import MainWindow

    app = QApplication([])

    def settle(condition: Callable[[], bool] = lambda: True, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app.processEvents()
            if condition():
                break
            time.sleep(0.05)
        for _ in range(20):  # let the last paint reach the X server
            app.processEvents()
            time.sleep(0.02)

    def snap(name: str) -> None:
        settle()
        subprocess.run(["import", "-display", display, "-window", "root", str(OUT / name)], check=True)
        print("wrote", OUT / name)

    reference = Options(REPO / "metadata" / "dependencies.json", work / "ml" / ".venv", REPO / "wheelhouse", "cpu",
                        True, work / "store")
    (work / "ml").mkdir()
    window = MainWindow(reference, cwd=str(work / "ml"))
    window.show()
    settle(lambda: not window.busy)
    snap("gui-before.png")

    window.install_button.click()
    settle(lambda: window.tracker.current == "store" and window.tracker.overall() > 0.25)
    snap("gui-installing.png")
    settle(lambda: window.last_outcome is not None)
    snap("gui-installed.png")
    assert window.dialog is not None
    window.dialog.close()
    settle(lambda: not window.busy)

    window.tabs.setCurrentIndex(1)
    snap("gui-graph.png")

    window.force_check.setChecked(True)
    window.install_button.click()
    settle(lambda: not window.busy and window.last_outcome is not None and window.generations_table.rowCount() == 2)
    window.dialog.close() if window.dialog else None
    window.force_check.setChecked(False)
    window.tabs.setCurrentIndex(3)
    window.generations_table.selectRow(1)
    snap("gui-generations.png")
    window.close()

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import Synthetic, make_wheel, manifest_data, write_json

    stack = Synthetic(work / "blacklisted")
    accel = make_wheel(stack.house, "accelerate-lite", "1.0", requires=["torchao>=0.5"])
    peft = make_wheel(stack.house, "peft-lite", "0.17", requires=["accelerate-lite>=1.0"])
    (stack.house / stack.wheels["torchao"].name).unlink()
    data = manifest_data([(stack.wheels["torch"], {}), (stack.wheels["tiny-b"], {}), (accel, {}),
                          (peft, {"group": "app", "requires": ["accelerate-lite>=1.0"]}),
                          (stack.wheels["tiny-a"], {"group": "app", "requires": ["tiny-b>=1.0"]})],
                         blacklist=[{"name": "torchao", "reason": "breaks transformers' PreTrainedModel import",
                                     "import_names": ["torchao"]}])
    data["name"] = "blacklisted-example"
    manifest = write_json(stack.root / "dependencies.json", data)
    bad = MainWindow(Options(manifest, stack.target, stack.house, "cpu", True, stack.store), cwd=str(stack.root))
    bad.show()
    settle(lambda: not bad.busy)
    bad.tabs.setCurrentIndex(1)
    bad.install_button.click()
    settle(lambda: bad.last_outcome is not None)
    assert bad.dialog is not None
    bad.dialog.move(bad.width() - bad.dialog.width() - 20, bad.height() - bad.dialog.height() - 40)  # the chain shows
    snap("gui-blacklisted.png")
    bad.close()


if __name__ == "__main__":
    main()
