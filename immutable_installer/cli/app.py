"""The command line: the only typer user. Options -> services; InstallerError -> exit code (one place).

The commands live in cli/commands/ (one module per kind of work, their shared options in cli/options.py) and are
registered here. Start-up matters (``--help`` under 100 ms): this module imports only typer and the error classes;
every service, rich renderer, pip or virtualenv import happens inside the command that needs it.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated

import typer

from immutable_installer import __version__
from immutable_installer.cli.commands import environment, install, lock, registry, store, wheelhouse
from immutable_installer.core.errors import ExitCode, InstallerError, Interrupted

app = typer.Typer(
    name="immutable-installer",
    help="Deterministic, offline, atomic environments for PyTorch + transformers.\n\n"
         "Run with no command to install the manifest into .venv (same as `install`, with its options: "
         "`immutable-installer --skip-wheelhouse` is `install --skip-wheelhouse`); `immutable-installer --verify` "
         "is `verify`.",
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"immutable-installer {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def main_callback(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error and the output of every "
                                                        "command run (pip, virtualenv); accepted anywhere.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Seed-compatible entry: the bare command and ``--verify`` / ``--skip-wheelhouse`` never reach here, since
    ``expand_seed_form`` rewrites them into the commands they stand for before typer parses anything."""


app.command()(install.install)  # registration order is the order `--help` lists them in: the everyday ones first
app.command()(environment.verify)
app.command()(wheelhouse.download)
app.command()(wheelhouse.scan)
app.command()(lock.lock)
app.command()(lock.init)
app.command("export-pylock")(lock.export_pylock)
app.command()(environment.rollback)
app.command()(environment.status)
app.command()(install.detect)
app.command("export-index")(wheelhouse.export_index)
app.command()(install.gui)
app.command()(registry.push)
app.command()(registry.pull)
app.add_typer(wheelhouse.bundle_app, name="bundle")
app.add_typer(store.store_app, name="store")


# ---------------------------------------------------------------------------------------------- entry
ROOT_OPTIONS = {"--help", "-h", "--version", "--install-completion", "--show-completion"}


def expand_seed_form(args: list[str]) -> tuple[list[str], bool]:
    """The seed installer's forms stand for commands and take all of their options: no command (or only
    options, e.g. ``--skip-wheelhouse --manifest m.json``) is ``install ...``, and ``--verify ...`` is
    ``verify ...``. ``--debug`` is accepted anywhere. Returns the arguments for the app and the debug flag."""
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    if not args or (args[0].startswith("-") and args[0] not in ROOT_OPTIONS):
        if "--verify" in args:
            return ["verify", *[a for a in args if a != "--verify"]], debug
        return ["install", *args], debug
    return args, debug


# conditions a user can cause (a full disk, a read-only or missing folder, a file where a folder should be):
# a one-line error with the path, never "internal error"
_USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR,
                errno.ENOENT, errno.EEXIST, errno.ENAMETOOLONG, errno.EMLINK, errno.EXDEV}


_RECEIVED: list[Interrupted] = []  # the signal that stopped this run (typer reports any interrupt as exit 130)


def _stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP (SIGBREAK on Windows: Ctrl-Break, and what the window's Cancel sends there)
    unwind alike, as KeyboardInterrupt (the new generation and the store's temporaries removed, children ended by
    the same cleanup); repeated SIGTERM/SIGHUP/SIGBREAK are ignored so that the cleanup finishes."""
    import signal

    def stop(signum: int, _frame: object) -> None:
        for name in ("SIGTERM", "SIGHUP", "SIGBREAK"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)
        interrupted = Interrupted(signum, signal.Signals(signum).name)
        _RECEIVED.append(interrupted)
        raise interrupted

    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"):
        if hasattr(signal, name):  # SIGHUP exists on POSIX only, SIGBREAK on Windows only
            signal.signal(getattr(signal, name), stop)


def _interrupted(name: str, code: int, json_out: bool) -> None:
    """One line (and the ``error`` event for programs), then the documented exit code."""
    sys.stderr.write(f"interrupted by {name}; the previous environment is untouched\n")
    if json_out:
        import json

        sys.stdout.write(json.dumps({"event": "error", "kind": "interrupted", "exit_code": code,
                                     "message": f"interrupted by {name}", "hint": "", "details": []}) + "\n")
        sys.stdout.flush()
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app and turn every failure into its documented exit code."""
    try:  # typer >= 0.2x vendors click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older typer
        from click.exceptions import ClickException  # type: ignore[no-redef,import-not-found,unused-ignore]

    args, debug = expand_seed_form(list(sys.argv[1:] if argv is None else argv))
    _stop_on_signals()
    if debug:  # the runner shows every command it starts and its output (pip's, virtualenv's)
        os.environ["IMMUTABLE_INSTALLER_DEBUG"] = "1"
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="immutable-installer", standalone_mode=False)
        if _RECEIVED:  # typer caught the interrupt and returned 130: say which signal, exit with its code
            _interrupted(_RECEIVED[0].name, _RECEIVED[0].exit_code, "--json" in args)
        if isinstance(code, int) and code != 0:  # click hands typer.Exit codes back in this mode
            sys.exit(code)
    except InstallerError as exc:
        from immutable_installer.cli.console import print_error

        if debug:
            import traceback

            from immutable_installer.core.urls import mask_text

            sys.stderr.write(mask_text(traceback.format_exc()))
        print_error(exc.message, exc.hint, exc.details, exc.exit_code)
        if "--json" in args:  # programs read the kind and exit code from stdout, like every other event
            import json

            from immutable_installer.core.urls import mask_text

            sys.stdout.write(mask_text(json.dumps(exc.to_event())) + "\n")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        first = _RECEIVED[0] if _RECEIVED else Interrupted(2, "SIGINT")
        _interrupted(first.name, first.exit_code, "--json" in args)
    except ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM / SIGHUP turned into Interrupted
        if isinstance(exc, Interrupted):
            _interrupted(exc.name, exc.exit_code, "--json" in args)
        _interrupted("SIGINT", ExitCode.INTERRUPTED, "--json" in args)
    except OSError as exc:
        if exc.errno not in _USER_ERRNOS or debug:
            raise
        from immutable_installer.cli.console import print_error

        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        print_error(f"{exc.strerror}: {exc.filename or 'a file'}",
                    "free some space (or use another --store / --venv on a disk with room); the previous environment "
                    "is untouched" if full else "check that the path is a folder you can write to, or pick another "
                    "--venv / --store / --wheelhouse", [], ExitCode.FAILED if full else ExitCode.USAGE)
        sys.exit(ExitCode.FAILED if full else ExitCode.USAGE)
    except Exception as exc:  # an unexpected bug: say how to report it
        if debug:
            raise
        from immutable_installer.core.urls import mask_text

        sys.stderr.write(f"internal error: {type(exc).__name__}: {mask_text(str(exc))}\n"
                         "this is a bug in immutable-installer: rerun with --debug and report the traceback\n")
        sys.exit(ExitCode.FAILED)
