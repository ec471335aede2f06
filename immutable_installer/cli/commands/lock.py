"""`lock`, `init` and `export-pylock`: from requirements to the frozen manifest, and out to PEP 751."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from immutable_installer.cli.options import (
    DEFAULT_MANIFEST,
    DEFAULT_WHEELHOUSE,
    JsonOpt,
    ManifestOpt,
    WheelhouseOpt,
    close_reporter,
    emit_result,
    load,
    make_reporter,
)
from immutable_installer.core.errors import UsageError


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
    reporter = make_reporter(json_out)
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
    close_reporter(reporter)
    if pylock is not None:
        from immutable_installer.lock import pylock as pylock_mod

        pylock_mod.export(manifest, manifest.default_variant, manifest.platforms[0].name, str(pylock),
                          str(DEFAULT_WHEELHOUSE))
    import hashlib

    if json_out:
        emit_result(reporter, {"ok": True, "output": str(output), "packages": len(manifest.packages),
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

    m = load(manifest)
    m.variant(variant)
    if platform is not None and platform not in {p.name for p in m.platforms}:
        raise UsageError(f"--platform {platform!r} is not a platform of the manifest",
                         hint=f"choose one of: {', '.join(p.name for p in m.platforms)}")
    pylock_mod.export(m, variant, platform or host_platform(m).name, str(output), str(wheelhouse))
    typer.echo(f"wrote {output}")
