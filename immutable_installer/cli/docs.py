"""Generate docs/reference/cli.md from the typer app
(``python -m immutable_installer.cli.docs > docs/reference/cli.md``) and the cached top-level help
(``python -m immutable_installer.cli.docs --help-cache``).

A test regenerates it and fails when the committed file is stale, so the reference never drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def render() -> str:
    from immutable_installer.cli.app import app

    command = typer.main.get_command(app)
    out = ["# Command-line reference", "",
           "Generated from the typer app by `python -m immutable_installer.cli.docs`; do not edit by hand.", "",
           "Exit codes: 0 success, 1 verification or build failed (previous environment untouched), 2 usage or "
           "invalid input, 3 blacklisted package, 4 wheelhouse problem, 5 lock held (`--no-wait`), 6 file clash "
           "between two wheels, 7 start-up code (.pth) not allowed, 130 interrupted.",
           ""]
    ctx = typer.Context(command, info_name="immutable-installer", terminal_width=100,
                      max_content_width=100)
    out += ["## immutable-installer", "", "```", command.get_help(ctx).rstrip(), "```", ""]
    for name in sorted(command.commands):  # type: ignore[attr-defined]
        sub = command.commands[name]  # type: ignore[attr-defined]
        sub_ctx = typer.Context(sub, info_name=name, parent=ctx, terminal_width=100, max_content_width=100)
        out += [f"## immutable-installer {name}", "", "```", sub.get_help(sub_ctx).rstrip(), "```", ""]
    return "\n".join(out)


def root_help() -> str:
    """The top-level help exactly as typer renders it (80 columns): what ``cli/help.txt`` must hold."""
    from immutable_installer.cli.app import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="immutable-installer", terminal_width=80,
                        max_content_width=80)
    return command.get_help(ctx).rstrip() + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--help-cache"]:
        Path(__file__).with_name("help.txt").write_text(root_help(), encoding="utf-8")
    else:
        sys.stdout.write(render())
