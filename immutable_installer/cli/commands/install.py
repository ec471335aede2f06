"""`install` (and its dry run), `detect` and `gui`: building environments, and the machine they are built for."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from immutable_installer.cli.options import (
    DEFAULT_MANIFEST,
    DEFAULT_VENV,
    DEFAULT_WHEELHOUSE,
    JsonOpt,
    LinkModeOpt,
    ManifestOpt,
    SkipWheelhouseOpt,
    StoreOpt,
    VariantOpt,
    VenvOpt,
    WheelhouseOpt,
    close_reporter,
    emit_result,
    load,
    make_reporter,
    platform_and_variant,
)
from immutable_installer.core.errors import UsageError


def install(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    venv: VenvOpt = DEFAULT_VENV,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    variant: VariantOpt = "auto",
    skip_wheelhouse: SkipWheelhouseOpt = False,
    force: Annotated[bool, typer.Option("--force", help="Build a new generation even if up to date.")] = False,
    keep: Annotated[int, typer.Option("--keep", min=0, help="Old generations to keep besides the current.")] = 2,
    json_out: JsonOpt = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Exit 5 instead of waiting for another "
                                                            "installer.")] = False,
    find_links: Annotated[list[Path] | None, typer.Option("--find-links", help="Extra folder to take wheels "
                                                                               "from (by sha256).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the install plan (groups, wheels, what is "
                                                            "missing) and touch nothing.")] = False,
    store: StoreOpt = None,
    link_mode: LinkModeOpt = "auto",
    from_image: Annotated[str | None, typer.Option("--from", metavar="REF",
                                                   help="Take the store entries from this image first (pinned by "
                                                        "digest, or by the images record beside the manifest): no "
                                                        "wheel to download, nothing to compile.")] = None,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="With --from: plain HTTP to a registry that is "
                                                                  "not on loopback.")] = False,
) -> None:
    """Download, scan, build a fresh verified generation and switch VENV to it atomically.

    Example: immutable-installer install --variant cpu --venv .venv
    """
    from immutable_installer.core.selection import select
    from immutable_installer.pipeline import Pipeline
    from immutable_installer.store.entries import Store
    from immutable_installer.wheelhouse.download import Downloader

    reporter = make_reporter(json_out and not dry_run)
    m = load(manifest)
    platform, var = platform_and_variant(m, variant)
    pipeline = Pipeline(venv, wheelhouse, Store(store, reporter=reporter), reporter=reporter, link_mode=link_mode)
    selection = select(m, var.name, platform)
    if dry_run:
        _print_plan(pipeline, selection, json_out)
        return
    fetcher: Any = None if skip_wheelhouse else Downloader(wheelhouse, reporter=reporter,
                                                           find_links=[str(p) for p in find_links or []])
    if from_image is not None:
        from immutable_installer.cli.commands.registry import pull_into
        from immutable_installer.store.entries import interpreter_tag

        pull_into(from_image, manifest, selection, pipeline.store, plain_http, reporter)
        interp = interpreter_tag(m.python.implementation, m.python.minor)
        missing = [n for n in selection.wheels
                   if not pipeline.store.entry_path(pipeline.store.key(n.wheel.sha256, interp)).is_dir()]
        fetcher = _Only(fetcher, missing) if fetcher is not None and missing else None
    result = pipeline.install(selection, force=force, keep=keep, wait=not no_wait, fetcher=fetcher)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, result.to_json())
        return
    from immutable_installer.cli.console import print_summary

    if not result.changed:
        what = "nothing (up to date)"
    elif result.changes:
        what = f"{len(result.changes)} package change(s): " + ", ".join(result.changes[:6]) + (
            " ..." if len(result.changes) > 6 else "")
    else:
        what = "same packages, fresh generation"
    rows = [("result", "built, verified and switched" if result.changed else "up to date, nothing changed"),
            ("changes", what),
            ("target", f"{venv} -> {result.generation}"), ("variant", result.variant),
            ("fingerprint", str(result.fingerprint)[:16])]
    rows += [(f"time {k}", f"{v:.1f} s") for k, v in result.phases.items()]
    if result.pruned:
        rows.append(("pruned", ", ".join(result.pruned)))
    print_summary("immutable-installer install", rows)


class _Only:
    """``install --from``: the download fetches only the wheels of entries the image did not hold."""

    def __init__(self, inner: Any, wheels: list[Any]) -> None:
        self.inner, self.wheels = inner, tuple(wheels)

    def download(self, selection: Any, wait: bool = True) -> Any:
        from dataclasses import replace

        return self.inner.download(replace(selection, wheels=self.wheels), wait)


def _print_plan(pipeline: Any, selection: Any, json_out: bool) -> None:
    """``install --dry-run``: the plan the install would run (Pipeline.plan), with the wheelhouse as it is and
    the scan's verdict; touches nothing."""
    plan, verdict = pipeline.dry_run(selection)
    m = selection.manifest
    if json_out:
        import json

        about = {"name": m.name, "python": f"{m.python.implementation} {m.python.version}",
                 "variants": [{"name": v.name, "cuda": v.cuda, "min_driver": v.min_driver} for v in m.variants],
                 "default_variant": m.default_variant}
        typer.echo(json.dumps({"event": "result", "dry_run": True, "manifest": about,
                               "store": str(pipeline.store.root), "wheelhouse": str(pipeline.wheelhouse),
                               "scan": verdict, **plan.to_json()}))
        return
    from immutable_installer.cli.console import print_line, print_table

    rows = [[f"{s.number}/{s.of} {s.group}", w.name, w.version, w.state, w.store] for s in plan.steps.steps
            for w in s.wheels]
    print_table(f"install plan: variant {plan.steps.variant} on {plan.steps.platform} (nothing was changed)",
                ["group", "package", "version", "wheelhouse", f"store ({pipeline.store.root})"], rows)
    print_line(f"scan: {verdict['message']}" if verdict["ok"] else f"scan would refuse ({verdict['kind']}): "
               f"{verdict['message']}")


