"""`download`, `scan`, `export-index` and `bundle`: the wheelhouse, and carrying it to other machines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from immutable_installer.cli.options import (
    DEFAULT_MANIFEST,
    DEFAULT_WHEELHOUSE,
    JsonOpt,
    ManifestOpt,
    VariantOpt,
    WheelhouseOpt,
    close_reporter,
    emit_result,
    load,
    make_reporter,
    platform_and_variant,
)
from immutable_installer.core.errors import UsageError

bundle_app = typer.Typer(help="One file that installs the stack on a machine with no network.",
                         invoke_without_command=True)

def download(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    variant: VariantOpt = "auto",
    find_links: Annotated[list[Path] | None, typer.Option("--find-links", help="Folder to take wheels from "
                                                                               "(matched by sha256).")] = None,
    json_out: JsonOpt = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Exit 5 if another installer holds the "
                                                            "wheelhouse.")] = False,
    index_url: Annotated[str | None, typer.Option("--index-url", help="One index for every package (a mirror, or "
                                                                      "an `export-index` served over HTTP): "
                                                                      "replaces the manifest's indexes.")] = None,
) -> None:
    """Fill the wheelhouse with exactly the pinned wheels (hash-verified, resumable).

    Example: immutable-installer download --variant cpu
    """
    from immutable_installer.core.selection import select
    from immutable_installer.wheelhouse.download import Downloader

    reporter = make_reporter(json_out)
    m = load(manifest)
    platform, var = platform_and_variant(m, variant)
    state = Downloader(wheelhouse, reporter=reporter, find_links=[str(p) for p in find_links or []],
                       index_url=index_url).download(select(m, var.name, platform), wait=not no_wait)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, {"ok": True, "present": len(state.present), "variant": var.name})
    else:
        from immutable_installer.cli.console import print_line

        print_line(f"wheelhouse complete: {len(state.present)} wheels for {var.name} on {platform.name}")


def scan(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    variant: VariantOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Check the wheelhouse: hashes, blacklist (with the chain that pulls it in), closure. Installs nothing.

    Example: immutable-installer scan --variant cpu
    """
    from immutable_installer.core.selection import select
    from immutable_installer.wheelhouse.scan import scan as run_scan

    reporter = make_reporter(json_out)
    m = load(manifest)
    platform, var = platform_and_variant(m, variant)
    result = run_scan(select(m, var.name, platform), wheelhouse, reporter)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, {"ok": True, "wheels": len(result.wheels), "strays": result.strays,
                         "variant": var.name})
    else:
        from immutable_installer.cli.console import print_line

        print_line(f"scan clean: {len(result.wheels)} wheels verified, no blacklisted package, closure holds "
                   f"({result.seconds:.1f} s)")


def export_index(
    directory: Annotated[Path, typer.Argument(help="Folder to write the static index into.")],
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    json_out: JsonOpt = False,
) -> None:
    """Write the wheelhouse as a static PEP 503 + PEP 691 index (plus the manifest) for any file server.

    Example: immutable-installer export-index /srv/www/ml && download --index-url https://host/ml/simple
    """
    from immutable_installer.wheelhouse.index_export import export_index as run_export

    reporter = make_reporter(json_out)
    m = load(manifest)
    result = run_export(m, manifest.read_bytes(), wheelhouse, directory, reporter)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, result.to_json())
        return
    from immutable_installer.cli.console import print_line

    print_line(f"wrote {result.files} wheels of {result.projects} projects ({result.bytes / 1e6:.1f} MB) to "
               f"{directory}; serve it and run `immutable-installer download --index-url <url>/simple`")


@bundle_app.callback()
def bundle(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The bundle to write (a .tar file).")] = None,
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    variants: Annotated[list[str] | None, typer.Option("--variant", help="Variant to include (repeatable; "
                                                                          "default: the manifest's default).")] = None,
    tool_wheel: Annotated[Path | None, typer.Option("--tool-wheel", help="A wheel of immutable-installer to "
                                                                         "ship (default: built from this "
                                                                         "checkout).")] = None,
    platform: Annotated[str | None, typer.Option("--platform", help="The target: one of the manifest's platforms "
                                                                    "(default: this machine's).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write one archive: manifest, wheels, the tool and its dependencies, SHA256SUMS, install.sh and install.ps1.

    Example: immutable-installer bundle -o stack.tar --variant cpu
    """
    if ctx.invoked_subcommand is not None:
        return
    if output is None:
        raise UsageError("bundle needs -o FILE (or `bundle verify FILE`)", hint="e.g. immutable-installer bundle "
                                                                                "-o stack.tar")
    from immutable_installer.hardware import host_platform
    from immutable_installer.wheelhouse.bundle import write_bundle

    reporter = make_reporter(json_out)
    m = load(manifest)
    if platform is not None and platform not in {p.name for p in m.platforms}:
        raise UsageError(f"--platform {platform!r} is not a platform of the manifest",
                         hint=f"choose one of: {', '.join(p.name for p in m.platforms)}")
    target = m.platform(platform) if platform is not None else host_platform(m)
    data = write_bundle(output, m, manifest.read_bytes(), wheelhouse, variants or [m.default_variant],
                        target, tool_wheel=tool_wheel, reporter=reporter)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, data)
        return
    from immutable_installer.cli.console import print_line

    print_line(f"wrote {output} ({int(str(data['bytes'])) / 1e6:.1f} MB, sha256 {data['sha256']}): carry it to the "
               f"target, then `tar xf {output.name}` and run `{output.name.split('.')[0]}/install.sh` "
               f"(`install.ps1` on Windows)")


@bundle_app.command("verify")
def bundle_verify(
    file: Annotated[Path, typer.Argument(help="The bundle to check.")],
    json_out: JsonOpt = False,
) -> None:
    """Check every member of a bundle against its SHA256SUMS before anything is unpacked; exit 4 if not.

    Example: immutable-installer bundle verify stack.tar
    """
    from immutable_installer.wheelhouse.bundle import verify_bundle

    reporter = make_reporter(json_out)
    data = verify_bundle(file, reporter)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, data)
        return
    from immutable_installer.cli.console import print_line

    print_line(f"{file}: all {data['members']} members match SHA256SUMS")
