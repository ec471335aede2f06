"""``export-index``: the wheelhouse as a static simple index that any file server serves unchanged.

Writes PEP 503 HTML (``simple/<project>/index.html``) and PEP 691 JSON (``index.json`` beside it) with sha256
fragments, the wheels under ``files/`` (hard links where the filesystem allows, copies otherwise) and the
manifest as ``dependencies.json``. Links are relative and percent-encoded: object stores (S3, GCS) read ``+`` in
a path as a space, so ``torch-2.13.0+cpu-...whl`` is linked as ``torch-2.13.0%2Bcpu-...whl``. Every file is
checked against the manifest's sha256 before it is exported; every page is written under a temporary name and
renamed, so a server never sees half a page.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from immutable_installer.core.errors import UsageError, WheelhouseError
from immutable_installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.model import Manifest, Package, WheelFile
from immutable_installer.core.names import canonical
from immutable_installer.dists.hashing import hash_files

API = {"api-version": "1.1"}


@dataclass
class Exported:
    """What ``export-index`` wrote."""

    root: Path
    projects: int = 0
    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"ok": True, "root": str(self.root), "projects": self.projects, "files": self.files,
                "bytes": self.bytes, "skipped": self.skipped, "seconds": round(self.seconds, 3)}


def export_index(manifest: Manifest, manifest_bytes: bytes, wheelhouse: Path, out: Path,
                 reporter: Reporter = null_reporter) -> Exported:
    """Export every pinned file present in the wheelhouse; a present file with a wrong hash is exit 4."""
    started = time.monotonic()
    refuse_foreign_folder(out)
    reporter(Phase("export", f"static index in {out}"))
    pinned: list[tuple[Package, WheelFile]] = []
    seen: set[str] = set()
    for package in manifest.packages:
        for wheel in package.files:
            if wheel.filename not in seen:
                seen.add(wheel.filename)
                pinned.append((package, wheel))
    present = [(p, w) for p, w in pinned if (wheelhouse / w.filename).is_file()]
    result = Exported(out, skipped=sorted(w.filename for p, w in pinned if (p, w) not in present))
    if not present:
        raise WheelhouseError(f"the wheelhouse {wheelhouse} holds none of the manifest's files",
                              hint="run `immutable-installer download` first")
    digests = hash_files([wheelhouse / w.filename for _, w in present])
    bad = [w.filename for (_, w), got in zip(present, digests, strict=True) if got != w.sha256]
    if bad:
        raise WheelhouseError(f"{bad[0]}: sha256 does not match the manifest; refusing to export it",
                              details=bad, hint="delete the file and run `immutable-installer download` again")
    files_dir = out / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    total = sum((wheelhouse / w.filename).stat().st_size for _, w in present)
    done = 0
    linked = 0
    for _, wheel in present:
        src = wheelhouse / wheel.filename
        dst = files_dir / wheel.filename
        size = src.stat().st_size
        if not (dst.is_file() and dst.stat().st_size == size and _same_or_hashed(src, dst, wheel.sha256)):
            tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
            tmp.unlink(missing_ok=True)
            try:
                os.link(src, tmp)
                linked += 1
            except OSError:
                shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        done += size
        reporter(Progress("export", done, total, "bytes", wheel.filename))
    by_project: dict[str, list[tuple[Package, WheelFile]]] = {}
    for package, wheel in present:
        by_project.setdefault(canonical(package.name), []).append((package, wheel))
    for project, items in sorted(by_project.items()):
        page_dir = out / "simple" / project
        _write(page_dir / "index.html", _project_html(project, items))
        _write(page_dir / "index.json", json.dumps(_project_json(project, items), indent=1, sort_keys=True) + "\n")
    names = sorted(by_project)
    _write(out / "simple" / "index.html", _root_html(names))
    _write(out / "simple" / "index.json", json.dumps({"meta": API, "projects": [{"name": n} for n in names]},
                                                     indent=1) + "\n")
    _write(out / "dependencies.json", manifest_bytes.decode("utf-8"))
    _write(out / MARKER, "an index exported by immutable-installer; `export-index` may rewrite this folder\n")
    result.projects, result.files, result.bytes = len(names), len(present), total
    if result.skipped:
        reporter(Message("info", f"{len(result.skipped)} pinned file(s) are not in the wheelhouse and were not "
                                 f"exported (e.g. {result.skipped[0]}); `download --variant ...` fetches them"))
    reporter(Message("info", f"{len(present)} wheels ({linked} hard-linked), {len(names)} projects"))
    result.seconds = time.monotonic() - started
    reporter(PhaseDone("export", result.seconds))
    return result


MARKER = ".immutable-installer-index"
_OURS = {MARKER, "files", "simple", "dependencies.json"}


def refuse_foreign_folder(out: Path) -> None:
    """``export-index`` writes only into an empty folder or one it exported before: never over a folder of
    the user's files (a ``dependencies.json`` or a ``simple/`` of theirs would be replaced)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"{out} is a file, not a folder", hint="name a new or empty folder for the index")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OURS)
    if foreign or ((out / "dependencies.json").exists() and not (out / MARKER).exists()
                   and not (out / "files").is_dir()):
        raise UsageError(f"{out} holds files that are not an index exported by immutable-installer "
                         f"(e.g. {(foreign or ['dependencies.json'])[0]}); refusing to write into it",
                         hint="export into a new or empty folder")


def _same_or_hashed(src: Path, dst: Path, sha256: str) -> bool:
    if os.path.samefile(src, dst):
        return True
    from immutable_installer.dists.hashing import sha256_file

    return sha256_file(dst) == sha256


def file_href(filename: str, sha256: str) -> str:
    """The relative link from ``simple/<project>/`` to a file, percent-encoded (``+`` -> ``%2B``)."""
    return f"../../files/{urllib.parse.quote(filename)}#sha256={sha256}"


def _project_html(project: str, items: list[tuple[Package, WheelFile]]) -> str:
    links = []
    for _, wheel in sorted(items, key=lambda i: i[1].filename):
        links.append(f'    <a href="{html.escape(file_href(wheel.filename, wheel.sha256))}">'
                     f"{html.escape(wheel.filename)}</a><br/>")
    return ("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"
            f"    <title>Links for {project}</title>\n  </head>\n  <body>\n    <h1>Links for {project}</h1>\n"
            + "\n".join(links) + "\n  </body>\n</html>\n")


def _project_json(project: str, items: list[tuple[Package, WheelFile]]) -> dict[str, object]:
    files = [{"filename": w.filename, "url": file_href(w.filename, w.sha256).split("#", 1)[0],
              "hashes": {"sha256": w.sha256}, **({"size": w.size} if w.size else {})}
             for _, w in sorted(items, key=lambda i: i[1].filename)]
    versions = sorted({p.version for p, _ in items})
    return {"meta": API, "name": project, "files": files, "versions": versions}


def _root_html(names: list[str]) -> str:
    links = "\n".join(f'    <a href="{n}/">{n}</a><br/>' for n in names)
    return ("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n"
            "    <title>Simple index</title>\n  </head>\n  <body>\n" + links + "\n  </body>\n</html>\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
