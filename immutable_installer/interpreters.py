"""The interpreter a manifest asks for (CPython X.Y): this one, or one found on the machine.

Used wherever the target's interpreter runs: the store's bytecode compilers, a generation's virtualenv, a build
environment for an sdist, ``store verify --repair``.
"""

from __future__ import annotations

import glob
import os
import sys

from immutable_installer.core.errors import InterpreterNotFound


def find_interpreter(version: str, implementation: str = "cpython") -> str:
    """A working CPython ``X.Y``: this one, or one python-discovery finds on PATH, in pyenv, uv's store and
    the usual places. Each candidate is run once to ask what it is, so a shim that exits 127 (pyenv's, for
    a version it does not have) or a broken install is skipped rather than returned."""
    if implementation != "cpython":
        raise InterpreterNotFound(f"only CPython targets are supported, the manifest asks for {implementation}")
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    from python_discovery import get_interpreter

    found = get_interpreter(f"cpython{version}", env=os.environ)
    if found is None:  # pyenv's installed versions, active or not (its shims only run the active ones)
        root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        installed = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")),
                           reverse=True)
        found = get_interpreter(f"cpython{version}", try_first_with=installed, env=os.environ) if installed else None
    if found is None or not (found.system_executable or found.executable):
        raise InterpreterNotFound(f"python {version} is needed by the manifest but was not found",
                                  hint=f"install python{version} (e.g. `pyenv install {version}` or "
                                       f"`uv python install {version}`) and put it on PATH")
    return str(found.system_executable or found.executable)
