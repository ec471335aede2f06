"""The one hasher: sha256 as the manifest writes it (hex) and as RECORD writes it (``sha256=<urlsafe b64>``).

Files are read in large chunks (hashlib releases the GIL, so threads hash in parallel); 3.11's
``hashlib.file_digest`` runs the read loop in C where it exists.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def record_digest(data: bytes) -> str:
    """``sha256=<urlsafe base64, no padding>`` of ``data``, the RECORD form (PEP 376 / the wheel spec)."""
    return record_form(hashlib.sha256(data).digest())


def record_form(digest: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _digest_file(path: str | Path) -> Any:
    with open(path, "rb") as fh:
        if hasattr(hashlib, "file_digest"):  # 3.11+
            return hashlib.file_digest(fh, "sha256")
        digest = hashlib.sha256()  # pragma: no cover - 3.10
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
        return digest


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file (the manifest's form); OSError when it cannot be read."""
    return str(_digest_file(path).hexdigest())


def file_record_digest(path: str | Path) -> str | None:
    """RECORD-form sha256 of a file, or None when it cannot be read (missing, a directory, no permission)."""
    try:
        return record_form(_digest_file(path).digest())
    except OSError:
        return None


def hash_files(paths: Sequence[Path]) -> list[str | None]:
    """Hex sha256 of many files (wheels: few and large) on threads, since hashlib drops the GIL; None for a
    file that is gone."""

    def one(path: Path) -> str | None:
        try:
            return sha256_file(path)
        except FileNotFoundError:
            return None

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        return list(pool.map(one, paths))
