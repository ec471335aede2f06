"""The interpreter a manifest asks for (CPython X.Y): this one, or one found on the machine.

Used wherever the target's interpreter runs: the store's bytecode compilers, a generation's virtualenv, a build
environment for an sdist, ``store verify --repair``.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from immutable_installer.core.errors import InstallerError, InterpreterNotFound
from immutable_installer.runner import Runner, clean_env

_IDENTIFY = ("import json, sys; print(json.dumps([sys.executable, '%d.%d' % sys.version_info[:2], "
             "sys.implementation.name]))")


def find_interpreter(version: str, implementation: str = "cpython") -> str:
    """A working CPython ``X.Y``: this one, or one python-discovery finds on PATH, in pyenv, uv's store and
    the usual places. Each candidate is run once to ask what it is, so a shim that exits 127 (pyenv's, for
    a version it does not have) or a broken install is skipped rather than returned.

    Discovery's children get the clean environment every child gets (no ``PYTHONPATH``, no user site: a
    ``sitecustomize`` there cannot run in them), and the interpreter chosen is identified by what it reports
    under ``-I -S`` (no site, no environment: nothing can make it say another executable)."""
    if implementation != "cpython":
        raise InterpreterNotFound(f"only CPython targets are supported, the manifest asks for {implementation}")
    env = clean_env()
    candidate: str | None = None
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        candidate = getattr(sys, "_base_executable", None) or sys.executable
    else:
        found = _discover(version, env, ())
        if found is None:  # pyenv's installed versions, active or not (its shims only run the active ones)
            root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
            installed = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}")),
                               reverse=True)
            found = _discover(version, env, installed) if installed else None
        candidate = found
    identified = identify(candidate) if candidate else None
    if identified is None or identified[1:] != (version, "cpython"):
        raise InterpreterNotFound(f"python {version} is needed by the manifest but was not found",
                                  hint=f"install python{version} (e.g. `pyenv install {version}` or "
                                       f"`uv python install {version}`) and put it on PATH")
    return identified[0]


_DISCOVER = """
import json, sys
from python_discovery import get_interpreter
try:
    found = get_interpreter("cpython" + sys.argv[1], try_first_with=sys.argv[2:] or None)
except (OSError, RecursionError, ValueError, RuntimeError):
    found = None
print(json.dumps(None if found is None else (found.system_executable or found.executable)))
"""


def _discover(version: str, env: dict[str, str], first: list[str] | tuple[str, ...]) -> str | None:
    """python-discovery's answer, asked in a child of its own with the clean environment: the library starts
    further children with ``os.environ`` in places, so they all inherit a clean one only this way. A candidate
    that makes it fail is no answer, not a crash."""
    try:
        done = Runner().run([sys.executable, "-I", "-c", _DISCOVER, version, *first], env=env, timeout=300)
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.ok and done.stdout.strip() else None
    except (InstallerError, ValueError):
        return None
    return str(found) if found else None


def identify(executable: str) -> tuple[str, str, str] | None:
    """(executable, X.Y, implementation) as the interpreter reports them under ``-I -S``; None when it does not
    run."""
    try:
        done = Runner().run([executable, "-I", "-S", "-c", _IDENTIFY], env=clean_env(), timeout=60)
        path, minor, name = json.loads(done.stdout)
    except (InstallerError, OSError, ValueError):
        return None
    return str(path), str(minor), str(name)
