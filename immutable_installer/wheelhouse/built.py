"""Wheels built from sdists, kept by their own sha256 with where they came from, so a wheel is built once.

``lock --build`` puts each wheel it built here; ``download`` takes a pinned built wheel from here (it is
identified by sha256 like any file), and only when it is not here builds it again from the recorded sdist and
build requirements, then compares: a second build that gives other bytes is reported, never used.

Layout under ``<cache>/built`` (core/paths.py)::

    <wheel sha256>/<wheel filename>      the wheel
    <wheel sha256>/provenance.json       sdist (filename, sha256, url), backend, pinned build requirements
    sdists/<sdist sha256>                the sha256 of the wheel that sdist built
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from immutable_installer.core.errors import ManifestError
from immutable_installer.core.fields import FieldReader
from immutable_installer.core.model import BuiltFrom
from immutable_installer.core.paths import cache_root
from immutable_installer.core.sections import parse_built_from
from immutable_installer.core.serialize import built_from_to_data
from immutable_installer.dists.hashing import sha256_file


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    sha256: str
    provenance: BuiltFrom


class BuiltWheels:
    """The cache of built wheels at one root (``<cache>/built`` unless given)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or cache_root() / "built"

    def get(self, sha256: str) -> BuiltWheel | None:
        """The built wheel with this sha256 (checked), or None."""
        folder = self.root / sha256
        try:
            record = folder / "provenance.json"
            provenance = parse_built_from(FieldReader(str(record)), json.loads(record.read_text(encoding="utf-8")),
                                          "build")
            wheels = [p for p in folder.iterdir() if p.suffix == ".whl"]
        except (OSError, ValueError, ManifestError):
            return None
        if len(wheels) != 1 or sha256_file(wheels[0]) != sha256:
            return None
        return BuiltWheel(wheels[0], sha256, provenance)

    def for_sdist(self, sdist_sha256: str) -> BuiltWheel | None:
        """What this sdist built before, if it is still here."""
        try:
            sha = (self.root / "sdists" / sdist_sha256).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        return self.get(sha)

    def put(self, wheel: Path, provenance: BuiltFrom) -> BuiltWheel:
        """Keep a freshly built wheel (copied in under a temporary name, renamed when complete)."""
        sha = sha256_file(wheel)
        folder = self.root / sha
        if self.get(sha) is None:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
            shutil.copyfile(wheel, tmp / wheel.name)
            (tmp / "provenance.json").write_text(json.dumps(built_from_to_data(provenance), indent=1, sort_keys=True),
                                                 encoding="utf-8")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        (self.root / "sdists").mkdir(parents=True, exist_ok=True)
        marker = self.root / "sdists" / provenance.sdist_sha256
        marker.write_text(sha + "\n", encoding="utf-8")
        found = self.get(sha)
        assert found is not None
        return found
