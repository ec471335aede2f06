"""The main window: the plan before, Install / Repair All with live progress and log, the outcome after, and
Verify, Rollback and the dependency graph beside them.

Every action is one child run of the command line (``child.CliChild``), one at a time; the window renders
its events with ``model`` and never blocks its own thread.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QColor, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from immutable_installer.gui.child import CliChild
from immutable_installer.gui.graph import GraphView, export
from immutable_installer.gui.graph_layout import layout
from immutable_installer.gui.model import (
    Options,
    Outcome,
    PlanView,
    ProgressTracker,
    check_rows,
    expected_phases,
    generation_rows,
    hardware_text,
    human_bytes,
    log_line,
    outcome,
    plan_view,
)

Done = Callable[[int, Any, Any], None]
STATUS_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "warn": "#ef6c00", "skip": "#6b7280"}


class MainWindow(QMainWindow):
    """One window per target environment."""

    def __init__(self, options: Options, cwd: str | None = None) -> None:
        super().__init__()
        self.options = options
        self.cwd = cwd
        self.child: CliChild | None = None
        self.queue: list[tuple[str, list[str], Done]] = []
        self.plan: dict[str, Any] | None = None
        self.view: PlanView | None = None
        self.detected: dict[str, Any] | None = None
        self.tracker = ProgressTracker()
        self.dialog: QMessageBox | None = None
        self.last_outcome: Outcome | None = None
        self.setWindowTitle(f"immutable-installer: {options.venv}")
        self._build()
        self.resize(1280, 800)
        self.refresh()

    # ------------------------------------------------------------------------------------------ layout
    def _build(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)

        settings = QGroupBox("What will be installed")
        form = QFormLayout(settings)
        self.manifest_label = _plain(QLabel(str(self.options.manifest)))
        self.manifest_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Manifest:", self.manifest_label)
        self.target_label = _plain(QLabel(f"{self.options.venv}   (wheelhouse {self.options.wheelhouse})"))
        form.addRow("Environment:", self.target_label)
        variant_row = QHBoxLayout()
        self.variant_combo = QComboBox()
        self.variant_combo.addItem(self.options.variant)
        self.variant_combo.currentTextChanged.connect(self._variant_changed)
        variant_label = QLabel("V&ariant:")
        variant_label.setBuddy(self.variant_combo)
        self.hardware_label = _plain(QLabel("detecting the GPU driver ..."))
        variant_row.addWidget(self.variant_combo)
        variant_row.addWidget(self.hardware_label, 1)
        form.addRow(variant_label, variant_row)
        self.summary_label = QLabel("reading the manifest ...")
        self.summary_label.setWordWrap(True)
        form.addRow("Plan:", self.summary_label)
        self.scan_label = QLabel("")
        self.scan_label.setWordWrap(True)
        form.addRow("Scan:", self.scan_label)
        outer.addWidget(settings)

        actions = QHBoxLayout()
        self.install_button = QPushButton("&Install / Repair All")
        self.install_button.setToolTip("Build a fresh environment, verify it, then switch to it (Alt+I)")
        self.install_button.clicked.connect(self.install)
        self.verify_button = QPushButton("&Verify")
        self.verify_button.setToolTip("Check the current environment (Alt+V)")
        self.verify_button.clicked.connect(self.verify)
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setToolTip("Stop the run the way Ctrl-C does: the previous environment stays (Alt+C)")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.offline_check = QCheckBox("&Offline (only the wheelhouse, no network)")
        self.offline_check.setChecked(self.options.offline)
        self.offline_check.toggled.connect(lambda _on: self._show_plan())
        self.force_check = QCheckBox("Rebuild even if &healthy")
        for widget in (self.install_button, self.verify_button, self.cancel_button):
            actions.addWidget(widget)
        actions.addSpacing(16)
        actions.addWidget(self.offline_check)
        actions.addWidget(self.force_check)
        actions.addStretch(1)
        outer.addLayout(actions)

        bars = QFormLayout()
        self.phase_bar = QProgressBar()
        self.phase_bar.setRange(0, 1000)
        self.phase_bar.setFormat("%p%")
        self.phase_label = _plain(QLabel("Phase:"))
        self.overall_bar = QProgressBar()
        self.overall_bar.setRange(0, 1000)
        self.overall_bar.setFormat("%p%")
        bars.addRow(self.phase_label, self.phase_bar)
        bars.addRow("Overall:", self.overall_bar)
        outer.addLayout(bars)

        self.tabs = QTabWidget()
        self.packages_tree = QTreeWidget()
        self.packages_tree.setHeaderLabels(["package", "version", "size", "wheelhouse", "store"])
        self.packages_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tabs.addTab(self.packages_tree, "&Packages")

        graph_page = QWidget()
        graph_layout = QVBoxLayout(graph_page)
        self.graph_view = GraphView()
        graph_buttons = QHBoxLayout()
        self.export_button = QPushButton("&Export graph ...")
        self.export_button.clicked.connect(self._ask_export)
        graph_buttons.addWidget(QLabel("Install groups left to right; a line runs from a package to what it "
                                       "requires; a blacklist chain is red."))
        graph_buttons.addStretch(1)
        graph_buttons.addWidget(self.export_button)
        graph_layout.addLayout(graph_buttons)
        graph_layout.addWidget(self.graph_view, 1)
        self.tabs.addTab(graph_page, "Dependency &graph")

        self.checks_table = _table(["check", "status", "detail"])
        self.tabs.addTab(self.checks_table, "Verify chec&ks")

        generations_page = QWidget()
        gen_layout = QVBoxLayout(generations_page)
        self.generations_table = _table(["", "generation", "created", "fingerprint", "variant"])
        self.rollback_button = QPushButton("&Rollback to the selected generation")
        self.rollback_button.clicked.connect(self.rollback)
        gen_layout.addWidget(self.generations_table, 1)
        gen_row = QHBoxLayout()
        gen_row.addStretch(1)
        gen_row.addWidget(self.rollback_button)
        gen_layout.addLayout(gen_row)
        self.tabs.addTab(generations_page, "Ge&nerations")

        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(20000)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.log.setFont(mono)
        self.log.setPlaceholderText("Everything the installer prints appears here.")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tabs)
        splitter.addWidget(self.log)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        outer.addWidget(splitter, 1)
        self.setCentralWidget(central)

        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Q))
        quit_action.triggered.connect(self.close)
        self.addAction(quit_action)
        self.quit_action = quit_action
        self.statusBar().showMessage("ready")

    # ----------------------------------------------------------------------------------------- running
    def _run(self, action: str, args: list[str], on_done: Done) -> None:
        """Queue one CLI run; runs start one after another."""
        self.queue.append((action, args, on_done))
        if self.child is None:
            self._next()

    def _next(self) -> None:
        if not self.queue:
            self.child = None
            self._set_busy(False)
            return
        action, args, on_done = self.queue.pop(0)
        child = CliChild(action, args, self.cwd)
        child.received.connect(self._on_event)
        child.line.connect(self._append)
        child.done.connect(lambda code, result, error: self._finished(child, code, result, error, on_done))
        self.child = child
        self._set_busy(True, action)
        child.start()

    def _finished(self, child: CliChild, code: int, result: Any, error: Any, on_done: Done) -> None:
        if child is not self.child:  # pragma: no cover - a stale signal
            return
        self._append(f"[{child.action} exited with code {code}]")
        try:
            on_done(code, result, error)
        finally:
            self._next()

    @property
    def busy(self) -> bool:
        return self.child is not None

    def _set_busy(self, busy: bool, action: str = "") -> None:
        long_run = busy and action in ("install", "verify", "rollback")
        for widget in (self.install_button, self.verify_button, self.rollback_button, self.variant_combo,
                       self.offline_check, self.force_check):
            widget.setEnabled(not busy)
        self.cancel_button.setEnabled(long_run)
        self.statusBar().showMessage(f"{action} running ..." if busy else "ready")
        if not busy:
            self.install_button.setEnabled(self.view is not None)

    def _append(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _on_event(self, event: dict[str, Any]) -> None:
        line = log_line(event)
        if line is not None:
            self._append(line)
        if self.child is not None and self.child.action in ("install", "verify", "rollback"):
            self.tracker.feed(event)
            self._show_progress()

    def _show_progress(self) -> None:
        tracker = self.tracker
        self.phase_label.setText(f"Phase: {tracker.current}" if tracker.current else "Phase:")
        self.phase_bar.setValue(int(tracker.phase_fraction() * 1000))
        self.phase_bar.setFormat(f"%p%   {tracker.detail}"[:90])
        self.overall_bar.setValue(int(tracker.overall() * 1000))

    # ----------------------------------------------------------------------------------------- actions
    @property
    def variant(self) -> str:
        return self.variant_combo.currentText() or self.options.variant

    def refresh(self) -> None:
        """Ask the CLI for the hardware, the plan and the generations."""
        self._run("detect", self.options.detect_args(), self._detected)
        self._run("plan", self.options.plan_args(self.variant), self._planned)
        self._run("status", self.options.status_args(), self._statused)

    def install(self) -> None:
        if self.busy:
            return
        self.log.clear()
        self.tracker = ProgressTracker(expected_phases(self.plan, self.offline_check.isChecked()))
        self._show_progress()
        self._run("install", self.options.install_args(self.variant, self.offline_check.isChecked(),
                                                       self.force_check.isChecked()), self._installed)
        self._run("plan", self.options.plan_args(self.variant), self._planned)
        self._run("status", self.options.status_args(), self._statused)

    def verify(self) -> None:
        if self.busy:
            return
        self.tracker = ProgressTracker(["verify"])
        self._run("verify", self.options.verify_args(), self._verified)

    def rollback(self) -> None:
        if self.busy:
            return
        row = self.generations_table.currentRow()
        if row < 0:
            self._say(Outcome(False, "Choose a generation", "Select the generation to go back to in the list "
                                                            "first."))
            return
        cell = self.generations_table.item(row, 1)
        if cell is None:
            return
        name = cell.text()
        self.tracker = ProgressTracker(["verify"])
        self._run("rollback", self.options.rollback_args(name), self._rolled_back)
        self._run("status", self.options.status_args(), self._statused)

    def cancel(self) -> None:
        """Stop the running install the way Ctrl-C does, and drop what was queued after it."""
        if self.child is not None:
            self.queue = [q for q in self.queue if q[0] in ("plan", "status")]
            self._append("cancelling: the run is stopped the way Ctrl-C stops it ...")
            self.child.cancel()

    def export_graph(self, path: Path) -> Path:
        """The dependency graph as a PNG or SVG file (by the file's extension)."""
        steps = (self.plan or {}).get("steps", [])
        chains = self.view.chains if self.view else ()
        return export(layout(steps, chains), path)

    def _ask_export(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Export the dependency graph", "dependency-graph.png",
                                              "PNG image (*.png);;SVG drawing (*.svg)")
        if name:
            self._append(f"graph written to {self.export_graph(Path(name))}")

    # ------------------------------------------------------------------------------------------ results
    def _detected(self, code: int, result: Any, error: Any) -> None:
        if code == 0 and isinstance(result, dict):
            self.detected = result
            self.hardware_label.setText(hardware_text(result))
        else:
            self.hardware_label.setText("the hardware could not be detected (see the log)")

    def _planned(self, code: int, result: Any, error: Any) -> None:
        if code != 0 or not isinstance(result, dict):
            self.plan, self.view = None, None
            message = (error or {}).get("message", "see the log")
            self.summary_label.setText(f"<b>The manifest cannot be used:</b> {_escaped(message)}")
            self.install_button.setEnabled(False)
            return
        self.plan = result
        self.view = plan_view(result)
        self._fill_variants(self.view)
        self._show_plan()

    def _fill_variants(self, view: PlanView) -> None:
        wanted = self.variant
        choices = ["auto", *view.variants]
        if [self.variant_combo.itemText(i) for i in range(self.variant_combo.count())] != choices:
            self.variant_combo.blockSignals(True)
            self.variant_combo.clear()
            self.variant_combo.addItems(choices)
            self.variant_combo.setCurrentText(wanted if wanted in choices else "auto")
            self.variant_combo.blockSignals(False)

    def _show_plan(self) -> None:
        view = self.view
        if view is None:
            return
        offline = self.offline_check.isChecked()
        note = "  Offline: missing files cannot be downloaded." if offline and view.missing else ""
        self.summary_label.setText(f"<b>{_escaped(view.manifest)}</b> for {_escaped(view.python)} on "
                                   f"{_escaped(view.platform)}, variant <b>{_escaped(view.variant)}</b>. "
                                   f"{_escaped(view.summary)}.{_escaped(note)}")
        if view.scan_ok:
            self.scan_label.setText(f"<span style='color:#2e7d32'>{_escaped(view.scan_message)}</span>")
        else:
            self.scan_label.setText(f"<span style='color:#c62828'><b>would refuse:</b> "
                                    f"{_escaped(view.scan_message)}</span>")
        self.packages_tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        for row in view.rows:
            parent = groups.get(row.group)
            if parent is None:
                parent = QTreeWidgetItem([f"{len(groups) + 1}. {row.group}"])
                self.packages_tree.addTopLevelItem(parent)
                groups[row.group] = parent
            item = QTreeWidgetItem([row.name, row.version, human_bytes(row.size) if row.size else "",
                                    row.wheelhouse, row.store])
            if row.wheelhouse != "present":
                item.setForeground(3, Qt.GlobalColor.darkRed)
            parent.addChild(item)
        self.packages_tree.expandAll()
        assert self.plan is not None
        self.graph_view.show_graph(layout(self.plan.get("steps", []), view.chains))

    def _statused(self, code: int, result: Any, error: Any) -> None:
        rows = generation_rows(result) if code == 0 and isinstance(result, dict) else []
        table = self.generations_table
        table.setRowCount(len(rows))
        for r, (name, created, fingerprint, variant, current) in enumerate(rows):
            for c, text in enumerate(["current" if current else "", name, created, fingerprint, variant]):
                item = QTableWidgetItem(text)
                if current:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(r, c, item)
        table.resizeColumnsToContents()
        self.rollback_button.setEnabled(bool(rows) and not self.busy)

    def _installed(self, code: int, result: Any, error: Any) -> None:
        if code == 0:
            self.tracker.finish()
            self._show_progress()
        if isinstance(result, dict) and result.get("verify"):
            self._show_checks(result["verify"])
        self._say(outcome("install", code, error, result))

    def _verified(self, code: int, result: Any, error: Any) -> None:
        if isinstance(result, dict) and "checks" in result:
            self._show_checks(result)
            self.tracker.finish()
            self._show_progress()
        self._say(outcome("verify", code, error, result))

    def _rolled_back(self, code: int, result: Any, error: Any) -> None:
        if isinstance(result, dict) and result.get("verify"):
            self._show_checks(result["verify"])
        self._say(outcome("rollback", code, error, result))

    def _show_checks(self, report: dict[str, Any]) -> None:
        rows = check_rows(report)
        table = self.checks_table
        table.setRowCount(len(rows))
        for r, (name, status, detail) in enumerate(rows):
            table.setItem(r, 0, QTableWidgetItem(name))
            status_item = QTableWidgetItem(status)
            status_item.setForeground(Qt.GlobalColor.white)
            status_item.setBackground(QColor(STATUS_COLOURS.get(status, "#6b7280")))
            table.setItem(r, 1, status_item)
            table.setItem(r, 2, QTableWidgetItem(detail))
        table.resizeColumnsToContents()
        self.tabs.setCurrentWidget(self.checks_table)

    def _say(self, result: Outcome) -> None:
        """The success or failure dialog (window-modal, not blocking the event loop)."""
        self.last_outcome = result
        box = QMessageBox(QMessageBox.Icon.Information if result.ok else QMessageBox.Icon.Critical,
                          result.title, result.title, QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(Qt.TextFormat.PlainText)  # the informative text follows: messages come from outside
        text = result.meaning
        if result.hint:
            text += f"\n\nWhat to do: {result.hint}"
        if result.exit_code:
            text += f"\n\n(exit code {result.exit_code})"
        box.setInformativeText(text)
        if result.details:
            box.setDetailedText("\n".join(result.details))
        self.dialog = box
        box.open()

    # ---------------------------------------------------------------------------------------- lifecycle
    def _variant_changed(self, _text: str) -> None:
        if self.busy:
            return
        self._run("plan", self.options.plan_args(self.variant), self._planned)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing while an install runs cancels it first (the previous environment stays)."""
        self.queue.clear()
        child = self.child
        if child is not None:
            child.cancel()  # nothing when it already exited
            child.wait(60)
        event.accept()


def _table(headers: list[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    return table


def _escaped(text: object) -> str:
    """A string from a manifest, a wheel or a command's output, for a rich-text label: shown as the text it is
    (a blacklist reason holding HTML draws no fake line, loads no image, makes no link)."""
    return html.escape(str(text), quote=False)


def _plain(label: QLabel) -> QLabel:
    """A label that shows its text as plain text, whatever it holds."""
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label
