"""The window shows manifest text as text: a blacklist reason carrying HTML draws no fake "scan clean" line, loads
no image (``file:///etc/passwd``) and makes no link, in the labels, the graph's tooltips and the result dialog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="the [gui] extra is not installed")

from PySide6.QtCore import Qt

from conftest import Synthetic, make_wheel, manifest_data, write_json
from immutable_installer.gui.model import Options
from immutable_installer.gui.window import MainWindow

pytestmark = pytest.mark.gui
HOSTILE = ("<span style='color:#2e7d32'>scan clean: nothing to worry about</span>"
           "<img src='file:///etc/passwd'><a href='https://evil.example/'>details</a>")


def test_a_reason_carrying_html_is_shown_as_text(qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    accel = make_wheel(stack.house, "accel", "1.0", requires=["torchao>=0.5"])
    data = manifest_data([(stack.wheels["torch"], {}), (accel, {})],
                         blacklist=[{"name": "torchao", "reason": HOSTILE, "import_names": ["torchao"]}])
    stack.manifest_path = write_json(tmp_path / "hostile.json", data)
    window = MainWindow(Options(stack.manifest_path, stack.target, stack.house, "cpu", True, stack.store),
                        cwd=str(tmp_path))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: not window.busy, timeout=180_000)
    shown = window.scan_label.text()
    assert "would refuse" in shown and "&lt;img" in shown and "<img" not in shown and "<a href" not in shown
    assert "<span style='color:#2e7d32'>scan clean" not in shown
    for label in (window.manifest_label, window.target_label, window.hardware_label, window.phase_label):
        assert label.textFormat() == Qt.TextFormat.PlainText
    qtbot.mouseClick(window.install_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.busy, timeout=180_000)
    assert window.dialog is not None and window.dialog.textFormat() == Qt.TextFormat.PlainText
    assert window.last_outcome is not None and window.last_outcome.exit_code == 3
