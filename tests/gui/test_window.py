"""The real window, offscreen, driving the real command line: every button press below runs
`python -m immutable_installer ... --json` as a child process against a stack of tiny wheels and a private store.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from conftest import SLOW_TO_COMPILE, Synthetic, make_wheel, manifest_data, store_files, write_json
from immutable_installer.gui.model import Options
from immutable_installer.gui.window import MainWindow

pytestmark = pytest.mark.gui
LONG = 180_000  # ms: a real install of a tiny stack takes seconds; a slow machine gets room


@pytest.fixture
def open_window(qtbot: Any) -> Iterator[Callable[..., MainWindow]]:
    windows: list[MainWindow] = []

    def make(stack: Synthetic, variant: str = "cpu", offline: bool = True, store: Path | None = None,
             manifest: Path | None = None) -> MainWindow:
        options = Options(manifest or stack.manifest_path, stack.target, stack.house, variant, offline,
                          store or stack.store)
        window = MainWindow(options, cwd=str(stack.root))
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        idle(qtbot, window)
        return window

    yield make
    for window in windows:  # no child outlives its test
        if window.child is not None:
            window.child.cancel()
            window.child.wait(60)


def idle(qtbot: Any, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.busy, timeout=LONG)


def focus(qtbot: Any, window: MainWindow) -> None:
    """Keys go to the active window only (and there is no window manager to activate it)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)


def press(qtbot: Any, window: MainWindow, button: Any) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)


def packages_shown(window: MainWindow) -> dict[str, list[str]]:
    tree = window.packages_tree
    out = {}
    for g in range(tree.topLevelItemCount()):
        group = tree.topLevelItem(g)
        for k in range(group.childCount()):
            item = group.child(k)
            out[item.text(0)] = [group.text(0)] + [item.text(c) for c in range(1, 5)]
    return out


def table(widget: Any) -> list[list[str]]:
    return [[widget.item(r, c).text() if widget.item(r, c) else "" for c in range(widget.columnCount())]
            for r in range(widget.rowCount())]


def current_generation(stack: Synthetic) -> str:
    return os.readlink(stack.target).rsplit("/", 1)[-1]


