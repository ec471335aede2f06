"""``bundle``: one tar file that gives a verified environment on a machine with a matching Python and no network.

Layout (every path under one top folder, ``<name>/``)::

    SHA256SUMS                 first member: sha256 of every other member (``sha256sum -c`` format)
    BUNDLE.json                what is inside: manifest name, variants, platform, Python, tool version
    metadata/dependencies.json the manifest, byte for byte
    wheelhouse/*.whl           every wheel the chosen variants need on the chosen platform
    tool/*.whl                 immutable-installer itself as a wheel, and every wheel it needs on the target
    bootstrap.py               the bootstrap: check SHA256SUMS, create .tool from tool/, install --skip-wheelhouse
    install.sh, install.ps1    find the Python (POSIX, Windows) and run bootstrap.py with it

``bundle verify`` reads the archive once, front to back, and checks every member against SHA256SUMS before
anything is unpacked or run: a missing, extra, altered or truncated member is refused by name (exit 4).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from immutable_installer import __version__, net_settings
from immutable_installer.core.errors import UsageError, WheelhouseError
from immutable_installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.model import Manifest, Platform
from immutable_installer.core.selection import select
from immutable_installer.core.tags import expand_platform_tags
from immutable_installer.dists.hashing import sha256_file
from immutable_installer.net import CHUNK
from immutable_installer.runner import Runner, clean_env
from immutable_installer.wheelhouse.download import require_complete
from immutable_installer.wheelhouse.own_wheel import rebuild_installed_wheel

SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class Member:
    """One file of the bundle: where it comes from (a path or bytes) and its sha256."""

    name: str
    sha256: str
    size: int
    path: Path | None = None
    data: bytes | None = None


def tool_wheels(out: Path, manifest: Manifest, platform: Platform, runner: Runner,
                tool_wheel: Path | None = None) -> tuple[list[Path], str]:
    """The tool as a wheel plus every wheel it needs on the manifest's Python and platform (fetched with the
    user's pip configuration), and where the tool's wheel came from: ``--tool-wheel``, built from this source
    checkout, or rebuilt from the installed files, each checked against its RECORD hash (own_wheel.py)."""
    out.mkdir(parents=True, exist_ok=True)
    if tool_wheel is None:
        root = Path(__file__).resolve().parents[2]
        if (root / "pyproject.toml").is_file() and (root / "immutable_installer").is_dir():
            result = runner.run([runner.python(), "-m", "pip", "wheel", "--no-deps", "--quiet", "--no-input", "-w",
                                 str(out), str(root)], env=clean_env(keep_pip=True), timeout=900)
            if not result.ok:
                raise WheelhouseError(f"building the immutable-installer wheel failed: {result.tail(2)}")
            tool_wheel = next(out.glob("immutable_installer-*.whl"))
            source = "built from the source checkout"
        else:
            tool_wheel = rebuild_installed_wheel("immutable-installer", out)
            source = "rebuilt from the installed files, each checked against its RECORD sha256"
    elif not tool_wheel.is_file():
        raise UsageError(f"--tool-wheel {tool_wheel}: no such file")
    else:
        tool_wheel = Path(os.path.abspath(tool_wheel))
        source = f"--tool-wheel {tool_wheel.name}"
    args = [runner.python(), "-m", "pip", "download", "--quiet", "--no-input", "--only-binary", ":all:", "-d", str(out),
            "--python-version", manifest.python.version,
            "--implementation", "cp" if manifest.python.implementation == "cpython" else "pp",
            "--disable-pip-version-check"]
    for tag in expand_platform_tags(platform.tags):
        args += ["--platform", tag]
    args += net_settings.current().pip_args()
    wanted = [str(tool_wheel)]
    while wanted:  # pip evaluates markers for the machine running it: the target's own are added by us
        result = runner.run([*args, *wanted], env=clean_env(net_settings.current().pip_env(), keep_pip=True),
                            timeout=1800)
        if not result.ok:
            raise WheelhouseError(f"fetching the tool's own dependencies failed: {result.tail(2)}",
                                  hint="bundling needs the network (or your pip configuration's mirrors) once")
        wanted = _missing_for_target(out, manifest.python.marker_environment(platform))
    if tool_wheel.parent != out:
        (out / tool_wheel.name).write_bytes(tool_wheel.read_bytes())
    return sorted(out.glob("*.whl")), source


def _missing_for_target(folder: Path, environment: dict[str, str]) -> list[str]:
    """Requirements of the wheels in ``folder`` that apply on the target but that no wheel there satisfies by
    name (typer's ``colorama; platform_system == "Windows"`` when the bundle is made on Linux for Windows)."""
    from packaging.requirements import Requirement

    from immutable_installer.core.names import canonical
    from immutable_installer.dists.wheel import read_wheel

    infos = [read_wheel(p) for p in sorted(folder.glob("*.whl"))]
    have = {canonical(i.name) for i in infos}
    missing: dict[str, str] = {}
    for info in infos:
        for text in info.requires_dist:
            req = Requirement(text)
            if canonical(req.name) in have or (req.marker is not None
                                                and not req.marker.evaluate({**environment, "extra": ""})):
                continue
            missing.setdefault(canonical(req.name), f"{req.name}{req.specifier}")
    return sorted(missing.values())


# The bootstrap, one Python file run by the target interpreter (-I: no site, no user files) from install.sh on
# POSIX and install.ps1 on Windows, so both run the same steps: the Python version, then every file listed in
# SHA256SUMS present with its hash and nothing else in the bundle but what the bootstrap itself makes (.tool, the
# environment and its generations, its seal), then .tool from exactly the hashed tool wheels, then the offline
# install. What the bootstrap made is reused on a later run only when its seal proves it: an HMAC, with a key that
# lives in this machine's user cache (never in a bundle), over the identity (device, inode) of each thing it made
# and over every file of .tool (inode, change time, size: a file replaced or rewritten in place changes them).
# A .tool or .venv that came inside the extracted folder has no valid seal: refused before anything runs.
# No manifest string is in it; extra arguments go to `immutable-installer install`.
BOOTSTRAP = "bootstrap.py"
BOOTSTRAP_PY = """\
import hashlib, hmac, json, os, secrets, subprocess, sys
WANT = "@PYTHON@"
SEAL = ".made-here"
here = os.path.dirname(os.path.abspath(__file__))
os.chdir(here)
if "%d.%d" % sys.version_info[:2] != WANT:
    sys.stderr.write("error: this bundle needs Python %s, not %d.%d: set PYTHON to a python%s\\n"
                     % (WANT, sys.version_info[0], sys.version_info[1], WANT))
    sys.exit(2)
def own(name):
    return name in (".tool", ".venv", SEAL) or name.startswith(".venv.")
def key():
    base = os.environ.get("LOCALAPPDATA") if os.name == "nt" else None
    base = base or os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "immutable-installer")
    path = os.path.join(folder, "bootstrap.key")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
        return key()
def state():
    made = {}
    for name in sorted(os.listdir(".")):
        if own(name) and name != SEAL:
            st = os.lstat(name)
            made[name] = [st.st_dev, st.st_ino]
    tool = []
    for root, dirs, files in os.walk(".tool"):
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(root, d))]):
            st = os.lstat(os.path.join(root, name))
            tool.append([os.path.join(root, name).replace(os.sep, "/"), st.st_ino, st.st_ctime_ns, st.st_size])
    return json.dumps({"made": made, "tool": sorted(tool)}, sort_keys=True)
def seal():
    text = state()
    with open(SEAL, "w", encoding="utf-8") as fh:
        json.dump({"state": text, "mac": hmac.new(key(), text.encode(), "sha256").hexdigest()}, fh)
def sealed():
    try:
        with open(SEAL, encoding="utf-8") as fh:
            data = json.load(fh)
        mac = hmac.new(key(), data["state"].encode(), "sha256").hexdigest()
        return hmac.compare_digest(mac, str(data["mac"])) and data["state"] == state()
    except (OSError, ValueError, KeyError, TypeError):
        return False
present = sorted(n for n in os.listdir(".") if own(n))
if present and not sealed():
    sys.stderr.write("error: %s was not made by this bootstrap on this machine (it came with the folder, or "
                     "changed since): refusing before anything runs; delete %s to start afresh\\n"
                     % (", ".join(present), " ".join(present)))
    sys.exit(2)
print("checking every file against SHA256SUMS ...", flush=True)
listed = {}
with open("SHA256SUMS", encoding="utf-8") as fh:
    for number, line in enumerate(fh, 1):
        digest, sep, name = line.rstrip("\\n").partition("  ")
        if not sep or len(digest) != 64 or not name or name.startswith("/") or ".." in name.split("/"):
            sys.exit("error: SHA256SUMS line %d is not a sha256 and a file of the bundle" % number)
        listed[name] = digest
found = set()
for root, dirs, files in os.walk("."):
    rel = os.path.relpath(root, ".")
    if rel == ".":
        dirs[:] = [d for d in dirs if not own(d)]
    for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
        path = os.path.normpath(os.path.join(rel, name)).replace(os.sep, "/")
        if path == "SHA256SUMS" or (rel == "." and own(name)):
            continue
        if os.path.islink(os.path.join(root, name)):
            sys.exit("error: %s is a symbolic link: refusing the bundle" % path)
        found.add(path)
extra = sorted(found - set(listed))
if extra:
    sys.exit("error: %s is not listed in SHA256SUMS: refusing a bundle with files nobody listed" % extra[0])
missing = sorted(set(listed) - found)
if missing:
    sys.exit("error: %s is missing from the bundle" % missing[0])
for name, digest in sorted(listed.items()):
    h = hashlib.sha256()
    with open(name, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != digest:
        sys.exit("error: %s does not match its sha256 in SHA256SUMS" % name)
print("all %d files match SHA256SUMS, and nothing else is here" % len(listed), flush=True)
scripts = os.path.join(".tool", "Scripts" if os.name == "nt" else "bin")
tool = os.path.join(here, scripts, "immutable-installer" + (".exe" if os.name == "nt" else ""))
if not os.path.isdir(".tool"):
    subprocess.run([sys.executable, "-m", "venv", ".tool"], check=True)
    python = os.path.join(scripts, "python.exe" if os.name == "nt" else "python")
    subprocess.run([python, "-I", "-m", "pip", "install", "--quiet", "--no-index", "--isolated",
                    "--disable-pip-version-check", "--no-deps", "--require-hashes", "-r", "@REQUIREMENTS@"],
                   check=True)
    seal()
venv = os.environ.get("VENV") or os.path.join(here, ".venv")
command = [tool, "install", "--skip-wheelhouse", "--manifest", os.path.join("metadata", "dependencies.json"),
           "--wheelhouse", "wheelhouse", "--venv", venv, *sys.argv[1:]]
try:
    code = subprocess.run(command).returncode
finally:
    seal()  # what this run made (the environment, its generations) is reused next time only with this seal
sys.exit(code)
"""
TOOL_REQUIREMENTS = "tool/requirements.txt"


def tool_requirements(tools: Sequence[Path]) -> str:
    """The tool's wheels by file and sha256: the bootstrap installs exactly these (``--require-hashes``), never
    whichever version a find-links folder offers."""
    return "".join(f"./tool/{p.name} --hash=sha256:{sha256_file(p)}\n" for p in sorted(tools))


def bootstrap_py(manifest: Manifest) -> str:
    """The bootstrap. The only manifest value in it is the Python version, which the manifest's loader allows
    only as digits and dots; no other manifest string (its name, URLs) is ever written into it."""
    return BOOTSTRAP_PY.replace("@PYTHON@", manifest.python.minor).replace("@REQUIREMENTS@", TOOL_REQUIREMENTS)


def install_sh(manifest: Manifest) -> str:
    """The POSIX entry: find the Python, run the bootstrap with it."""
    version = manifest.python.minor
    return f"""#!/bin/sh
# Bootstrap of an immutable-installer bundle: check every file, then install with no network (bootstrap.py, the
# same steps as install.ps1 on Windows). Needs only Python {version} (set PYTHON=/path/to/python{version} if it is
# not on PATH). Extra arguments go to `immutable-installer install` (e.g. --variant cpu, --venv /opt/ml/.venv,
# --store /opt/ml/store).
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
PY="${{PYTHON:-python{version}}}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
exec "$PY" -I "$here/{BOOTSTRAP}" "$@"
"""


def install_ps1(manifest: Manifest) -> str:
    """The Windows entry: find the Python (``$env:PYTHON``, else the ``py`` launcher), run the bootstrap."""
    version = manifest.python.minor
    return f"""# Bootstrap of an immutable-installer bundle for Windows (PowerShell): check every file, then install
# with no network (bootstrap.py, the same steps as install.sh). Needs only Python {version}: set $env:PYTHON to its
# python.exe, or have the py launcher. Extra arguments go to `immutable-installer install` (e.g. --variant cpu).
# bootstrap.py runs under Wine in this project's CI; this PowerShell wrapper has not run on Windows.
$ErrorActionPreference = "Stop"
$bootstrap = Join-Path $PSScriptRoot "{BOOTSTRAP}"
if ($env:PYTHON) {{
    & $env:PYTHON -I $bootstrap @args
}} else {{
    & py -{version} -I $bootstrap @args
}}
exit $LASTEXITCODE
"""


def write_bundle(out: Path, manifest: Manifest, manifest_bytes: bytes, wheelhouse: Path, variants: Sequence[str],
                 platform: Platform, tool_wheel: Path | None = None,
                 reporter: Reporter = null_reporter) -> dict[str, object]:
    """Write the bundle to ``out`` (under a temporary name, renamed when complete)."""
    started = time.monotonic()
    runner = Runner()
    reporter(Phase("bundle", f"{', '.join(variants)} on {platform.name} -> {out}"))
    wheels: dict[str, Path] = {}
    sums: dict[str, str] = {}
    for variant in variants:
        manifest.variant(variant)
        selection = select(manifest, variant, platform)
        require_complete(wheelhouse, selection)  # every file present, hash-checked
        for item in selection.wheels:
            wheels[item.wheel.filename] = wheelhouse / item.wheel.filename
            sums[item.wheel.filename] = item.wheel.sha256
    top = out.name.split(".")[0] or "bundle"
    with tempfile.TemporaryDirectory(prefix=".bundle-", dir=out.parent if out.parent.exists() else None) as tmp:
        reporter(Message("info", "the tool's own wheels for the target (immutable-installer and its dependencies)"))
        tools, source = tool_wheels(Path(tmp) / "tool", manifest, platform, runner, tool_wheel)
        info = {"manifest": manifest.name, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
                "variants": list(variants), "platform": platform.name, "python": manifest.python.version,
                "tool_version": __version__, "wheels": len(wheels), "tool_wheels": [p.name for p in tools],
                "tool_source": source}
        members = [
            _bytes(f"{top}/BUNDLE.json", (json.dumps(info, indent=2, sort_keys=True) + "\n").encode()),
            _bytes(f"{top}/metadata/dependencies.json", manifest_bytes),
            _bytes(f"{top}/{BOOTSTRAP}", bootstrap_py(manifest).encode()),
            _bytes(f"{top}/install.sh", install_sh(manifest).encode()),
            _bytes(f"{top}/install.ps1", install_ps1(manifest).encode()),
            _bytes(f"{top}/{TOOL_REQUIREMENTS}", tool_requirements(tools).encode()),
            *[Member(f"{top}/tool/{p.name}", sha256_file(p), p.stat().st_size, path=p) for p in tools],
            *[Member(f"{top}/wheelhouse/{name}", sums[name], path.stat().st_size, path=path)
              for name, path in sorted(wheels.items())],
        ]
        sums_text = "".join(f"{m.sha256}  {m.name.split('/', 1)[1]}\n" for m in members)
        members.insert(0, _bytes(f"{top}/{SUMS}", sums_text.encode()))
        total = sum(m.size for m in members)
        part = out.with_name(f".{out.name}.part-{os.getpid()}")
        done = 0
        try:
            with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
                for member in members:
                    ti = tarfile.TarInfo(member.name)
                    ti.size, ti.mtime = member.size, 0
                    ti.mode = 0o755 if member.name.endswith(".sh") else 0o644
                    if member.data is not None:
                        tar.addfile(ti, io.BytesIO(member.data))
                    else:
                        assert member.path is not None
                        with open(member.path, "rb") as fh:
                            tar.addfile(ti, fh)
                    done += member.size
                    reporter(Progress("bundle", done, total, "bytes", member.name.split("/")[-1]))
            os.replace(part, out)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    seconds = time.monotonic() - started
    reporter(PhaseDone("bundle", seconds))
    return {"ok": True, "output": str(out), "bytes": out.stat().st_size, "sha256": sha256_file(out),
            "tool_source": source,
            "members": len(members), "wheels": len(wheels), "tool_wheels": len(tools), "seconds": round(seconds, 3)}


def _bytes(name: str, data: bytes) -> Member:
    return Member(name, hashlib.sha256(data).hexdigest(), len(data), data=data)


def verify_bundle(path: Path, reporter: Reporter = null_reporter) -> dict[str, object]:
    """Check every member against SHA256SUMS in one sequential read; WheelhouseError (exit 4) names the first
    member that is missing, extra, altered, unsafe or cut short. Nothing is written anywhere."""
    if not path.is_file():
        raise UsageError(f"{path}: no such bundle")
    started = time.monotonic()
    total = path.stat().st_size
    reporter(Phase("bundle verify", str(path)))
    expected: dict[str, str] | None = None
    seen: set[str] = set()
    top = ""
    done = 0
    try:
        with tarfile.open(path, "r|") as tar:
            for ti in tar:
                name = ti.name
                if not ti.isfile() or name.startswith("/") or ".." in name.split("/"):
                    raise WheelhouseError(f"{path.name}: member {name!r} is not a plain file inside the bundle")
                fh = tar.extractfile(ti)
                assert fh is not None
                digest = hashlib.sha256()
                data = bytearray() if expected is None else None
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    if data is not None:
                        data += chunk
                done += ti.size
                reporter(Progress("bundle verify", done, total, "bytes", name.split("/")[-1]))
                if expected is None:
                    top, _, rest = name.partition("/")
                    if rest != SUMS:
                        raise WheelhouseError(f"{path.name}: the first member is {name}, not {SUMS}",
                                              hint="this is not a bundle written by `immutable-installer bundle`")
                    expected = _parse_sums(bytes(data or b""), path.name)
                    continue
                rel = name.partition("/")[2] if name.startswith(top + "/") else ""
                if rel not in expected:
                    raise WheelhouseError(f"{path.name}: member {name} is not listed in {SUMS}")
                if digest.hexdigest() != expected[rel]:
                    raise WheelhouseError(f"{path.name}: member {rel} does not match its sha256 in {SUMS}",
                                          hint="the bundle was altered or damaged in transit; copy it again")
                seen.add(rel)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise WheelhouseError(f"{path.name}: the archive is truncated or damaged ({exc})",
                              hint="copy the bundle again; compare its sha256 with the one `bundle` printed") from None
    if expected is None:
        raise WheelhouseError(f"{path.name}: empty archive, no {SUMS}")
    missing = sorted(set(expected) - seen)
    if missing:
        raise WheelhouseError(f"{path.name}: member {missing[0]} is missing from the bundle", details=missing,
                              hint="the bundle is incomplete; copy it again")
    seconds = time.monotonic() - started
    reporter(PhaseDone("bundle verify", seconds))
    return {"ok": True, "bundle": str(path), "members": len(seen) + 1, "bytes": total,
            "seconds": round(seconds, 3)}


def _parse_sums(data: bytes, bundle: str) -> dict[str, str]:
    out = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64:
            raise WheelhouseError(f"{bundle}: {SUMS} has a malformed line: {line[:80]!r}")
        out[name] = digest
    return out
