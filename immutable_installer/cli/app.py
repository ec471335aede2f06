"""The command line: the only typer user. Options -> services; InstallerError -> exit code (one place).

Start-up matters (``--help`` under 100 ms): this module imports only typer and the error classes; every
service, rich renderer, pip or virtualenv import happens inside the command that needs it.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from immutable_installer import __version__
from immutable_installer.core.errors import ExitCode, InstallerError, Interrupted, UsageError

if TYPE_CHECKING:  # real types for mypy, no import cost at start-up
    from immutable_installer.cli.console import HumanRenderer, JsonRenderer
    from immutable_installer.core.events import Reporter
    from immutable_installer.core.model import Manifest, Platform, Variant

app = typer.Typer(
    name="immutable-installer",
    help="Deterministic, offline, atomic environments for PyTorch + transformers.\n\n"
         "Run with no command to install the manifest into .venv (same as `install`).",
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"immutable-installer {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    verify_flag: Annotated[bool, typer.Option("--verify", help="Health check of the current environment "
                                                               "(same as `verify`).")] = False,
    skip_wheelhouse: Annotated[bool, typer.Option("--skip-wheelhouse", help="Install from the wheels already in "
                                                                           "the wheelhouse, no network.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error and the output of every "
                                                        "command run (pip, virtualenv); accepted anywhere.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Seed-compatible entry: bare command installs; --verify and --skip-wheelhouse as top-level flags.

    Both forms take every option of the command they stand for (`expand_seed_form` rewrites them)."""
    if ctx.invoked_subcommand is not None:
        if verify_flag or skip_wheelhouse:
            raise UsageError("--verify and --skip-wheelhouse go either alone or after the subcommand",
                             hint="e.g. `immutable-installer install --skip-wheelhouse`")
        return
    if verify_flag:
        verify(manifest=DEFAULT_MANIFEST, venv=DEFAULT_VENV, json_out=False)
    else:
        install(skip_wheelhouse=skip_wheelhouse)


# ------------------------------------------------------------------------------------------------ helpers
def _reporter(json_out: bool) -> JsonRenderer | HumanRenderer:
    from immutable_installer.cli.console import HumanRenderer, JsonRenderer

    return JsonRenderer() if json_out else HumanRenderer()


def _load(manifest: Path) -> Manifest:
    from immutable_installer.core.manifest import load_manifest

    return load_manifest(manifest)


def _platform_and_variant(m: Manifest, variant: str) -> tuple[Platform, Variant]:
    from immutable_installer.hardware import detect, host_platform, resolve_variant

    hardware = detect() if variant == "auto" else None
    return host_platform(m, hardware), resolve_variant(m, variant, hardware)


# ----------------------------------------------------------------------------------------------- commands
@app.command()
def install(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    venv: VenvOpt = DEFAULT_VENV,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    variant: VariantOpt = "auto",
    skip_wheelhouse: Annotated[bool, typer.Option("--skip-wheelhouse", help="No network: every wheel must already "
                                                                           "be in the wheelhouse.")] = False,
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
) -> None:
    """Download, scan, build a fresh verified generation and switch VENV to it atomically.

    Example: immutable-installer install --variant cpu --venv .venv
    """
    if dry_run:
        _dry_run(manifest, wheelhouse, variant, json_out, store)
        return
    from immutable_installer.core.selection import select
    from immutable_installer.pipeline import Pipeline
    from immutable_installer.store.entries import Store
    from immutable_installer.wheelhouse.download import Downloader

    reporter = _reporter(json_out)
    m = _load(manifest)
    platform, var = _platform_and_variant(m, variant)
    pipeline = Pipeline(venv, wheelhouse, Store(store, reporter=reporter), reporter=reporter, link_mode=link_mode)
    pipeline.generations.check_target()
    fetcher = None if skip_wheelhouse else Downloader(wheelhouse, reporter=reporter,
                                                      find_links=[str(p) for p in find_links or []])
    result = pipeline.install(select(m, var.name, platform), force=force, keep=keep, wait=not no_wait,
                              fetcher=fetcher)
    _close(reporter)
    if json_out:
        _result(reporter, result.to_json())
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


