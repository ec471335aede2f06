"""The only rich user: renders events, tables and errors.

Two renderers behind the same ``Reporter`` callback: ``HumanRenderer`` (phases, a progress bar when stderr
is a terminal, quiet lines otherwise; no colour with NO_COLOR) and ``JsonRenderer`` (one JSON object per
line on stdout, documented in docs/reference/events.md). Heavy rich modules are imported here only, inside
the functions that need them, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from immutable_installer.core.events import Event, HeldBack, Message, Phase, PhaseDone, Progress
from immutable_installer.core.urls import mask_text


def _console(stderr: bool = True, wrap: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                   soft_wrap=not wrap)


class JsonRenderer:
    """Events as JSON lines on stdout (nothing else goes there)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        self.stream.write(mask_text(json.dumps(event.to_json(), sort_keys=True)) + "\n")
        self.stream.flush()

    def result(self, data: dict[str, Any]) -> None:
        self.stream.write(mask_text(json.dumps({"event": "result", **data}, sort_keys=True)) + "\n")
        self.stream.flush()


class HumanRenderer:
    """Phases and messages for people, on stderr; a live progress bar only on a terminal."""

    def __init__(self) -> None:
        self.console = _console()
        self.live = self.console.is_terminal and not os.environ.get("CI")
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Phase):
            self._stop()
            self.console.print(f"[bold cyan]==>[/] [bold]{event.name}[/] {_text(event.message)}")
        elif isinstance(event, PhaseDone):
            self._stop()
            self.console.print(f"    [dim]{event.name} done in {event.seconds:.1f} s[/]")
        elif isinstance(event, Message):
            style = {"warn": "yellow", "error": "red"}.get(event.level, "dim")
            self.console.print(f"    [{style}]{_text(event.text)}[/]")
        elif isinstance(event, HeldBack):
            style = "yellow" if event.requested else "dim"
            self.console.print(f"    [{style}]held back: {_text(event.text)}[/]")
        elif isinstance(event, Progress) and self.live:
            self._update(event)

    def _update(self, event: Progress) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        if self._progress is None:
            columns: list[Any] = [TextColumn("    {task.description}"), BarColumn()]
            if event.unit == "bytes":
                columns += [DownloadColumn(), TransferSpeedColumn()]
            else:
                columns += [MofNCompleteColumn()]
            columns.append(TimeRemainingColumn())
            self._progress = RichProgress(*columns, console=self.console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task(event.phase, total=event.total)
        self._progress.update(self._task, completed=event.done, total=event.total,
                              description=f"{event.phase} {event.item}"[:40])

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def close(self) -> None:
        self._stop()


def print_error(message: str, hint: str, details: list[str], code: int) -> None:
    """One red line with the cause, one line with the hint, then the details (chains, missing files)."""
    console = _console()
    console.print(f"[bold red]error:[/] {_text(message)}", markup=True, highlight=False)
    for line in details[:40]:
        if line != message:
            console.print(f"  [red]-[/] {_text(line)}")
    if hint:
        console.print(f"[yellow]hint:[/] {_text(hint)}")
    console.print(f"[dim](exit code {code})[/]")


def print_checks(report: dict[str, Any]) -> None:
    """The verify table."""
    from rich.table import Table

    console = _console(stderr=False)
    table = Table(title=_text(f"verify {report['venv']}"), show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    colours = {"pass": "green", "fail": "red", "warn": "yellow", "skip": "dim"}
    for check in report["checks"]:
        table.add_row(_text(check["name"]), f"[{colours[check['status']]}]{check['status']}[/]", _text(check["detail"]))
    console.print(table)
    verdict = "[bold green]healthy[/]" if report["ok"] else "[bold red]NOT healthy[/]"
    console.print(f"{verdict} in {report['duration_s']:.1f} s; fingerprint {str(report['fingerprint'])[:16]}")


def print_summary(title: str, rows: list[tuple[str, str]]) -> None:
    """A final summary panel."""
    from rich.panel import Panel

    body = "\n".join(f"[bold]{_text(k)}[/]: {_text(v)}" for k, v in rows)
    _console(stderr=False, wrap=True).print(Panel(body, title=title, expand=False))


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=_text(title))
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[_text(cell) for cell in row])
    _console(stderr=False).print(table)


def print_line(text: str) -> None:
    _console(stderr=False).print(mask_text(text), markup=False)


def _text(value: str) -> str:
    """Text for a rich markup string: credentials masked, brackets shown as they are ("pkg[extra]" is a package
    with an extra, not a style tag that would vanish)."""
    from rich.markup import escape

    return escape(mask_text(str(value)))
