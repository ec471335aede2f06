"""`verify`, `status` and `rollback`: looking after an environment that exists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from immutable_installer.cli.options import (
    DEFAULT_MANIFEST,
    DEFAULT_VENV,
    JsonOpt,
    VenvOpt,
    close_reporter,
    emit_result,
    load,
    make_reporter,
)
from immutable_installer.core.errors import ExitCode


def verify(
    venv: VenvOpt = DEFAULT_VENV,
    manifest: Annotated[Path | None, typer.Option("--manifest", help="The manifest to check against (default: "
                                                                    "metadata/dependencies.json, else the copy "
                                                                    "the environment carries).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check an environment against the manifest; exit 0 when healthy, 1 otherwise.

    Without a manifest file the environment is checked against the manifest it was built from (its own copy).
    Example: immutable-installer verify --json
    """
    from immutable_installer.pipeline import check_environment

    if manifest is None and DEFAULT_MANIFEST.exists():
        manifest = DEFAULT_MANIFEST
    reporter = None if json_out else make_reporter(False)
    report = check_environment(venv, manifest, reporter or (lambda e: None))
    if reporter is not None:
        close_reporter(reporter)
    if json_out:
        import json

        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        from immutable_installer.cli.console import print_checks, print_line

        print_checks(report.to_json())
        for note in report.notes:  # what the lock said it held back may be why
            print_line(f"note: {note}")
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)


def status(venv: VenvOpt = DEFAULT_VENV, json_out: JsonOpt = False) -> None:
    """List generations: manifest, variant, fingerprint, date, and which one is current.

    Example: immutable-installer status --venv .venv
    """
    from immutable_installer.generation.generations import Generations

    gens = Generations(venv)
    gens.settle()
    current = gens.current()
    rows = []
    for g in gens.complete():
        r = g.receipt
        rows.append({"generation": g.name, "current": current is not None and g.name == current.name,
                     "manifest": r.manifest_name or None, "manifest_sha256": r.manifest_sha256 or None,
                     "variant": r.variant or None, "fingerprint": r.fingerprint or None, "created": r.created or None})
    if json_out:
        import json

        typer.echo(json.dumps({"venv": str(venv), "current": current.name if current else None,
                               "generations": rows}, indent=2))
        return
    from immutable_installer.cli.console import print_table

    print_table(f"generations of {venv}", ["", "generation", "variant", "manifest", "fingerprint", "created"],
                [["*" if r["current"] else "", str(r["generation"]), str(r["variant"]),
                  f"{r['manifest']} {str(r['manifest_sha256'])[:12]}", str(r["fingerprint"])[:16],
                  str(r["created"])] for r in rows])


def rollback(
    venv: VenvOpt = DEFAULT_VENV,
    manifest: Annotated[Path | None, typer.Option("--manifest", help="Only for generations that carry no copy of "
                                                                    "their manifest.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Generation name (see `status`).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Switch back to the previous (or a named) generation, after verifying it against its own manifest.

    Needs no manifest file: every generation carries the manifest it was built from and its receipt.
    Example: immutable-installer rollback --to g0003
    """
    from immutable_installer.generation.engine import Engine

    reporter = make_reporter(json_out)
    engine = Engine(venv, reporter=reporter)
    report = engine.rollback(to, manifest=load(manifest) if manifest else None)
    close_reporter(reporter)
    if json_out:
        current = engine.generations.current()
        emit_result(reporter, {"venv": str(venv), "generation": current.name if current else None,
                           "verify": report.to_json()})
