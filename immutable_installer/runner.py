"""Starts every process the stages need (the window's ``gui/child.py`` alone starts one itself: the CLI, whose
output it streams into Qt signals).

Services receive a ``Runner`` as a constructor argument (the pypa/build pattern), so tests can run real
commands while seeing exactly what was run, and the environment handed to a child is decided in one place:
``clean_env`` drops every ``PIP_*`` variable and any variable that would redirect the child's imports or run code
in it (``PYTHONPATH`` with a ``sitecustomize``, ``PYTHONSTARTUP``, ``PYTHONINSPECT``), and turns the user site off;
a command started without an explicit environment gets ``clean_env()``, never the caller's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from immutable_installer.core.errors import InstallerError, ResolutionError

# VIRTUALENV_* configures virtualenv like its ini file does (VIRTUALENV_SYSTEM_SITE_PACKAGES=1 leaked ~100 base
# packages into a generation): neither reaches a child; VIRTUALENV_CONFIG_FILE points at nothing instead
_LEAKY_PREFIXES = ("PIP_", "PYTHON", "VIRTUAL_ENV", "VIRTUALENV_", "UV_", "CONDA_PREFIX")


@dataclass(frozen=True)
class Result:
    """What a finished command gave back."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 12) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return "\n".join(text[-lines:])


def clean_env(extra: Mapping[str, str] | None = None, keep_pip: bool = False) -> dict[str, str]:
    """The parent's environment without PIP_*/PYTHON*/VIRTUAL_ENV*/VIRTUALENV_*/UV_* (PIP_* kept with
    ``keep_pip``), with user site and virtualenv's ini file off, plus ``extra``."""
    env = {}
    for key, value in os.environ.items():
        if key.startswith(_LEAKY_PREFIXES) and not (keep_pip and key.startswith("PIP_")):
            continue
        env[key] = value
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUTF8"] = "1"
    env["VIRTUALENV_CONFIG_FILE"] = os.devnull
    if extra:
        env.update(extra)
    return env


def _debug_echo(result: Result) -> None:
    """With ``--debug`` (``IMMUTABLE_INSTALLER_DEBUG=1``): the command and everything it printed, on stderr,
    credentials in URLs masked."""
    if not os.environ.get("IMMUTABLE_INSTALLER_DEBUG"):
        return
    from immutable_installer.core.urls import mask_text

    text = f"$ {' '.join(result.args)}\n{result.stdout}{result.stderr}[exit {result.returncode}]\n"
    sys.stderr.write(mask_text(text))


@dataclass
class Runner:
    """Runs commands with captured output (shown with --debug)."""

    def run(self, args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None,
            timeout: float | None = None, input_text: str | None = None) -> Result:
        argv = tuple(str(a) for a in args)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  env=dict(env) if env is not None else clean_env(), cwd=cwd, timeout=timeout,
                                  input=input_text, check=False, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise InstallerError(f"command not found: {argv[0]}") from None
        except subprocess.TimeoutExpired:
            raise InstallerError(f"command timed out after {timeout:.0f} s: {' '.join(argv[:4])} ...") from None
        result = Result(argv, proc.returncode, proc.stdout, proc.stderr)
        _debug_echo(result)
        return result

    def start(self, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: str | None = None, stdin: bool = False) -> subprocess.Popen[str]:
        """Start a command that runs while the caller works (the verifier's probe, the store's compilers);
        output is captured, and with ``stdin`` the caller feeds it."""
        argv = tuple(str(a) for a in args)
        try:
            return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                                    env=dict(env) if env is not None else clean_env(), encoding="utf-8",
                                    errors="replace", stdin=subprocess.PIPE if stdin else None)
        except FileNotFoundError:
            raise InstallerError(f"command not found: {argv[0]}") from None

    @staticmethod
    def finish(proc: subprocess.Popen[str], timeout: float | None = None) -> Result:
        """Wait for a command begun with ``start`` whose output nobody read meanwhile (shown with --debug, like
        ``run``); killed when it outlives ``timeout``."""
        argv = tuple(str(a) for a in proc.args) if isinstance(proc.args, (list, tuple)) else (str(proc.args),)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise InstallerError(f"command timed out after {timeout:.0f} s: {' '.join(argv[:4])} ...") from None
        result = Result(argv, proc.returncode, stdout or "", stderr or "")
        _debug_echo(result)
        return result

    def stream(self, args: Sequence[str], *, on_line: Callable[[str], None], env: Mapping[str, str] | None = None,
               timeout: float | None = None) -> Result:
        """Run with stdout delivered line by line to ``on_line`` (pip's raw progress), stderr captured."""
        argv = tuple(str(a) for a in args)
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                    env=dict(env) if env is not None else clean_env(), encoding="utf-8",
                                    errors="replace")
        except FileNotFoundError:
            raise InstallerError(f"command not found: {argv[0]}") from None
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read() if proc.stderr else ""),
                                  daemon=True)
        reader.start()
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                on_line(line.rstrip("\n"))
            proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        reader.join()
        result = Result(argv, proc.returncode, "".join(lines), "".join(errors))
        _debug_echo(result)
        return result

    def python(self) -> str:
        """The interpreter running the tool (it carries pip, our pinned resolver and downloader)."""
        return sys.executable


def uv_binary() -> str:
    """The uv executable shipped with the uv package (a dependency), else one on PATH."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        if not Path(found).exists():
            raise ResolutionError("uv is not installed",
                                  hint="pip install uv (a dependency of immutable-installer)") from None
        return found
