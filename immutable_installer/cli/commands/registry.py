"""`push` and `pull`: a fleet through an OCI registry (or an OCI layout folder). `install --from` uses the same
pull (install.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from immutable_installer.cli.options import (
    DEFAULT_MANIFEST,
    DEFAULT_VENV,
    JsonOpt,
    ManifestOpt,
    StoreOpt,
    VariantOpt,
    VenvOpt,
    close_reporter,
    emit_result,
    load,
    make_reporter,
    platform_and_variant,
)
from immutable_installer.core.errors import UsageError

if TYPE_CHECKING:
    from immutable_installer.core.events import Reporter
    from immutable_installer.core.selection import Selection
    from immutable_installer.oci.pull import PullResult
    from immutable_installer.store.entries import Store

PlainHttpOpt = Annotated[bool, typer.Option("--plain-http", help="Speak plain HTTP to a registry that is not on "
                                                                 "loopback (loopback always is).")]
RefArg = Annotated[str, typer.Argument(metavar="REF", help="host[:port]/path[:tag][@sha256:...] or "
                                                          "oci:DIR[:TAG][@sha256:...]")]


def push(
    ref: RefArg,
    venv: VenvOpt = DEFAULT_VENV,
    generation: Annotated[str | None, typer.Option("--generation", help="Push this generation (gNNNN) instead of "
                                                                        "the current one.")] = None,
    manifest: Annotated[Path, typer.Option("--manifest", help="The manifest the images record is kept beside "
                                                              "(it must be the one the generation was built from).")]
    = DEFAULT_MANIFEST,
    store: StoreOpt = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Where the environment is in the image.")] = "/opt/venv",
    base: Annotated[str | None, typer.Option("--base", help="REF@sha256:... of a base image holding the interpreter: "
                                                            "the image then runs under docker, podman, containerd.")]
    = None,
    base_python: Annotated[str | None, typer.Option("--base-python", help="The interpreter's path in the base "
                                                                          "image [default: found in it].")] = None,
    plain_http: PlainHttpOpt = False,
    max_layers: Annotated[int, typer.Option("--max-layers", min=4, help="At most this many layers, the base's "
                                                                        "included (small entries are grouped).")]
    = 100,
    record: Annotated[bool, typer.Option("--record/--no-record", help="Record the image's digest and its entries' "
                                                                      "content digests beside the manifest.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Write the current (or a named) generation as an OCI image: one layer per store entry, a top layer of the
    generation's own files; prints the image's digest.

    Example: immutable-installer push 127.0.0.1:5000/ml/stack:cpu
    """
    from immutable_installer.generation.engine import generation_manifest
    from immutable_installer.generation.generations import Generations
    from immutable_installer.oci.client import open_store
    from immutable_installer.oci.image import push as push_image
    from immutable_installer.oci.layers import check_prefix
    from immutable_installer.oci.record import PushedImage, add_image, record_path
    from immutable_installer.oci.reference import parse_reference
    from immutable_installer.store.entries import Store

    target_ref = parse_reference(ref)
    if target_ref.digest:
        raise UsageError(f"REF {ref}: push names a tag, not a digest (the digest is what it prints)")
    prefix = check_prefix(prefix)
    gens = Generations(venv)
    gen = gens.get(generation) if generation else gens.current()
    if gen is None:
        raise UsageError(f"{venv} has no current generation to push", hint="run `immutable-installer install` first")
    built_from = generation_manifest(gen.path)
    if built_from is None:
        raise UsageError(f"{gen.name} carries no copy of its manifest (built by an older version)",
                         hint="run `immutable-installer install --force` and push again")
    reporter = make_reporter(json_out)
    entries_store = Store(store if store is not None else Path(gen.receipt.store) if gen.receipt.store else None,
                          reporter=reporter)
    base_image = None
    python = base_python
    if base is not None:
        base_image, python = _base(base, plain_http, built_from, base_python)
    python = python or f"/usr/local/bin/python{built_from.python.minor}"
    local = [str(gen.path), os.path.realpath(gen.path), str(Path(venv).absolute()), os.path.realpath(venv)]
    result = push_image(open_store(target_ref, plain_http, push=True), target_ref.tag, gen.path, gen.receipt,
                        built_from, entries_store, prefix, base_image, python, max_layers, local, reporter)
    pinned = f"{target_ref.pinned(result.digest)}"
    recorded = None
    if record:
        if manifest.is_file() and load(manifest).raw_sha256 == built_from.raw_sha256:
            interp = next(iter(result.entries), "-").split("-", 1)[0]
            add_image(record_path(manifest), built_from.raw_sha256,
                      PushedImage(str(target_ref), result.digest, gen.receipt.variant, gen.receipt.platform, interp,
                                  prefix), result.entries)
            recorded = str(record_path(manifest))
        else:
            from immutable_installer.core.events import Message

            reporter(Message("warn", f"not recorded: {manifest} is not the manifest {gen.name} was built from"))
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, {**result.to_json(), "reference": pinned, "record": recorded})
        return
    from immutable_installer.cli.console import print_summary

    print_summary("immutable-installer push", [
        ("image", pinned), ("layers", f"{len(result.layers)} ({len(result.entries)} store entries)"),
        ("uploaded", f"{sum(1 for x in result.layers if x.uploaded)} layers, {result.uploaded_bytes / 1e6:.1f} MB"),
        ("recorded in", recorded or "-"), ("time", f"{result.seconds:.1f} s")])
    typer.echo(pinned)


