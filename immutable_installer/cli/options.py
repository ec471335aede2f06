"""What the commands share: their options, declared once (``install`` and ``gui`` take the same ones), and the
small helpers every command uses to render events and load the manifest. Imports nothing heavy at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # real types for mypy, no import cost at start-up
    from immutable_installer.cli.console import HumanRenderer, JsonRenderer
    from immutable_installer.core.events import Reporter
    from immutable_installer.core.model import Manifest, Platform, Variant

ManifestOpt = Annotated[Path, typer.Option("--manifest", help="The frozen manifest.")]
VenvOpt = Annotated[Path, typer.Option("--venv", help="The target: a link to the current generation.")]
WheelhouseOpt = Annotated[Path, typer.Option("--wheelhouse", help="Folder of downloaded wheels.")]
VariantOpt = Annotated[str, typer.Option("--variant", help="auto (detect the GPU driver), cpu, or a cuXYZ variant.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout (JSON lines for long "
                                                      "commands, one document otherwise).")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="The store of unpacked, compiled wheels [default: "
                                                                 "$IMMUTABLE_INSTALLER_STORE or "
                                                                 "~/.cache/immutable-installer/store].")]
LinkModeOpt = Annotated[str, typer.Option("--link-mode", help="How store files enter a generation: auto, hardlink, "
                                                              "clone (copy-on-write) or copy.")]
DEFAULT_MANIFEST = Path("metadata/dependencies.json")
DEFAULT_VENV = Path(".venv")
DEFAULT_WHEELHOUSE = Path("wheelhouse")
SkipWheelhouseOpt = Annotated[bool, typer.Option("--skip-wheelhouse", help="No network: every wheel must already be "
                                                                           "in the wheelhouse.")]


def make_reporter(json_out: bool) -> JsonRenderer | HumanRenderer:
    from immutable_installer.cli.console import HumanRenderer, JsonRenderer

    return JsonRenderer() if json_out else HumanRenderer()


def load(manifest: Path) -> Manifest:
    from immutable_installer.core.manifest import load_manifest

    return load_manifest(manifest)


def platform_and_variant(m: Manifest, variant: str) -> tuple[Platform, Variant]:
    from immutable_installer.hardware import detect, host_platform, resolve_variant

    hardware = detect() if variant == "auto" else None
    return host_platform(m, hardware), resolve_variant(m, variant, hardware)


def short_generation(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name.removesuffix('.generations')}/{p.name}"


def emit_result(reporter: Reporter, data: dict[str, Any]) -> None:
    """The one result document of a ``--json`` run (its reporter is always the JSON renderer)."""
    from immutable_installer.cli.console import JsonRenderer

    assert isinstance(reporter, JsonRenderer)
    reporter.result(data)


def close_reporter(reporter: Reporter) -> None:
    if hasattr(reporter, "close"):
        reporter.close()
