"""What goes in which layer: one layer per store entry (its files at their final paths under the image's
environment prefix, and its portable ``entry.json``), small entries grouped when a stack has more than runtimes
allow, and the top layer of what one generation writes for itself.

An entry's layer depends on the entry and the prefix only (``tarball.py``: fixed owner, modes and mtimes), so the
same wheel gives the same layer digest from any machine, and two stacks that differ in one package share every
other layer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from immutable_installer.core.errors import ImageError, UsageError
from immutable_installer.oci.tarball import Member
from immutable_installer.store.entries import Entry
from immutable_installer.store.fill import ENTRY_MTIME

DEFAULT_PREFIX = "/opt/venv"
META_DIR = ".immutable-installer/entries"  # under the prefix: each entry's portable entry.json
MAX_LAYERS = 100  # Docker refuses more than 125 layers; overlayfs mounts fail earlier on some kernels
PORTABLE_KEYS = ("format", "key", "interpreter", "name", "version", "wheel", "sha256", "record", "files",
                 "executables", "content_digest", "scripts", "wheel_facts")
ANNOTATION = "io.github.immutable-installer"


def check_prefix(prefix: str) -> str:
    """``/opt/venv`` style: absolute, plain components; returned without the trailing slash."""
    parts = prefix.strip("/").split("/")
    if not prefix.startswith("/") or not all(p and p not in (".", "..") and p.replace("-", "").replace(
            "_", "").replace(".", "").isalnum() for p in parts):
        raise UsageError(f"--prefix {prefix!r} is not an absolute path of plain folder names",
                         hint="e.g. --prefix /opt/venv")
    return "/" + "/".join(parts)


def portable(entry: Entry) -> bytes:
    """What another machine needs to take the entry into its store, deterministic (no build time, no path of
    the build interpreter)."""
    meta = {k: entry.meta[k] for k in PORTABLE_KEYS if k in entry.meta}
    return (json.dumps(meta, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Planned:
    """One layer of entries."""

    entries: tuple[Entry, ...]

    @property
    def keys(self) -> list[str]:
        return [e.key for e in self.entries]

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)

    def identity(self, prefix: str) -> str:
        """What the layer's bytes are a function of: a cache key for its digest."""
        parts = [prefix, *(f"{e.key}={e.content_digest}" for e in self.entries)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def plan_layers(entries: Sequence[Entry], budget: int) -> list[Planned]:
    """One layer per entry when they fit in ``budget`` layers; otherwise the largest keep their own and the rest
    (in key order) are grouped into a few layers of consecutive keys. Depends only on the set of entries, so a
    changed small package changes one group's layer."""
    if budget < 2:
        raise UsageError(f"--max-layers leaves {budget} layer(s) for the store entries; at least 2 are needed")
    ordered = sorted(entries, key=lambda e: e.key)
    if len(ordered) <= budget:
        return [Planned((e,)) for e in ordered]
    groups = max(1, budget // 10)
    by_size = sorted(ordered, key=lambda e: (-e.bytes, e.key))
    own = {e.key for e in by_size[: budget - groups]}
    rest = [e for e in ordered if e.key not in own]
    size = -(-len(rest) // groups)
    return ([Planned((e,)) for e in ordered if e.key in own]
            + [Planned(tuple(rest[i:i + size])) for i in range(0, len(rest), size)])


def _parents(names: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in names:
        parts = name.split("/")[:-1]
        out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def entry_members(layer: Planned, prefix: str) -> tuple[list[Member], dict[str, str]]:
    """The layer's members, sorted (each entry's portable ``entry.json`` first, under ``META_DIR``), and the
    RECORD-form sha256 each file must have (checked while the layer is archived)."""
    top = prefix.strip("/")
    files: dict[str, Member] = {}
    expected: dict[str, str] = {}
    for entry in layer.entries:
        data = portable(entry)
        name = f"{top}/{META_DIR}/{entry.key}.json"
        files[name] = Member(name, "file", 0o444, ENTRY_MTIME, len(data), data=data)
        marked = set(entry.executables)
        for rel, digest, size in entry.files:
            name = f"{top}/{rel}"
            if name in files:
                if expected.get(name) != digest and "/__pycache__/" not in rel:
                    raise ImageError(f"{rel} is in two entries of one layer with different bytes "
                                     f"({', '.join(layer.keys)})")
                continue
            files[name] = Member(name, "file", 0o555 if rel in marked else 0o444, ENTRY_MTIME, int(size),
                                 source=entry.root / rel)
            expected[name] = str(digest)
    dirs = [Member(d, "dir", 0o755, ENTRY_MTIME) for d in _parents(files)]
    return sorted([*dirs, *files.values()], key=lambda m: m.name), expected


def record_digest_of(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def is_text(data: bytes) -> bool:
    if b"\0" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def pyvenv_cfg(local: str, base_python: str) -> bytes:
    """The environment's ``pyvenv.cfg`` pointing at the image's interpreter (``home``, ``executable`` and the
    base paths); the other keys as virtualenv wrote them here, but the command line that made it here."""
    home = os.path.dirname(base_python)
    base = os.path.dirname(home)
    values = {"home": home, "base-prefix": base, "base-exec-prefix": base, "base-executable": base_python,
              "executable": base_python}
    lines = []
    for line in local.splitlines():
        key = line.partition("=")[0].strip()
        if key in values:
            lines.append(f"{key} = {values.pop(key)}")
        elif key and key != "command":  # how virtualenv was run on this machine: nothing of the image's
            lines.append(line)
    lines += [f"{k} = {v}" for k, v in values.items() if k != "executable"]
    return ("\n".join(lines) + "\n").encode()


def generation_members(generation: Path, tool_files: Iterable[str], rewritten: dict[str, bytes], prefix: str,
                       base_python: str, local_paths: Sequence[str]) -> tuple[list[Member], dict[str, str]]:
    """The top layer: what the generation wrote for itself, made for the image. Console scripts and their
    RECORDs are ``rewritten`` for the image's interpreter; links to this machine's interpreter point at the
    image's; ``pyvenv.cfg`` names the image's interpreter; text files naming this generation's path name the
    prefix instead. Each file keeps its mtime (its bytecode stays valid). Returns the members and what the
    image's receipt lists for each (``tool_files``)."""
    top = prefix.strip("/")
    olds = sorted({p for p in local_paths if p}, key=len, reverse=True)
    members: dict[str, Member] = {}
    listed: dict[str, str] = {}
    for rel in sorted(set(tool_files) | set(rewritten)):
        path = generation / rel
        name = f"{top}/{rel}"
        try:
            st = os.lstat(path)
        except OSError:
            if rel in rewritten:  # a script the generation does not hold (it should): written all the same
                st = None
            else:
                continue
        if st is not None and os.path.islink(path):
            target = os.readlink(path)
            if os.path.isabs(target):
                target = base_python
            members[name] = Member(name, "link", 0o777, int(st.st_mtime), target=target)
            listed[rel] = "link:" + target
            continue
        mtime = int(st.st_mtime) if st is not None else ENTRY_MTIME
        executable = (rel in rewritten and rel.startswith(("bin/", "Scripts/"))) or bool(st and st.st_mode & 0o111)
        if rel in rewritten:
            data: bytes = rewritten[rel]
        else:
            data = pyvenv_cfg(path.read_text(encoding="utf-8"), base_python) if rel == "pyvenv.cfg" else \
                path.read_bytes()
            if is_text(data):  # activate scripts, pip.conf, pyvenv.cfg's command line: this generation's path
                for old in olds:
                    data = data.replace(old.encode(), prefix.encode())
        members[name] = Member(name, "file", 0o755 if executable else 0o644, mtime, len(data), data=data)
        listed[rel] = record_digest_of(data)
    dirs = [Member(d, "dir", 0o755, ENTRY_MTIME) for d in _parents(members)]
    return sorted([*dirs, *members.values()], key=lambda m: m.name), listed


def annotations_of(layer: Planned) -> dict[str, str]:
    return {f"{ANNOTATION}.entries": ",".join(layer.keys),
            f"{ANNOTATION}.content-digests": ",".join(str(e.content_digest) for e in layer.entries)}


def parse_layer_annotations(annotations: Any) -> list[tuple[str, str]]:
    """(entry key, content digest) pairs a layer's annotations name; [] for a layer without entries."""
    if not isinstance(annotations, dict) or f"{ANNOTATION}.entries" not in annotations:
        return []
    keys = str(annotations.get(f"{ANNOTATION}.entries", "")).split(",")
    digests = str(annotations.get(f"{ANNOTATION}.content-digests", "")).split(",")
    if len(keys) != len(digests):
        raise ImageError("a layer names a different number of entries and content digests")
    return list(zip(keys, digests, strict=True))
