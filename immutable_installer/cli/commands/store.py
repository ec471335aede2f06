"""`store status|verify|gc`: the store of unpacked, compiled wheels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from immutable_installer.cli.options import (
    DEFAULT_WHEELHOUSE,
    JsonOpt,
    StoreOpt,
    WheelhouseOpt,
    make_reporter,
    short_generation,
)
from immutable_installer.core.errors import ExitCode

store_app = typer.Typer(help="The store of unpacked, compiled wheels that generations are linked from.",
                        no_args_is_help=True)

@store_app.command("status")
def store_status(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
    """Entries, bytes (each store file counted once) and which generations use each entry.

    Example: immutable-installer store status --json
    """
    from immutable_installer.store.entries import Store

    data = Store(store).status()
    if json_out:
        import json

        typer.echo(json.dumps(data, indent=2))
        return
    from immutable_installer.cli.console import print_line, print_table

    print_table(f"store {data['store']}", ["entry", "wheel", "MB", "used by"],
                [[e["key"][:24], str(e["wheel"]), f"{e['bytes'] / 1e6:.1f}",
                  ", ".join(short_generation(g) for g in e["used_by"]) or "-"] for e in data["entries"]])
    print_line(f"{data['count']} entries, {data['bytes'] / 1e6:.1f} MB, {data['unused']} unused "
               "(`immutable-installer store gc` removes them)")


@store_app.command("verify")
def store_verify(
    store: StoreOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Rebuild damaged entries from the wheelhouse.")] = False,
    rebuild: Annotated[list[str] | None, typer.Option("--rebuild", metavar="KEY",
                                                      help="Build entry KEY again from its wheel and compare it "
                                                           "with the store's (repeatable; 'all' for every entry); "
                                                           "exit 1 when one differs.")] = None,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    json_out: JsonOpt = False,
) -> None:
    """Check every file of every entry against the sha256 and the content digest recorded when it was built;
    exit 1 if damaged.

    Example: immutable-installer store verify --repair
    """
    from immutable_installer.store.entries import Store

    s = Store(store, reporter=make_reporter(False) if repair and not json_out else (lambda e: None))
    if rebuild:
        _rebuild(s, rebuild, wheelhouse, json_out)
        return
    damaged = s.verify()
    repaired: list[str] = []
    if damaged and repair:
        from immutable_installer.interpreters import find_interpreter

        repaired = s.repair(damaged, wheelhouse, find_interpreter)
    data: dict[str, Any] = {"store": str(s.root), "entries": len(s.entry_keys()),
                            "damaged": [d.describe() for d in damaged], "repaired": repaired,
                            "not_entries": s.strangers(), "ok": not damaged or len(repaired) == len(damaged)}
    if json_out:
        import json

        typer.echo(json.dumps(data, indent=2))
    else:
        from immutable_installer.cli.console import print_line

        for line in data["damaged"]:
            print_line(f"damaged: {line}")
        for name in data["not_entries"]:
            print_line(f"not a store entry (left alone): {s.entries_dir / name}")
        for key in repaired:
            print_line(f"repaired: {key}")
        if not damaged:
            print_line(f"{data['entries']} entries, every file matches its sha256 and every entry its content "
                       "digest")
        elif not repair:
            print_line("run `immutable-installer store verify --repair` to rebuild them from the wheelhouse, then "
                       "`immutable-installer install --force` for generations that linked the damaged files")
    if not data["ok"]:
        raise typer.Exit(ExitCode.FAILED)


def _rebuild(s: Any, keys: list[str], wheelhouse: Path, json_out: bool) -> None:
    """``store verify --rebuild``: each entry built again from its wheel (the wheelhouse, else the cache of
    wheels built from sdists) by the interpreter of its key, compared file by file."""
    from immutable_installer.core.errors import UsageError
    from immutable_installer.interpreters import find_interpreter
    from immutable_installer.store.entries import interpreter_version
    from immutable_installer.wheelhouse.built import BuiltWheels

    chosen = s.entry_keys() if keys == ["all"] else keys
    for key in chosen:
        if key not in s.entry_keys():
            raise UsageError(f"--rebuild {key}: the store {s.root} holds no such entry",
                             hint="`immutable-installer store status` lists the entries")
    results = []
    for key in chosen:
        meta = s.load(key).meta
        wheel = wheelhouse / str(meta["wheel"])
        if not wheel.is_file():
            built = BuiltWheels().get(str(meta["sha256"]))
            if built is None:
                raise UsageError(f"cannot rebuild {key}: {meta['wheel']} is not in {wheelhouse}",
                                 hint="run `immutable-installer download` first, or pass --wheelhouse")
            wheel = built.path
        results.append(s.rebuild_check(key, wheel, find_interpreter(interpreter_version(str(meta["interpreter"])))))
    if json_out:
        import json

        typer.echo(json.dumps({"store": str(s.root), "rebuilt": [r.to_json() for r in results],
                               "ok": all(r.same for r in results)}, indent=2))
    else:
        from immutable_installer.cli.console import print_line

        for r in results:
            if r.same:
                print_line(f"same: {r.key} rebuilt from its wheel gives {r.rebuilt}")
            else:
                print_line(f"DIFFERS: {r.key}: the store's {r.recorded}, rebuilt {r.rebuilt}; "
                           f"{len(r.differences)} file(s) differ: {', '.join(r.differences[:5])}")
    if not all(r.same for r in results):
        raise typer.Exit(ExitCode.FAILED)


@store_app.command("gc")
def store_gc(store: StoreOpt = None, json_out: JsonOpt = False) -> None:
    """Remove entries that no existing generation uses (safe beside a running install).

    Example: immutable-installer store gc
    """
    from immutable_installer.store.entries import Store

    data = Store(store).gc()
    if json_out:
        import json

        typer.echo(json.dumps(data, indent=2))
        return
    from immutable_installer.cli.console import print_line

    print_line(f"removed {len(data['removed'])} unused entries ({data['bytes'] / 1e6:.1f} MB); "
               f"{data['kept']} kept" + (f"; left alone, not entries: {', '.join(data['left_alone'])}"
                                         if data["left_alone"] else ""))
