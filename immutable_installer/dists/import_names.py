"""The modules a distribution is known by, read from its wheel's file list (and ``top_level.txt``).

``verify`` imports them to prove the environment works, so a wrong guess fails a healthy stack. What a wheel
lists at its top is not all importable code:

- ``scikit_learn.libs/``, ``pillow.libs/``: the folders auditwheel vendors shared libraries into (not modules);
- ``foo.data/``, ``foo.dist-info/``: wheel metadata; ``foo-stubs/``: type stubs;
- ``tests/``, ``docs/``, ``examples/``, ``benchmarks/`` shipped by mistake at the top level;
- ``_private`` modules (``_cffi_backend``, ``_yaml``): implementation details of a public package;
- a namespace package (``google/`` without ``__init__.py``) is not the distribution: its real subpackage is
  (``google.protobuf``, ``google.cloud.storage``).

Of what is left, the module whose name matches the distribution (``pyyaml`` -> ``yaml``, ``psycopg2-binary`` ->
``psycopg2``, ``google-cloud-storage`` -> ``google.cloud.storage``) is the *primary* import: verify fails when it
does not import. The others are *secondary*: imported in the same check, a failure there is a warning (duckdb's
``adbc_driver_duckdb`` needs an optional dependency). Without a match, the package with the most files is primary.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

STRAY_TOP_LEVEL = frozenset({"test", "tests", "testing_data", "doc", "docs", "example", "examples", "benchmark",
                             "benchmarks"})
MAX_SECONDARY = 5  # the largest other packages: a namespace of 60 generated modules needs no 60 imports
_EXTENSION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.(?:[A-Za-z0-9_.-]+\.)?(?:so|pyd)$")


@dataclass(frozen=True)
class ImportNames:
    """A distribution's modules: ``primary`` must import, ``secondary`` may fail with a warning."""

    primary: tuple[str, ...]
    secondary: tuple[str, ...]


def _root_paths(paths: Iterable[str]) -> list[str]:
    """Paths as they land in site-packages: the wheel's root, and ``.data/purelib`` / ``.data/platlib``."""
    out = []
    for path in paths:
        head, _, rest = path.partition("/")
        if head.endswith(".dist-info"):
            continue
        if head.endswith(".data"):
            scheme, _, inner = rest.partition("/")
            if scheme in ("purelib", "platlib") and inner:
                out.append(inner)
            continue
        out.append(path)
    return out


def _module_name(path: str) -> str | None:
    """The top-level module a single file installs (``six.py`` -> six, ``_duckdb.cpython-311-...so`` -> _duckdb)."""
    if path.endswith(".py"):
        name = path[:-3]
        return name if name.isidentifier() else None
    found = _EXTENSION.match(path)
    return found.group(1) if found else None


class _Tree:
    """The folders and modules of a wheel, as nested dicts: ``None`` marks a module file."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.files: dict[str, int] = {}  # dotted folder -> files below it (the largest package is the main one)
        self.packages: set[str] = set()  # dotted names of folders holding an __init__ module
        self.folders: dict[str, set[str]] = {}  # dotted folder -> child folder names
        self.modules: set[str] = set()  # top-level single-file modules
        self.nested: set[str] = set()  # dotted names of modules inside folders
        for path in paths:
            parts = path.split("/")
            if len(parts) == 1:
                name = _module_name(parts[0])
                if name:
                    self.modules.add(name)
                continue
            if not all(p.isidentifier() for p in parts[:-1]):
                continue  # pillow.libs/..., foo-stubs/...: not importable
            for depth in range(1, len(parts)):
                folder = ".".join(parts[:depth])
                self.files[folder] = self.files.get(folder, 0) + 1
            for depth in range(1, len(parts) - 1):
                self.folders.setdefault(".".join(parts[:depth]), set()).add(parts[depth])
            self.folders.setdefault(".".join(parts[:-1]), set())
            module = _module_name(parts[-1])
            if module == "__init__":
                self.packages.add(".".join(parts[:-1]))
            elif module:
                self.nested.add(".".join([*parts[:-1], module]))

    def tops(self) -> set[str]:
        return {name for name in self.folders if "." not in name} | self.modules

    def importable(self, top: str) -> list[str]:
        """``top`` itself when it is a module or a regular package; for a namespace package, its regular
        subpackages (the first level down that has them, searched breadth first), else the modules of the
        first namespace folder that holds some (``google.api.annotations_pb2``)."""
        if top in self.modules or top in self.packages:
            return [top]
        level: list[str] = [top]
        modules: list[str] = []
        for _ in range(4):
            below = [f"{folder}.{child}" for folder in level for child in sorted(self.folders.get(folder, ()))
                     if not child.startswith("_")]
            found = [name for name in below if name in self.packages]
            if found:
                return found
            modules = modules or sorted(m for m in self.nested if m.rpartition(".")[0] in level
                                        and not m.rpartition(".")[2].startswith("_"))
            if not below:
                break
            level = below
        return modules


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _match(dist: str, module: str) -> int:
    """How well a dotted module name matches a distribution name: 3 exact, 2 without a py/python prefix or a
    -binary/-python suffix, 1 one a prefix of the other, 0 no match."""
    d, m = _normal(dist), _normal(module)
    if d == m:
        return 3
    stripped = {d.removeprefix("python_"), d.removeprefix("py"), d.removeprefix("py_"), d.removesuffix("_python"),
                d.removesuffix("_binary"), d.removesuffix("_py")}
    if m in stripped:
        return 2
    if d.startswith(m + "_") or m.startswith(d + "_") or m.rsplit(".", 1)[-1] == d:
        return 1
    return 0


def import_names(dist: str, paths: Iterable[str], top_level_txt: str | None = None) -> ImportNames:
    """The primary and secondary imports of distribution ``dist`` from its wheel's member paths and, when the
    wheel has one, its ``top_level.txt`` (only its names that the wheel really installs count)."""
    tree = _Tree(_root_paths(paths))
    tops = {t for t in tree.tops() if t not in STRAY_TOP_LEVEL}
    if top_level_txt is not None:
        listed = {line.strip().replace("/", ".").split(".")[0] for line in top_level_txt.splitlines()} & tops
        tops = listed or tops
    public = {t for t in tops if not t.startswith("_")}
    names = sorted({name for top in (public or tops) for name in tree.importable(top)})
    if not names:
        return ImportNames((), ())
    best = max(names, key=lambda n: (_match(dist, n), tree.files.get(n, 1), -len(n), n))
    others = sorted((n for n in names if n != best), key=lambda n: (-tree.files.get(n, 1), n))[:MAX_SECONDARY]
    return ImportNames((best,), tuple(sorted(others)))
