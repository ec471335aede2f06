"""Console-script entry: answers `--version` and every command's `--help` without importing typer.

typer alone costs about 60 ms to import here, more than half of the 100 ms start-up budget. The help of
every command is rendered from the typer app at build time into ``help.json`` (a test fails when it is
stale); everything else goes through ``immutable_installer.cli.app``.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    """Run the command; with ``PYTHONINSPECT`` set (which would turn every exit into 1 with a ``SystemExit``
    traceback, then wait at a prompt) the process still ends with the command's own exit code."""
    if not sys.flags.inspect:
        _run(argv)
        return
    try:
        _run(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int) and exc.code is not None:
            sys.stderr.write(f"{exc.code}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(argv: list[str] | None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from immutable_installer import __version__

        sys.stdout.write(f"immutable-installer {__version__}\n")
        return
    if args and args[-1] in ("--help", "-h") and all(not a.startswith("-") for a in args[:-1]):
        text = _cached_help(" ".join(args[:-1]))
        if text:
            sys.stdout.write(text)
            return
    from immutable_installer.cli.app import main as cli_main

    cli_main(args)


def _cached_help(command: str) -> str:
    """The cached help of ``command`` ("" for the top level), or "" when it is not cached."""
    import json

    try:
        with open(os.path.join(os.path.dirname(__file__), "help.json"), encoding="utf-8") as fh:
            return str(json.load(fh).get(command, ""))
    except (OSError, ValueError):
        return ""


if __name__ == "__main__":
    main()
