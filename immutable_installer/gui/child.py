"""One run of the command line as a child process with ``--json``, its output turned into Qt signals.

The window never installs, verifies or rolls back by itself: it runs ``python -m immutable_installer ...
--json`` and renders the events that run prints, so the window and the CLI cannot disagree. The child runs in
its own process group (its own session on POSIX); Cancel sends that group SIGINT, exactly what Ctrl-C in a
terminal sends, so the CLI stops the way it does there: children ended, the new generation deleted, the
previous environment untouched, exit 130.

Reading happens on two plain threads (stdout, stderr) so the UI thread never blocks; Qt delivers their
signals to the window's thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from PySide6.QtCore import QObject, Signal


def cli_argv(args: Sequence[str]) -> list[str]:
    """The command line of the CLI with ``args`` under this interpreter (where the window itself runs), isolated
    (``-I``: no ``PYTHONPATH``, no user site, no current folder on ``sys.path``)."""
    return [sys.executable, "-I", "-m", "immutable_installer", *args]


def child_env() -> dict[str, str]:
    """The window's environment (store, cache and index settings reach the CLI as they would from a shell)
    without the variables that would run code in the child (``PYTHONPATH``, ``PYTHONSTARTUP``,
    ``PYTHONINSPECT``...), with plain output: no colour, wide lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update({"NO_COLOR": "1", "COLUMNS": "160", "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
    return env


class CliChild(QObject):
    """A child CLI run: ``received`` for each JSON event, ``line`` for every other line of output, ``done`` with
    (exit code, result document or None, error event or None) once it has exited."""

    received = Signal(object)  # not ``event``: that is QObject's own event handler
    line = Signal(str)
    done = Signal(int, object, object)

    def __init__(self, action: str, args: Sequence[str], cwd: str | None = None) -> None:
        super().__init__()
        self.action = action
        self.args = list(args)
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.cancelled = False
        self._result: dict[str, Any] | None = None
        self._error: dict[str, Any] | None = None
        self._plain: list[str] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        self.line.emit("$ immutable-installer " + " ".join(self.args))
        self.proc = subprocess.Popen(cli_argv(self.args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=self.cwd, env=child_env(), **kwargs)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        readers = [threading.Thread(target=self._read_stdout, args=(self.proc.stdout,), daemon=True),
                   threading.Thread(target=self._read_stderr, args=(self.proc.stderr,), daemon=True)]
        waiter = threading.Thread(target=self._wait, args=(readers,), daemon=True)
        self._threads = [*readers, waiter]
        for thread in self._threads:
            thread.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cancel(self) -> None:
        """Stop the run the way Ctrl-C does (SIGINT to its whole process group)."""
        if not self.running or self.proc is None:
            return
        self.cancelled = True
        if os.name == "nt":
            self.proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float | None = None) -> None:
        """Until the child has exited and every thread reading it has ended (none may outlive the window)."""
        if self.proc is not None:
            self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for raw in stream:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if isinstance(data, dict) and "event" in data:
                if data["event"] == "result":
                    self._result = data
                elif data["event"] == "error":
                    self._error = data
                self.received.emit(data)
            else:  # one indented JSON document (verify, status, detect): parsed when the child has exited
                self._plain.append(text)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.line.emit(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def _wait(self, readers: list[threading.Thread]) -> None:
        for reader in readers:
            reader.join()
        assert self.proc is not None
        code = self.proc.wait()
        if self._result is None and self._plain:
            try:
                document = json.loads("\n".join(self._plain))
                self._result = document if isinstance(document, dict) else None
            except ValueError:
                for text in self._plain:
                    self.line.emit(text)
        self.done.emit(code, self._result, self._error)