def _base(base: str, plain_http: bool, built_from: Any, base_python: str | None) -> tuple[Any, str | None]:
    """The base image (pinned by digest) and the interpreter in it: ``--base-python``, else the first of the
    usual places (and this machine's own interpreter's path) that one of its layers holds."""
    from immutable_installer.oci.client import open_store
    from immutable_installer.oci.image import ARCH, load_base
    from immutable_installer.oci.reference import parse_reference

    ref = parse_reference(base, "--base")
    if not ref.digest:
        raise UsageError(f"--base {base}: a base image is pinned by digest (REF@sha256:...)",
                         hint="`skopeo inspect docker://REF` prints its digest")
    store = open_store(ref, plain_http)
    machine = built_from.platforms[0].environment.get("platform_machine", "x86_64").lower()
    loaded = load_base(store, ref.digest, ARCH.get(machine, "amd64"))
    if base_python:
        return loaded, base_python
    minor = built_from.python.minor
    from immutable_installer.interpreters import find_interpreter

    here = os.path.realpath(find_interpreter(minor))
    wanted = [f"usr/local/bin/python{minor}", f"usr/bin/python{minor}", f"opt/conda/bin/python{minor}",
              here.lstrip("/")]
    found = _paths_in(store, loaded.layers, wanted)
    for path in wanted:
        if path in found:
            return loaded, "/" + path
    places = ", ".join("/" + w for w in wanted)
    raise UsageError(f"the base image holds no python{minor} in the usual places ({places})",
                     hint="name it with --base-python PATH")


def _paths_in(store: Any, layers: list[dict[str, Any]], wanted: list[str]) -> set[str]:
    """Which of ``wanted`` the base's layers hold (names read from each layer's tar, decompressed as needed)."""
    import tarfile

    found: set[str] = set()
    for layer in layers:
        try:
            with store.open_blob(str(layer["digest"])) as fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
                for info in tar:
                    name = info.name[2:] if info.name.startswith("./") else info.name
                    if name in wanted:
                        found.add(name)
        except tarfile.TarError:  # a compression tarfile does not read (zstd): --base-python names it then
            continue
    return found


def resolve_digest(ref: Any, manifest_path: Path, plain_http: bool) -> tuple[str, Any]:
    """The digest REF is pinned by: its own, else the images record beside the manifest; a bare tag is
    refused (exit 2) with the digest the registry has for it now, to pin."""
    from immutable_installer.oci.client import checked_manifest, open_store
    from immutable_installer.oci.record import load_record, record_path

    record = load_record(record_path(manifest_path))
    if ref.digest:
        return ref.digest, record
    recorded = record.digest_for(str(ref)) if record is not None else None
    if recorded:
        return recorded, record
    _, _, now = checked_manifest(open_store(ref, plain_http), ref.tag or "latest")
    raise UsageError(f"{ref} is a tag, and a tag can move: content is accepted by digest only",
                     hint=f"pin it: {ref.pinned(now)} (what the registry serves for the tag now), or push from "
                          f"this manifest so that {record_path(manifest_path).name} records it")


def pull_into(ref_text: str, manifest_path: Path, selection: Selection, store: Store, plain_http: bool,
              reporter: Reporter) -> PullResult:
    """The shared step of `pull` and `install --from`."""
    from immutable_installer.oci.client import open_store
    from immutable_installer.oci.pull import pull as pull_image
    from immutable_installer.oci.reference import parse_reference

    ref = parse_reference(ref_text)
    digest, record = resolve_digest(ref, manifest_path, plain_http)
    if record is not None and record.manifest_sha256 != selection.manifest.raw_sha256:
        record = None  # a record of another lock pins nothing of this one
    return pull_image(open_store(ref, plain_http), digest, selection, store, record, reporter)


def pull(
    ref: RefArg,
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    variant: VariantOpt = "auto",
    store: StoreOpt = None,
    plain_http: PlainHttpOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Fill the store with the entries an image holds that this manifest needs (by digest only); then
    `install --skip-wheelhouse` builds the environment warm.

    Example: immutable-installer pull 127.0.0.1:5000/ml/stack@sha256:...
    """
    from immutable_installer.core.selection import select
    from immutable_installer.store.entries import Store

    m = load(manifest)
    platform, var = platform_and_variant(m, variant)
    reporter = make_reporter(json_out)
    result = pull_into(ref, manifest, select(m, var.name, platform), Store(store, reporter=reporter), plain_http,
                       reporter)
    close_reporter(reporter)
    if json_out:
        emit_result(reporter, result.to_json())
        return
    from immutable_installer.cli.console import print_summary

    print_summary("immutable-installer pull", [
        ("image", result.digest), ("pulled", f"{len(result.pulled)} store entries ({result.bytes / 1e6:.1f} MB)"),
        ("already here", str(len(result.present))), ("time", f"{result.seconds:.1f} s")])
