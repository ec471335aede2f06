"""The dependency graph drawn with Qt from ``layout.GraphLayout``, and its export as PNG or SVG."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import QGraphicsScene, QGraphicsView, QWidget

from immutable_installer.gui.graph_layout import NODE_HEIGHT, NODE_WIDTH, GraphLayout

RED = QColor("#c62828")
EDGE = QColor("#7a8594")
NODE_FILL = QColor("#eef3fb")
NODE_LINE = QColor("#3b6ab5")
BLOCKED_FILL = QColor("#fdecea")


def build_scene(graph: GraphLayout, scene: QGraphicsScene | None = None) -> QGraphicsScene:
    """Columns with their group titles, nodes, and curved edges from a package to what it requires; a
    blacklist chain in red and thicker."""
    scene = scene or QGraphicsScene()
    scene.clear()
    scene.setBackgroundBrush(QBrush(QColor("white")))
    title_font = QFont()
    title_font.setBold(True)
    for k, column in enumerate(graph.columns):
        title = scene.addSimpleText(f"{k + 1}. {column.group}", title_font)
        title.setPos(column.x, 4)
    for edge in sorted(graph.edges, key=lambda e: e.red):  # red ones on top
        a, b = graph.nodes[edge.source], graph.nodes[edge.target]
        if a.x > b.x:  # requires something installed earlier: from a's left side to b's right side
            start, end = QPointF(a.x, a.y + NODE_HEIGHT / 2), QPointF(b.x + NODE_WIDTH, b.y + NODE_HEIGHT / 2)
        else:
            start, end = QPointF(a.x + NODE_WIDTH, a.y + NODE_HEIGHT / 2), QPointF(b.x, b.y + NODE_HEIGHT / 2)
        if a.x == b.x:  # same column: a loop out to the right
            start = QPointF(a.x + NODE_WIDTH, a.y + NODE_HEIGHT / 2)
            end = QPointF(b.x + NODE_WIDTH, b.y + NODE_HEIGHT / 2)
            bend = 60.0
            c1, c2 = QPointF(start.x() + bend, start.y()), QPointF(end.x() + bend, end.y())
        else:
            middle = (start.x() + end.x()) / 2
            c1, c2 = QPointF(middle, start.y()), QPointF(middle, end.y())
        path = QPainterPath(start)
        path.cubicTo(c1, c2, end)
        pen = QPen(RED if edge.red else EDGE, 3.0 if edge.red else 1.2)
        scene.addPath(path, pen).setZValue(2 if edge.red else 0)
        scene.addEllipse(QRectF(end.x() - 3, end.y() - 3, 6, 6), pen, QBrush(pen.color())).setZValue(3)
    for node in graph.nodes.values():
        fill = BLOCKED_FILL if not node.pinned else NODE_FILL
        line = QPen(RED if node.red else NODE_LINE, 3.0 if node.red else 1.2)
        rect = scene.addRect(QRectF(node.x, node.y, NODE_WIDTH, NODE_HEIGHT), line, QBrush(fill))
        rect.setZValue(4)
        rect.setToolTip(f"<p>{html.escape(node.label, quote=False)}</p>")  # rich text whose content is plain
        text = scene.addSimpleText(node.label)
        text.setBrush(QBrush(RED if node.red else QColor("#1b1b1b")))
        text.setPos(node.x + 8, node.y + (NODE_HEIGHT - text.boundingRect().height()) / 2)
        text.setZValue(5)
        text.setData(0, node.name)
    return scene


class GraphView(QGraphicsView):
    """A scrollable, zoomable view of the graph (Ctrl+wheel zooms)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.graph: GraphLayout | None = None

    def show_graph(self, graph: GraphLayout) -> None:
        self.graph = graph
        build_scene(graph, self.scene())
        self.setSceneRect(self.scene().itemsBoundingRect().adjusted(-10, -10, 10, 10))
        self.fit_width()

    def fit_width(self) -> None:
        """Every column in view (never enlarged); a tall column scrolls."""
        self.resetTransform()
        width = self.sceneRect().width()
        room = self.viewport().width() - 4
        if width > 0 and room > 200 and width > room:
            factor = max(room / width, 0.5)
            self.scale(factor, factor)
        self.ensureVisible(self.sceneRect().left(), self.sceneRect().top(), 1, 1)

    def resizeEvent(self, event: object) -> None:
        from PySide6.QtGui import QResizeEvent

        assert isinstance(event, QResizeEvent)
        super().resizeEvent(event)
        self.fit_width()

    def wheelEvent(self, event: object) -> None:
        from PySide6.QtGui import QWheelEvent

        assert isinstance(event, QWheelEvent)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.15 if event.angleDelta().y() > 0 else 1 / 1.15
            self.scale(factor, factor)
        else:
            super().wheelEvent(event)


def export(graph: GraphLayout, path: Path) -> Path:
    """Write the graph to ``path``: SVG when it ends in .svg, otherwise PNG."""
    scene = build_scene(graph)
    bounds = scene.itemsBoundingRect().adjusted(-16, -16, 16, 16)
    size = QSize(int(bounds.width()), int(bounds.height()))
    path = Path(path)
    if path.suffix.lower() == ".svg":
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(size)
        generator.setViewBox(QRectF(0, 0, size.width(), size.height()))
        generator.setTitle("dependency graph")
        painter = QPainter(generator)
        scene.render(painter, QRectF(0, 0, size.width(), size.height()), bounds)
        painter.end()
        return path
    image = QImage(size, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    scene.render(painter, QRectF(0, 0, size.width(), size.height()), bounds)
    painter.end()
    # the stubs say bytes for the format, PySide6 itself takes only str
    if not image.save(str(path), "PNG"):  # type: ignore[call-overload]
        raise OSError(f"could not write {path}")
    return path