def test_before_it_shows_the_manifest_the_packages_and_what_the_store_holds(open_window: Any,
                                                                             tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    window = open_window(stack)
    shown = packages_shown(window)
    assert shown["tiny-a"] == ["2. app", "2.0", "965 B", "present", "new"]
    assert shown["torch"][:2] == ["1. base", "1.0+cpu"]
    assert len(shown) == 6
    summary = window.summary_label.text()
    assert "synthetic" in summary and "variant <b>cpu</b>" in summary and "store holds 0 of 6" in summary
    assert "clean" in window.scan_label.text()
    assert window.hardware_label.text().startswith(("no NVIDIA driver", "NVIDIA driver"))
    assert not stack.target.exists(), "looking touches nothing"
    assert window.install_button.isEnabled() and not window.cancel_button.isEnabled()


def test_install_through_the_button_builds_verifies_and_switches(open_window: Any, qtbot: Any,
                                                                 tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    window = open_window(stack)
    overall: list[int] = []
    window.overall_bar.valueChanged.connect(overall.append)
    press(qtbot, window, window.install_button)
    assert window.last_outcome is not None and window.last_outcome.ok, window.log.toPlainText()
    assert window.last_outcome.title == "Installed and verified"
    assert window.dialog is not None and window.dialog.isVisible()
    assert current_generation(stack) == "g0001"
    assert overall == sorted(overall) and overall[-1] == 1000 and any(0 < v < 1000 for v in overall)
    checks = table(window.checks_table)
    assert checks and {row[1] for row in checks} <= {"pass", "skip", "warn"}
    assert "==> scan" in window.log.toPlainText() and "==> verify" in window.log.toPlainText()
    assert {row[4] for row in packages_shown(window).values()} == {"stored"}, "the plan was read again"
    assert table(window.generations_table)[0][:2] == ["current", "g0001"]


def test_cancel_mid_build_leaves_the_previous_generation(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path, extra={"big-pkg": {"big_pkg/__init__.py": SLOW_TO_COMPILE}})
    stack.install()
    empty = tmp_path / "empty-store"
    window = open_window(stack, store=empty)
    window.force_check.setChecked(True)
    qtbot.mouseClick(window.install_button, Qt.MouseButton.LeftButton)
    # an empty store and a module that takes a second to compile: the build is filling the store when Cancel
    # is pressed (the same point the CLI's Ctrl-C test interrupts)
    qtbot.waitUntil(lambda: window.tracker.current == "store", timeout=LONG)
    assert window.cancel_button.isEnabled()
    qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    idle(qtbot, window)
    assert window.last_outcome is not None and window.last_outcome.title == "Cancelled"
    assert window.last_outcome.exit_code == 130
    assert current_generation(stack) == "g0001"
    assert not list((tmp_path / ".venv.generations").glob("*.incomplete"))
    assert sorted(p.name for p in (tmp_path / ".venv.generations").iterdir() if p.is_dir()) == ["g0001"]
    assert not store_files(empty), "no half-built store entry is left"


def blacklisted_stack(root: Path) -> Synthetic:
    """tiny-a needs accel, whose real METADATA (unlike the manifest) asks for the blacklisted torchao."""
    stack = Synthetic(root)
    house = stack.house
    accel = make_wheel(house, "accel", "1.0", requires=["torchao>=0.5"])
    app = make_wheel(house, "tiny-a", "2.0", requires=["accel>=1.0"])
    data = manifest_data([(stack.wheels["torch"], {}), (accel, {}), (app, {"group": "app", "requires": ["accel>=1.0"]})],
                         blacklist=[{"name": "torchao", "reason": "breaks transformers' PreTrainedModel import",
                                     "import_names": ["torchao"]}])
    stack.manifest_path = write_json(root / "blacklisted.json", data)
    return stack


def test_a_blacklisted_stack_draws_the_red_chain_and_fails_with_exit_3(open_window: Any, qtbot: Any,
                                                                       tmp_path: Path) -> None:
    stack = blacklisted_stack(tmp_path)
    (stack.house / stack.wheels["torchao"].name).unlink()  # nothing pins it: only a requirement pulls it in
    window = open_window(stack)
    assert "would refuse" in window.scan_label.text() and "torchao" in window.scan_label.text()
    graph = window.graph_view.graph
    assert graph is not None
    assert {n for n, node in graph.nodes.items() if node.red} == {"tiny-a", "accel", "torchao"}
    assert {(e.source, e.target) for e in graph.edges if e.red} == {("tiny-a", "accel"), ("accel", "torchao")}
    assert not graph.nodes["torch"].red
    press(qtbot, window, window.install_button)
    told = window.last_outcome
    assert told is not None and told.exit_code == 3 and told.title == "A forbidden package would have been installed"
    assert any("tiny-a 2.0 -> accel 1.0 -> torchao>=0.5" in line for line in (told.meaning, *told.details))
    assert window.dialog is not None and "chain" in window.dialog.informativeText()
    assert not stack.target.exists() and not store_files(stack.store)


def test_verify_through_the_window_shows_every_check(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    stack.install()
    window = open_window(stack)
    focus(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_V, Qt.KeyboardModifier.AltModifier)  # the mnemonic of Verify
    qtbot.waitUntil(lambda: window.last_outcome is not None, timeout=LONG)  # a mnemonic clicks after 100 ms
    assert window.last_outcome is not None and window.last_outcome.title == "Healthy", window.log.toPlainText()
    rows = {row[0]: row for row in table(window.checks_table)}
    assert rows["integrity"][1] == "pass" and rows["isolation"][1] == "pass" and rows["cuda"][1] == "skip"
    assert window.tabs.currentWidget() is window.checks_table


def test_verify_names_a_file_that_was_changed(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    stack.install()
    changed = next(stack.target.resolve().rglob("tiny_a/__init__.py"))
    changed.unlink()  # a new file, not a write through the store's hard link
    changed.write_text("print('tampered')\n")
    window = open_window(stack)
    press(qtbot, window, window.verify_button)
    assert window.last_outcome is not None and window.last_outcome.title == "Not healthy"
    failing = [row for row in table(window.checks_table) if row[1] == "fail"]
    assert failing and any("tiny_a/__init__.py" in row[2] for row in failing)


def test_rollback_through_the_window(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    stack.install()
    stack.install(force=True)
    window = open_window(stack)
    rows = table(window.generations_table)
    assert [r[:2] for r in rows] == [["current", "g0002"], ["", "g0001"]]
    window.generations_table.selectRow(1)
    press(qtbot, window, window.rollback_button)
    assert window.last_outcome is not None and window.last_outcome.title == "Rolled back", window.log.toPlainText()
    assert current_generation(stack) == "g0001"
    assert [r[:2] for r in table(window.generations_table)] == [["", "g0002"], ["current", "g0001"]]


def test_rollback_without_a_choice_asks_for_one(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    stack.install()
    window = open_window(stack)
    window.generations_table.clearSelection()
    window.generations_table.setCurrentCell(-1, -1)
    qtbot.mouseClick(window.rollback_button, Qt.MouseButton.LeftButton)
    assert window.last_outcome is not None and window.last_outcome.title == "Choose a generation"
    assert current_generation(stack) == "g0001"


def fake_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """SIMULATION: a script stands in for nvidia-smi (no GPU here); the window's children inherit PATH."""
    fake = tmp_path / "fake-bin" / "nvidia-smi"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho '{version}, NVIDIA Simulated GPU'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")


def two_variant_stack(root: Path) -> Synthetic:
    stack = Synthetic(root)
    cuda_torch = make_wheel(stack.house, "torch", "1.0+cu130")
    variants = {"cpu": {"index": "default", "torch_packages": ["torch"], "cuda": None, "min_driver": None},
                "cu130": {"index": "default", "torch_packages": ["torch"], "cuda": "13.0", "min_driver": "580.65"}}
    data = manifest_data([(stack.wheels["tiny-b"], {"variants": ["cpu", "cu130"]}),
                          (stack.wheels["torch"], {"variants": ["cpu"]}), (cuda_torch, {"variants": ["cu130"]})],
                         variants=variants)
    stack.manifest_path = write_json(root / "two-variants.json", data)
    return stack


def test_the_variant_chooser_with_a_simulated_driver(open_window: Any, qtbot: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_driver(tmp_path, monkeypatch, "580.82.07")
    stack = two_variant_stack(tmp_path)
    window = open_window(stack, variant="auto")
    assert window.hardware_label.text() == "NVIDIA driver 580.82.07 (NVIDIA Simulated GPU); auto picks cu130"
    combo = window.variant_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "cpu", "cu130"]
    assert packages_shown(window)["torch"][1] == "1.0+cu130"
    combo.setCurrentText("cpu")
    idle(qtbot, window)
    assert packages_shown(window)["torch"][1] == "1.0+cpu" and "variant <b>cpu</b>" in window.summary_label.text()


def test_an_old_simulated_driver_makes_auto_pick_cpu(open_window: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_driver(tmp_path, monkeypatch, "470.10")
    stack = two_variant_stack(tmp_path)
    window = open_window(stack, variant="auto")
    assert window.hardware_label.text().endswith("auto picks cpu (not cu130: driver 470.10 is older than the 580.65 "
                                                 "CUDA 13.0 needs)"), "the window says why not"
    assert packages_shown(window)["torch"][1] == "1.0+cpu"


def test_offline_with_a_missing_wheel_fails_with_exit_4_and_touches_nothing(open_window: Any, qtbot: Any,
                                                                            tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    stack.wheels["tiny-a"].unlink()
    window = open_window(stack, offline=True)
    assert "Offline: missing files cannot be downloaded" in window.summary_label.text()
    assert packages_shown(window)["tiny-a"][3] == "missing"
    press(qtbot, window, window.install_button)
    told = window.last_outcome
    assert told is not None and told.exit_code == 4 and told.title == "Some package files are missing or damaged"
    assert "--skip-wheelhouse" in window.log.toPlainText().splitlines()[0]
    assert not stack.target.exists()


def test_a_broken_manifest_is_named_and_install_is_disabled(open_window: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1}')
    window = open_window(stack, manifest=broken)
    assert "cannot be used" in window.summary_label.text() and "broken.json" in window.summary_label.text()
    assert not window.install_button.isEnabled()


def test_the_graph_exports_as_png_and_svg(open_window: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    window = open_window(stack)
    png = window.export_graph(tmp_path / "graph.png")
    image = QImage(str(png))
    assert not image.isNull() and image.width() > 300 and image.height() > 100
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 3, "something was drawn"
    svg = window.export_graph(tmp_path / "graph.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "tiny-a 2.0" in svg and "1. base" in svg


def test_keyboard_alt_i_installs_and_ctrl_q_closes(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    window = open_window(stack)
    focus(qtbot, window)
    started: list[str] = []
    window.statusBar().messageChanged.connect(started.append)
    qtbot.keyClick(window, Qt.Key.Key_I, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: window.last_outcome is not None, timeout=LONG)  # a mnemonic clicks after 100 ms
    assert "install running ..." in started
    assert current_generation(stack) == "g0001"
    idle(qtbot, window)
    window.dialog.close()
    focus(qtbot, window)
    qtbot.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not window.isVisible())


def test_every_mnemonic_is_unique(open_window: Any, tmp_path: Path) -> None:
    from PySide6.QtWidgets import QAbstractButton, QLabel

    window = open_window(Synthetic(tmp_path))
    texts = [w.text() for w in window.findChildren(QAbstractButton)] + \
            [w.text() for w in window.findChildren(QLabel) if w.buddy() is not None] + \
            [window.tabs.tabText(i) for i in range(window.tabs.count())]
    keys = [t[t.index("&") + 1].lower() for t in texts if "&" in t and t[t.index("&") + 1] != "&"]
    assert len(keys) >= 10 and len(keys) == len(set(keys)), sorted(keys)


def test_readable_at_1280x800(open_window: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    window = open_window(stack)
    window.resize(1280, 800)
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    frame = window.rect()
    for widget in (window.install_button, window.verify_button, window.cancel_button, window.overall_bar,
                   window.phase_bar, window.tabs, window.log, window.summary_label):
        assert widget.isVisible()
        top_left = widget.mapTo(window, widget.rect().topLeft())
        bottom_right = widget.mapTo(window, widget.rect().bottomRight())
        assert frame.contains(top_left) and frame.contains(bottom_right), widget
    assert window.install_button.font().pointSizeF() >= 9


def test_the_toolkit_keeps_the_interpreter_sound(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    """PySide6 6.12.0 dropped a reference to a slot's return value at every call from a Qt signal: on Python 3.11
    None's count sank with each click until the interpreter aborted ("deallocating None") when the window
    closed. The [gui] extra excludes it; this catches such a release (counts are meaningful before 3.12)."""
    import sys

    window = open_window(Synthetic(tmp_path))
    before = sys.getrefcount(None), sys.getrefcount(False), sys.getrefcount(True)
    for _ in range(200):  # a Qt signal (toggled) calling a Python slot each time
        window.offline_check.toggle()
    after = sys.getrefcount(None), sys.getrefcount(False), sys.getrefcount(True)
    if sys.version_info < (3, 12):
        assert all(b > a - 100 for a, b in zip(before, after, strict=True)), f"references lost: {before} -> {after}"


def test_closing_the_window_during_an_install_cancels_it_first(open_window: Any, qtbot: Any, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path, extra={"big-pkg": {"big_pkg/__init__.py": SLOW_TO_COMPILE}})
    stack.install()
    window = open_window(stack, store=tmp_path / "empty-store")
    window.force_check.setChecked(True)
    qtbot.mouseClick(window.install_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.tracker.current == "store", timeout=LONG)
    child = window.child
    assert child is not None and child.running
    window.close()
    assert not child.running and child.proc is not None and child.proc.returncode == 130
    assert current_generation(stack) == "g0001"
    assert sorted(p.name for p in (tmp_path / ".venv.generations").iterdir() if p.is_dir()) == ["g0001"]


def test_online_install_downloads_from_an_index_with_a_bytes_bar(open_window: Any, qtbot: Any, index: Any,
                                                                 tmp_path: Path) -> None:
    """A real HTTP index on 127.0.0.1 serves the wheels; the wheelhouse starts empty."""
    stack = Synthetic(tmp_path)
    for wheel in stack.wheels.values():
        wheel.rename(index.root / wheel.name)
    data = dict(stack.data, indexes={"default": index.url})
    write_json(stack.manifest_path, data)
    window = open_window(stack, offline=False)
    assert "6 missing" in window.summary_label.text()
    details: list[str] = []
    window.phase_bar.valueChanged.connect(lambda _v: details.append(window.tracker.detail))
    press(qtbot, window, window.install_button)
    assert window.last_outcome is not None and window.last_outcome.ok, window.log.toPlainText()
    assert "download" in window.tracker.expected and window.tracker.fractions["download"] == 1.0
    assert any(" KB of " in d or " B of " in d for d in details), details
    assert "==> download" in window.log.toPlainText()
    assert current_generation(stack) == "g0001"
