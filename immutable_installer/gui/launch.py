"""Open the window: `immutable-installer gui` lands here once PySide6 is known to be installed."""

from __future__ import annotations

import sys

from immutable_installer.gui.model import Options

__all__ = ["Options", "run"]


def run(options: Options) -> int:
    """Show the window until it is closed; the exit code of the Qt event loop."""
    from PySide6.QtWidgets import QApplication

    from immutable_installer.gui.window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("immutable-installer")
    window = MainWindow(options)
    window.show()
    code = int(app.exec())
    window.deleteLater()  # before the application object goes: Qt's order, not the garbage collector's
    app.processEvents()
    return code