def _dry_run(manifest: Path, wheelhouse: Path, variant: str, json_out: bool, store: Path | None) -> None:
    """The plan, touching nothing: each wheel's wheelhouse and store state, its store entry, and the scan's
    verdict on the wheels that are there (each read once)."""
    from immutable_installer.core.errors import InstallerError
    from immutable_installer.core.plan import make_plan
    from immutable_installer.core.selection import select
    from immutable_installer.store.entries import Store, interpreter_tag
    from immutable_installer.wheelhouse.download import audit
    from immutable_installer.wheelhouse.scan import check, read_needed

    m = _load(manifest)
    platform, var = _platform_and_variant(m, variant)
    selection = select(m, var.name, platform)
    the_store = Store(store)
    interp = interpreter_tag(m.python.implementation, m.python.minor)
    keys = {n.wheel.sha256: the_store.key(n.wheel.sha256, interp) for n in selection.wheels}
    stored = {sha for sha, key in keys.items() if the_store.entry_path(key).is_dir()}
    # each wheel read once (its hash serves the audit too), each member checked against its RECORD as install would
    infos = read_needed(selection.wheels, wheelhouse, contents=True)
    hashed = {w.wheel.filename: infos[w.package.name].sha256 for w in selection.wheels if w.package.name in infos}
    state = audit(wheelhouse, selection.wheels, hashed)
    present = {n.wheel.filename for n in state.present}
    unpacked = {w.wheel.filename: infos[w.package.name].unpacked for w in selection.wheels
                if w.wheel.filename in present}
    plan = make_plan(selection, present, {n.wheel.filename for n, _ in state.bad_hash}, stored, unpacked)
    # the verdict install would reach: a wheel the store holds is scanned as its entry kept it, whatever the
    # wheelhouse file has become (the plan's state column still tells the wheelhouse as it is)
    known = {n.package.name: facts for n in selection.wheels
             if n.wheel.sha256 in stored and (facts := the_store.wheel_facts(keys[n.wheel.sha256]))}
    try:
        check(selection, {**infos, **known}, wheelhouse)
        verdict: dict[str, Any] = {"ok": True, "kind": None,
                                   "message": "clean: hashes, blacklist, closure, start-up code, clashes"}
    except InstallerError as exc:
        verdict = {**exc.to_event(), "ok": False}
        del verdict["event"]
    if json_out:
        import json

        entries = {n.wheel.filename: keys[n.wheel.sha256] for n in selection.wheels}
        about = {"name": m.name, "python": f"{m.python.implementation} {m.python.version}",
                 "variants": [{"name": v.name, "cuda": v.cuda, "min_driver": v.min_driver} for v in m.variants],
                 "default_variant": m.default_variant}
        typer.echo(json.dumps({"event": "result", "dry_run": True, "manifest": about, "store": str(the_store.root),
                               "wheelhouse": str(wheelhouse), "entries": entries, "scan": verdict,
                               **plan.to_json()}))
        return
    from immutable_installer.cli.console import print_line, print_table

    rows = [[f"{s.number}/{s.of} {s.group}", w.name, w.version, w.state, w.store] for s in plan.steps
            for w in s.wheels]
    print_table(f"install plan: variant {plan.variant} on {plan.platform} (nothing was changed)",
                ["group", "package", "version", "wheelhouse", f"store ({the_store.root})"], rows)
    print_line(f"scan: {verdict['message']}" if verdict["ok"] else f"scan would refuse ({verdict['kind']}): "
               f"{verdict['message']}")


