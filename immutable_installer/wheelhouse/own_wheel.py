"""The tool's own wheel, rebuilt from its installed files: `bundle` works from the tool as users install it.

A bundle carries the tool so an offline machine can bootstrap it. From a source checkout the wheel is built
with pip; from an installation (a wheel installed by pip or uv) there is no source to build from, so the wheel
is put back together from the installed files that its RECORD lists, each checked against its RECORD sha256
first: a file changed after the install (by a user, or by something hostile) refuses the bundle instead of
travelling to other machines. Bytecode, console-script launchers and the installer's own files (INSTALLER,
REQUESTED, direct_url.json) are not part of a wheel and are left out; a fresh RECORD is written.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from immutable_installer.core.errors import UsageError, WheelhouseError
from immutable_installer.core.names import canonical

NOT_IN_A_WHEEL = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def rebuild_installed_wheel(project: str, out: Path) -> Path:
    """Write ``project``'s wheel, rebuilt from its installed files, into ``out``; WheelhouseError (exit 4)
    naming the first file that no longer matches its RECORD hash."""
    try:
        dist = distribution(project)
    except PackageNotFoundError:
        raise UsageError(f"{project} is not installed here, so its wheel cannot be rebuilt",
                         hint="pass --tool-wheel PATH (a wheel of immutable-installer)") from None
    files = list(dist.files or [])
    info_dirs = {f.parts[0] for f in files if f.parts and f.parts[0].endswith(".dist-info")}
    if len(info_dirs) != 1:
        raise UsageError(f"{project}'s installation has no single .dist-info folder (an editable install?)",
                         hint="pass --tool-wheel PATH, or run `bundle` from the source checkout")
    info = info_dirs.pop()
    members: dict[str, bytes] = {}
    for entry in files:
        rel = entry.as_posix()
        if rel.startswith("..") or "__pycache__" in entry.parts or rel.endswith(".pyc"):
            continue  # console-script launchers (outside site-packages) and bytecode: made by the installer
        if entry.parts[0] == info and entry.name in NOT_IN_A_WHEEL:
            continue
        if entry.hash is None or entry.hash.mode != "sha256":
            raise WheelhouseError(f"{rel}: {project}'s RECORD gives it no sha256, so it cannot be checked")
        data = Path(str(entry.locate())).read_bytes()
        if _record_hash(data) != f"sha256={entry.hash.value}":
            raise WheelhouseError(f"{rel}: changed since {project} was installed (its sha256 no longer matches "
                                  "RECORD); refusing to bundle it",
                                  hint="reinstall immutable-installer, or pass --tool-wheel PATH")
        members[rel] = data
    tag = next((line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
                if line.startswith("Tag:")), "py3-none-any")
    name = canonical(dist.metadata["Name"]).replace("-", "_")
    target = out / f"{name}-{dist.version}-{tag}.whl"
    record = "".join(f"{rel},{_record_hash(data)},{len(data)}\n" for rel, data in sorted(members.items()))
    record += f"{info}/RECORD,,\n"
    members[f"{info}/RECORD"] = record.encode()
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in sorted(members, key=lambda r: (r.startswith(info), r)):  # dist-info last, as pip writes it
            zf.writestr(zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0)), members[rel])
    return target
