"""Fill a new generation from store entries: link every file, write the interpreter-bound ones per generation.

Entries are placed in the manifest's group order. Directories are created per generation (never linked), so
Python can write into a generation's ``__pycache__`` without touching the store. Console scripts and the RECORD
of their distribution are the only files written rather than linked (immutable_installer.dists.scripts.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from immutable_installer.core.errors import BuildError
from immutable_installer.dists import scripts as relocate
from immutable_installer.generation.linking import Linker
from immutable_installer.store.entries import Entry


@dataclass
class Populated:
    """What populating a generation did."""

    files: int = 0
    written: int = 0


def populate(generation: str, entries: Sequence[Entry], linker: Linker, python: str,
             on_entry: Callable[[int, Entry], None] | None = None) -> Populated:
    """Link ``entries`` into ``generation`` (a fresh virtualenv); ``python`` is the generation's interpreter;
    ``on_entry`` hears of each entry placed (its position from 1), for a progress bar."""
    made: set[str] = set()
    owners: dict[str, tuple[str, str]] = {}
    stats = Populated()
    for done, entry in enumerate(entries, 1):
        scripts = entry.scripts
        written = set(scripts) | ({entry.record} if scripts else set())
        root = str(entry.root)
        for rel, digest, _size in entry.files:
            if rel in written:
                continue
            dst = os.path.join(generation, rel)
            parent = os.path.dirname(dst)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            try:
                linker.place(os.path.join(root, rel), dst)
            except FileExistsError:
                owner = owners.get(rel)
                if owner is not None and owner[1] == digest:  # the same bytes from two wheels: one copy suffices
                    continue
                if owner is not None and "/__pycache__/" in rel:
                    continue  # bytecode of a source shared that way: the first entry's matches the linked source
                by = f"store entry {owner[0]}" if owner else "the virtualenv itself"
                raise BuildError(f"{rel} would be installed twice with different contents ({entry.meta['wheel']} "
                                 f"and {by})", hint="`immutable-installer scan` names the clashing wheels") from None
            owners[rel] = (entry.key, digest)
            stats.files += 1
        if scripts:
            _write_scripts(generation, entry, scripts, python)
            stats.written += len(scripts) + 1
        if on_entry is not None:
            on_entry(done, entry)
    return stats


def _write_scripts(generation: str, entry: Entry, scripts: dict[str, dict[str, object]], python: str) -> None:
    """Console scripts with this generation's interpreter, and the RECORD rows that hash them."""
    site = os.path.dirname(os.path.dirname(entry.record))  # lib/pythonX.Y/site-packages
    new_rows: dict[str, bytes] = {}
    for rel, info in scripts.items():
        with open(entry.root / rel, "rb") as fh:
            content = relocate.rewrite_script(fh.read(), info, python)
        dst = os.path.join(generation, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as fh:
            fh.write(content)
        os.chmod(dst, 0o755)
        new_rows[os.path.relpath(rel, site).replace(os.sep, "/")] = content  # RECORD's separator everywhere
    with open(entry.root / entry.record, encoding="utf-8", newline="") as fh:  # pip ends rows with \r\n: keep them
        record = fh.read()
    dst = os.path.join(generation, entry.record)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "w", encoding="utf-8", newline="") as fh:
        fh.write(relocate.rewrite_record(record, new_rows))