def detect(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    json_out: JsonOpt = False,
) -> None:
    """Show python, platform tags, the NVIDIA driver and the variant `--variant auto` picks.

    Example: immutable-installer detect --json
    """
    from immutable_installer.hardware import choose_variant, variant_fits
    from immutable_installer.hardware import detect as run_detect

    hw = run_detect()
    chosen, fits = None, []
    if manifest.exists():
        m = load(manifest)
        chosen = choose_variant(m, hw).name
        fits = [{"name": f.variant.name, "ok": f.ok, "why": f.why} for f in variant_fits(m, hw)]
    data = {"python": hw.python, "implementation": hw.implementation, "platform_tags": list(hw.platform_tags[:6]),
            "driver": hw.driver, "driver_source": hw.driver_source, "cuda_driver_api": hw.cuda_driver_api,
            "gpus": list(hw.gpus), "compute_capability": list(hw.compute_capabilities), "variant": chosen,
            "variants": fits}
    if json_out:
        import json

        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key == "variants":
            for fit in fits:
                typer.echo(f"{'variant ' + str(fit['name']):16} {'fits' if fit['ok'] else 'cannot run'}: {fit['why']}")
        else:
            typer.echo(f"{key:16} {value}")


def gui(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    venv: VenvOpt = DEFAULT_VENV,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    variant: VariantOpt = "auto",
    skip_wheelhouse: Annotated[bool, typer.Option("--skip-wheelhouse", help="Start with the offline box ticked: "
                                                                           "no network.")] = False,
    store: StoreOpt = None,
) -> None:
    """Open the desktop window: the plan, Install / Repair All, Verify, Rollback and the dependency graph.

    The window runs this same command line (with --json) for every action, so both always agree.
    Needs the optional extra: pip install 'immutable-installer[gui]'.
    Example: immutable-installer gui --variant cpu
    """
    try:
        from PySide6 import QtWidgets  # noqa: F401  (only to know the extra is installed)
    except ImportError as exc:
        raise UsageError(f"the window needs PySide6, which is not installed here ({exc})",
                         hint="pip install 'immutable-installer[gui]'") from None
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                                                 or os.environ.get("QT_QPA_PLATFORM")):
        # Qt would abort the process with its own message; a missing desktop is the user's to fix, in one line
        raise UsageError("no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set)",
                         hint="run it in a desktop session (or over `ssh -X`), or use the command line: "
                              "`immutable-installer install`")
    from immutable_installer.gui.launch import Options, run

    code = run(Options(manifest=manifest, venv=venv, wheelhouse=wheelhouse, variant=variant,
                       offline=skip_wheelhouse, store=store))
    if code:
        raise typer.Exit(code)
