"""The receipt every generation carries (``installer-receipt.json``): what it was built from and what it holds.

Typed, so every reader (install's up-to-date check, verify, rollback, status) reads the same fields the same
way; read leniently (a damaged or older receipt gives empty fields, never a crash), written deterministically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ReceiptPackage:
    """One installed package: its pin, its wheel and the store entry its files are linked from."""

    name: str
    version: str
    filename: str
    sha256: str
    store_entry: str


@dataclass(frozen=True)
class Receipt:
    tool_version: str = ""
    manifest_name: str = ""
    manifest_sha256: str = ""
    variant: str = ""
    platform: str = ""
    python: str = ""
    created: str = ""
    fingerprint: str = ""
    packages: tuple[ReceiptPackage, ...] = field(default_factory=tuple)
    store: str = ""
    link_mode: str | None = None
    tool_files: dict[str, str] = field(default_factory=dict)  # what the tool wrote itself: path -> digest or link

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["packages"] = [asdict(p) for p in self.packages]
        return data

    @classmethod
    def from_json(cls, data: Any) -> Receipt:
        if not isinstance(data, dict):
            return cls()
        text = {k: str(data.get(k) or "") for k in ("tool_version", "manifest_name", "manifest_sha256", "variant",
                                                    "platform", "python", "created", "fingerprint", "store")}
        packages = tuple(ReceiptPackage(**{k: str(p.get(k) or "") for k in ("name", "version", "filename", "sha256",
                                                                            "store_entry")})
                         for p in data.get("packages") or () if isinstance(p, dict))
        mode = data.get("link_mode")
        written = data.get("tool_files")
        tool_files = {str(k): str(v) for k, v in written.items()} if isinstance(written, dict) else {}
        return cls(**text, packages=packages, link_mode=str(mode) if mode else None, tool_files=tool_files)

    def versions(self) -> dict[str, str]:
        return {p.name: p.version for p in self.packages}


def read_receipt(path: Path) -> Receipt:
    """The receipt at ``path``; an empty one when it is missing or unreadable."""
    try:
        return Receipt.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return Receipt()


def write_receipt(path: Path, receipt: Receipt) -> None:
    path.write_text(json.dumps(receipt.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
