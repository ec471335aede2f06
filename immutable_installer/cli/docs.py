"""Generate docs/reference/cli.md from the typer app
(``python -m immutable_installer.cli.docs > docs/reference/cli.md``) and the cached help of every command
(``python -m immutable_installer.cli.docs --help-cache`` writes ``help.json``).

A test regenerates it and fails when the committed file is stale, so the reference never drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer


def render() -> str:
    from immutable_installer.cli.app import app

    command = typer.main.get_command(app)
    out = ["# Command-line reference", "",
           "Generated from the typer app by `python -m immutable_installer.cli.docs`; do not edit by hand.", "",
           "Exit codes: 0 success, 1 verification or build failed (previous environment untouched), 2 usage or "
           "invalid input, 3 blacklisted package, 4 wheelhouse problem, 5 lock held (`--no-wait`), 6 file clash "
           "between two wheels or with the tool's own files, 7 start-up code not allowed, 130 / 143 / 129 "
           "interrupted by SIGINT (Ctrl-C; Ctrl-Break on Windows) / SIGTERM / SIGHUP (previous environment "
           "untouched).",
           ""]
    ctx = typer.Context(command, info_name="immutable-installer", terminal_width=100,
                      max_content_width=100)
    out += ["## immutable-installer", "", "```", command.get_help(ctx).rstrip(), "```", ""]
    for name in sorted(command.commands):  # type: ignore[attr-defined]
        sub = command.commands[name]  # type: ignore[attr-defined]
        sub_ctx = typer.Context(sub, info_name=name, parent=ctx, terminal_width=100, max_content_width=100)
        out += [f"## immutable-installer {name}", "", "```", sub.get_help(sub_ctx).rstrip(), "```", ""]
    return "\n".join(out)


def help_texts() -> dict[str, str]:
    """Every command's help exactly as typer renders it (80 columns), keyed by the command path ("" for the
    top level, "install", "store gc"): what ``cli/help.json`` must hold."""
    from immutable_installer.cli.app import app

    out: dict[str, str] = {}

    def walk(command: Any, ctx: Any, path: list[str]) -> None:
        out[" ".join(path)] = command.get_help(ctx).rstrip() + "\n"
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            walk(sub, typer.Context(sub, info_name=name, parent=ctx, terminal_width=80, max_content_width=80),
                 [*path, name])

    root = typer.main.get_command(app)
    walk(root, typer.Context(root, info_name="immutable-installer", terminal_width=80, max_content_width=80), [])
    return out


if __name__ == "__main__":
    if sys.argv[1:] == ["--help-cache"]:
        import json

        Path(__file__).with_name("help.json").write_text(json.dumps(help_texts(), indent=0, sort_keys=True) + "\n",
                                                         encoding="utf-8")
    else:
        sys.stdout.write(render())