@app.command()
def verify(
    venv: VenvOpt = DEFAULT_VENV,
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    json_out: JsonOpt = False,
) -> None:
    """Check an environment against the manifest; exit 0 when healthy, 1 otherwise.

    Without a manifest file the environment is checked against the manifest it was built from (its own copy).
    Example: immutable-installer verify --json
    """
    from immutable_installer.core.layout import MANIFEST_COPY, RECEIPT
    from immutable_installer.core.receipt import read_receipt
    from immutable_installer.generation.generations import Generations
    from immutable_installer.hardware import host_platform
    from immutable_installer.verify.verifier import Verifier

    Generations(venv).settle()
    if not venv.exists():
        raise UsageError(f"{venv} does not exist", hint="build it with `immutable-installer install`")
    if not venv.is_dir():
        raise UsageError(f"{venv} is not an environment (not a folder)", hint="pass the --venv that install built")
    generation = Path(os.path.realpath(venv))
    if manifest == DEFAULT_MANIFEST and not manifest.exists() and (generation / MANIFEST_COPY).is_file():
        manifest = generation / MANIFEST_COPY
    receipt = read_receipt(generation / RECEIPT)
    m = _load(manifest)
    variant = receipt.variant or m.default_variant
    platform = host_platform(m)
    reporter = None if json_out else _reporter(False)
    report = Verifier(reporter or (lambda e: None)).verify(venv, m, variant, platform.name)
    if reporter is not None:
        _close(reporter)
    if json_out:
        import json

        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        from immutable_installer.cli.console import print_checks

        print_checks(report.to_json())
        if not report.ok:
            from immutable_installer.cli.console import print_line

            for note in m.held_back:  # what the lock said it held back may be why
                print_line(f"note: {note.describe()}")
    if not report.ok:
        raise typer.Exit(ExitCode.FAILED)


@app.command()
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

    reporter = _reporter(json_out)
    m = _load(manifest)
    platform, var = _platform_and_variant(m, variant)
    state = Downloader(wheelhouse, reporter=reporter, find_links=[str(p) for p in find_links or []],
                       index_url=index_url).download(select(m, var.name, platform), wait=not no_wait)
    _close(reporter)
    if json_out:
        _result(reporter, {"ok": True, "present": len(state.present), "variant": var.name})
    else:
        from immutable_installer.cli.console import print_line

        print_line(f"wheelhouse complete: {len(state.present)} wheels for {var.name} on {platform.name}")


@app.command()
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

    reporter = _reporter(json_out)
    m = _load(manifest)
    platform, var = _platform_and_variant(m, variant)
    result = run_scan(select(m, var.name, platform), wheelhouse, reporter)
    _close(reporter)
    if json_out:
        _result(reporter, {"ok": True, "wheels": len(result.wheels), "strays": result.strays,
                         "variant": var.name})
    else:
        from immutable_installer.cli.console import print_line

        print_line(f"scan clean: {len(result.wheels)} wheels verified, no blacklisted package, closure holds "
                   f"({result.seconds:.1f} s)")


