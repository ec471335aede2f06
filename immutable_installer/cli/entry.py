"""Console-script entry: answers `--version` and the top-level `--help` without importing typer.

typer alone costs about 60 ms to import here, more than half of the 100 ms start-up budget. The top-level
help text is rendered from the typer app at build time into ``help.txt`` (a test fails when it is stale);
everything else goes through ``immutable_installer.cli.app``.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        from immutable_installer import __version__

        sys.stdout.write(f"immutable-installer {__version__}\n")
        return
    if args in (["--help"], ["-h"]):
        try:
            with open(os.path.join(os.path.dirname(__file__), "help.txt"), encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            text = ""
        if text:
            sys.stdout.write(text)
            return
    from immutable_installer.cli.app import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