@app.command()
def lock(
    requirements: Annotated[list[str] | None, typer.Argument(help="Requirements (instead of --spec).")] = None,
    requirement_files: Annotated[list[Path] | None, typer.Option("-r", "--requirement", help="requirements.txt "
                                                                                            "file.")] = None,
    spec: Annotated[Path, typer.Option("--spec", help="The lock input.")] = Path("metadata/requirements.toml"),
    output: Annotated[Path, typer.Option("-o", "--output", help="Manifest to write.")] = DEFAULT_MANIFEST,
    index_url: Annotated[str | None, typer.Option("--index-url", help="Override the default index.")] = None,
    extra_index_url: Annotated[list[str] | None, typer.Option("--extra-index-url")] = None,
    find_links: Annotated[list[str] | None, typer.Option("--find-links")] = None,
    no_index: Annotated[bool, typer.Option("--no-index", help="Resolve from --find-links only.")] = False,
    python_version: Annotated[str | None, typer.Option("--python-version", help="Target Python X.Y (default: the "
                                                                                "spec's; this interpreter's "
                                                                                "for plain requirements).")] = None,
    platform: Annotated[list[str] | None, typer.Option("--platform", help="Target platform, repeatable: a wheel tag "
                                                                          "(win_amd64, macosx_11_0_arm64, "
                                                                          "manylinux_2_28_aarch64) or a name "
                                                                          "(windows, macos, linux-aarch64); "
                                                                          "replaces the spec's platforms (plain "
                                                                          "requirements: this machine's).")] = None,
    resolver: Annotated[str, typer.Option("--resolver", help="uv (markers evaluated for the target) or pip (this "
                                                             "interpreter's platform and Python only).")] = "uv",
    blacklist: Annotated[list[str] | None, typer.Option("--blacklist", help="Forbidden distribution "
                                                                            "(plain requirements).")] = None,
    upgrade: Annotated[bool, typer.Option("--upgrade", help="Ignore the current pins.")] = False,
    upgrade_package: Annotated[list[str] | None, typer.Option("--upgrade-package", "-P")] = None,
    isolated: Annotated[bool, typer.Option("--isolated/--use-pip-config",
                                           help="--isolated (the default): only the spec's indexes and the options "
                                                "given here; --use-pip-config adds the extra indexes and "
                                                "find-links of your pip configuration (a mirror you trust).")] = True,
    pylock: Annotated[Path | None, typer.Option("--pylock", help="Also write a PEP 751 pylock.toml "
                                                                 "(default variant).")] = None,
    prerelease: Annotated[str | None, typer.Option("--prerelease", help="uv's pre-release mode: disallow, allow, "
                                                                       "if-necessary, explicit, "
                                                                       "if-necessary-or-explicit; recorded in the "
                                                                       "manifest, so a re-lock keeps it.")] = None,
    exclude_newer: Annotated[str | None, typer.Option("--exclude-newer", help="Ignore files uploaded after this "
                                                                              "date (2026-06-01 or an RFC 3339 "
                                                                              "timestamp): the lock as it would "
                                                                              "have been then; recorded.")] = None,
    verify_import: Annotated[list[str] | None, typer.Option("--verify-import", help="A module verify imports "
                                                                                   "(repeatable; replaces what lock "
                                                                                   "reads from the wheels).")] = None,
    allow_pth: Annotated[list[str] | None, typer.Option("--allow-pth", help="A start-up file (e.g. "
                                                                           "distutils-precedence.pth) allowed to run "
                                                                           "code at every Python start "
                                                                           "(repeatable).")] = None,
    build: Annotated[list[str] | None, typer.Option("--build", help="Let the lock build NAME's wheel from its sdist "
                                                                   "when no wheel fits (repeatable; :all: for any; "
                                                                   "its code runs, in a sandbox).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a requested package is held back below its "
                                                          "newest release (or at a pre-release).")] = False,
    adopt: Annotated[bool, typer.Option("--adopt", "--no-resolve", help="Take a requirements file that pins "
                                                                        "everything (== and --hash on every line) as "
                                                                        "it is, without resolving.")] = False,
    from_lock: Annotated[Path | None, typer.Option("--from", help="Adopt a PEP 751 pylock.toml (written by uv, pip "
                                                                  "or PDM) without resolving again.")] = None,
    write_spec: Annotated[Path | None, typer.Option("--write-spec", help="Also write a complete, commented spec of "
                                                                         "these requirements to edit later.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Resolve with uv for each target platform and Python (--resolver pip: this interpreter only) and write the
    frozen manifest (deterministic bytes; keeps existing pins). Says every requested package it holds back below
    its newest release, and why.

    Plain requirements target this machine's platform and Python X.Y (read as X.Y.0, so the lock installs on
    every X.Y; give --python-version X.Y.Z for a patch level).
    Example: immutable-installer lock --spec metadata/requirements.toml -o metadata/dependencies.json
    """
    from immutable_installer.core.errors import ManifestError
    from immutable_installer.core.manifest import load_manifest
    from immutable_installer.core.serialize import write_manifest
    from immutable_installer.lock.locker import Locker, LockOptions

    if resolver not in ("uv", "pip"):
        raise UsageError(f"--resolver {resolver!r} is not one of uv, pip")
    the_spec, sources = _lock_input(requirements, requirement_files, spec, index_url, python_version, platform,
                                    blacklist, from_lock, adopt)
    the_spec = _with_lock_flags(the_spec, verify_import, allow_pth, build, strict)
    if (adopt or from_lock) and the_spec.build:
        raise UsageError("--build resolves; --adopt and --from take a lock as it is", hint="use one or the other")
    if write_spec is not None:
        _write_spec_file(the_spec, write_spec)
    existing = None
    if output.exists() and not (adopt or from_lock):  # its pins (unless --upgrade) and its recorded lock settings
        try:
            existing = load_manifest(output)
        except ManifestError:
            existing = None
    reporter = _reporter(json_out)
    options = LockOptions(find_links=[*(find_links or []), *sources.find_links], no_index=no_index or sources.no_index,
                          index_url=index_url or sources.index_url,
                          extra_index_urls=[*(extra_index_url or []), *sources.extra_index_urls], isolated=isolated,
                          upgrade=upgrade, prerelease=_lock_setting("prerelease", prerelease),
                          exclude_newer=_lock_setting("exclude_newer", exclude_newer),
                          upgrade_packages=list(upgrade_package or []), resolver=resolver,
                          hashes={k: frozenset(v) for k, v in sources.hashes.items()}, adopt=adopt,
                          pylock=str(from_lock) if from_lock else None)
    manifest = Locker(reporter=reporter).lock(the_spec, options, existing)
    raw = write_manifest(manifest, output)
    _close(reporter)
    if pylock is not None:
        from immutable_installer.lock import pylock as pylock_mod

        pylock_mod.export(manifest, manifest.default_variant, manifest.platforms[0].name, str(pylock),
                          str(DEFAULT_WHEELHOUSE))
    import hashlib

    if json_out:
        _result(reporter, {"ok": True, "output": str(output), "packages": len(manifest.packages),
                           "sha256": hashlib.sha256(raw).hexdigest()})
    else:
        from immutable_installer.cli.console import print_line

        print_line(f"wrote {output}: {len(manifest.packages)} pins, sha256 {hashlib.sha256(raw).hexdigest()[:16]}")


def _lock_input(requirements: list[str] | None, requirement_files: list[Path] | None, spec: Path,
                index_url: str | None, python_version: str | None, platform: list[str] | None,
                blacklist: list[str] | None, from_lock: Path | None, adopt: bool) -> tuple[Any, Any]:
    """The spec a lock runs on (the file, or plain requirements / a requirements file / a pylock) and the sources
    a requirements file names."""
    from immutable_installer.core.requirements_file import RequirementsFile, read_requirements_file
    from immutable_installer.core.spec import load_spec, retarget, spec_from_requirements
    from immutable_installer.core.targets import host_python

    sources = RequirementsFile()
    for f in requirement_files or []:
        read_requirements_file(f, sources)
    reqs = [*(requirements or []), *sources.requirements]
    if adopt and not sources.fully_hashed:
        raise UsageError(f"--adopt takes a requirements file that pins every line with == and --hash ("
                         f"{sources.hashed_lines} of {len(sources.requirements)} lines have hashes)",
                         hint="compile one with `uv pip compile --generate-hashes`, or lock without --adopt")
    if from_lock is not None:
        if reqs:
            raise UsageError("--from adopts a whole lock: give no requirements with it")
        from immutable_installer.lock.adopt import PylockResolver

        reqs = PylockResolver(from_lock).requirements()
        if not reqs:
            raise UsageError(f"{from_lock} pins no package")
    if reqs:
        return spec_from_requirements(reqs, python_version or host_python(), platform or [],
                                      index_url or sources.index_url or "https://pypi.org/simple",
                                      blacklist or []), sources
    return retarget(load_spec(spec), python_version, platform or []), sources


def _with_lock_flags(spec: Any, verify_import: list[str] | None, allow_pth: list[str] | None,
                     build: list[str] | None, strict: bool) -> Any:
    from immutable_installer.core.errors import SpecError
    from immutable_installer.core.spec import with_command_line

    try:
        return with_command_line(spec, verify_import or [], allow_pth or [], build or [], strict)
    except SpecError as exc:
        raise UsageError(exc.message.lstrip(": "), hint=exc.hint) from None


def _write_spec_file(spec: Any, path: Path) -> None:
    from immutable_installer.cli.console import print_line
    from immutable_installer.core.spec import load_spec
    from immutable_installer.core.spec_writer import spec_text

    if path.exists():
        raise UsageError(f"{path} exists; the spec is never overwritten", hint="pick another path, or edit it")
    text = spec_text(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    load_spec(tmp)  # never write what lock would refuse to read
    tmp.replace(path)
    print_line(f"wrote {path}: every table of the spec, commented; edit it, then `immutable-installer lock --spec "
               f"{path}`")


@app.command()
def init(
    requirements: Annotated[list[str] | None, typer.Argument(help="Requirements of the stack.")] = None,
    requirement_files: Annotated[list[Path] | None, typer.Option("-r", "--requirement", help="requirements.txt "
                                                                                            "file.")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="The spec to write.")] = Path(
        "metadata/requirements.toml"),
    python_version: Annotated[str | None, typer.Option("--python-version", help="Target Python X.Y (default: this "
                                                                                "interpreter's).")] = None,
    platform: Annotated[list[str] | None, typer.Option("--platform", help="Target platform, repeatable (default: "
                                                                          "this machine's).")] = None,
    index_url: Annotated[str | None, typer.Option("--index-url", help="The default index.")] = None,
    allow_pth: Annotated[list[str] | None, typer.Option("--allow-pth", help="A start-up file allowed to run code "
                                                                           "(repeatable).")] = None,
    build: Annotated[list[str] | None, typer.Option("--build", help="NAME whose sdist may be built "
                                                                   "(repeatable).")] = None,
) -> None:
    """Write a complete, commented lock spec (metadata/requirements.toml) from plain requirements, to edit.

    Example: immutable-installer init "scikit-learn>=1.5" pandas
    """
    if not requirements and not requirement_files:
        raise UsageError("init needs requirements", hint='e.g. immutable-installer init "scikit-learn>=1.5" pandas')
    the_spec, _ = _lock_input(requirements, requirement_files, Path("-"), index_url, python_version, platform, [],
                              None, False)
    _write_spec_file(_with_lock_flags(the_spec, [], allow_pth, build, False), output)


def _lock_setting(name: str, value: str | None) -> str | None:
    """A lock setting from the command line, checked as the manifest will check it (exit 2 naming the flag)."""
    if value is None:
        return None
    from immutable_installer.core.errors import ManifestError
    from immutable_installer.core.sections import parse_lock_settings

    try:
        parse_lock_settings({name: value}, "--" + name.replace("_", "-"), "the command line")
    except ManifestError as exc:
        raise UsageError(exc.message, hint="see `immutable-installer lock --help`") from None
    return value


@app.command("export-pylock")
def export_pylock(
    manifest: ManifestOpt = DEFAULT_MANIFEST,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("pylock.toml"),
    variant: Annotated[str, typer.Option("--variant", help="Variant to export.")] = "cpu",
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    platform: Annotated[str | None, typer.Option("--platform", help="One of the manifest's platforms (default: "
                                                                    "this machine's).")] = None,
) -> None:
    """Write the pins of one variant on one platform as a PEP 751 pylock.toml (for uv / pip).

    Example: immutable-installer export-pylock --variant cpu -o pylock.toml
    """
    from immutable_installer.hardware import host_platform
    from immutable_installer.lock import pylock as pylock_mod

    m = _load(manifest)
    m.variant(variant)
    if platform is not None and platform not in {p.name for p in m.platforms}:
        raise UsageError(f"--platform {platform!r} is not a platform of the manifest",
                         hint=f"choose one of: {', '.join(p.name for p in m.platforms)}")
    pylock_mod.export(m, variant, platform or host_platform(m).name, str(output), str(wheelhouse))
    typer.echo(f"wrote {output}")


@app.command()
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

    reporter = _reporter(json_out)
    engine = Engine(venv, reporter=reporter)
    report = engine.rollback(to, manifest=_load(manifest) if manifest else None)
    _close(reporter)
    if json_out:
        current = engine.generations.current()
        _result(reporter, {"venv": str(venv), "generation": current.name if current else None,
                           "verify": report.to_json()})


@app.command()
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


@app.command()
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
        m = _load(manifest)
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


@app.command("export-index")
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

    reporter = _reporter(json_out)
    m = _load(manifest)
    result = run_export(m, manifest.read_bytes(), wheelhouse, directory, reporter)
    _close(reporter)
    if json_out:
        _result(reporter, result.to_json())
        return
    from immutable_installer.cli.console import print_line

    print_line(f"wrote {result.files} wheels of {result.projects} projects ({result.bytes / 1e6:.1f} MB) to "
               f"{directory}; serve it and run `immutable-installer download --index-url <url>/simple`")


@app.command()
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
    from immutable_installer.gui.app import Options, run

    code = run(Options(manifest=manifest, venv=venv, wheelhouse=wheelhouse, variant=variant,
                       offline=skip_wheelhouse, store=store))
    if code:
        raise typer.Exit(code)


bundle_app = typer.Typer(help="One file that installs the stack on a machine with no network.",
                         invoke_without_command=True)
app.add_typer(bundle_app, name="bundle")


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

    reporter = _reporter(json_out)
    m = _load(manifest)
    if platform is not None and platform not in {p.name for p in m.platforms}:
        raise UsageError(f"--platform {platform!r} is not a platform of the manifest",
                         hint=f"choose one of: {', '.join(p.name for p in m.platforms)}")
    target = m.platform(platform) if platform is not None else host_platform(m)
    data = write_bundle(output, m, manifest.read_bytes(), wheelhouse, variants or [m.default_variant],
                        target, tool_wheel=tool_wheel, reporter=reporter)
    _close(reporter)
    if json_out:
        _result(reporter, data)
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

    reporter = _reporter(json_out)
    data = verify_bundle(file, reporter)
    _close(reporter)
    if json_out:
        _result(reporter, data)
        return
    from immutable_installer.cli.console import print_line

    print_line(f"{file}: all {data['members']} members match SHA256SUMS")


store_app = typer.Typer(help="The store of unpacked, compiled wheels that generations are linked from.",
                        no_args_is_help=True)
app.add_typer(store_app, name="store")


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
                  ", ".join(_short_generation(g) for g in e["used_by"]) or "-"] for e in data["entries"]])
    print_line(f"{data['count']} entries, {data['bytes'] / 1e6:.1f} MB, {data['unused']} unused "
               "(`immutable-installer store gc` removes them)")


@store_app.command("verify")
def store_verify(
    store: StoreOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Rebuild damaged entries from the wheelhouse.")] = False,
    wheelhouse: WheelhouseOpt = DEFAULT_WHEELHOUSE,
    json_out: JsonOpt = False,
) -> None:
    """Check every file of every entry against the sha256 recorded when it was built; exit 1 if damaged.

    Example: immutable-installer store verify --repair
    """
    from immutable_installer.store.entries import Store

    s = Store(store, reporter=_reporter(False) if repair and not json_out else (lambda e: None))
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
            print_line(f"{data['entries']} entries, every file matches its sha256")
        elif not repair:
            print_line("run `immutable-installer store verify --repair` to rebuild them from the wheelhouse, then "
                       "`immutable-installer install --force` for generations that linked the damaged files")
    if not data["ok"]:
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


def _short_generation(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name.removesuffix('.generations')}/{p.name}"


def _result(reporter: Reporter, data: dict[str, Any]) -> None:
    """The one result document of a ``--json`` run (its reporter is always the JSON renderer)."""
    from immutable_installer.cli.console import JsonRenderer

    assert isinstance(reporter, JsonRenderer)
    reporter.result(data)


def _close(reporter: Reporter) -> None:
    if hasattr(reporter, "close"):
        reporter.close()


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
