"""What runs at interpreter start, decided by a file's *final installed path*, the way ``site`` decides.

A wheel reaches site-packages by several routes (its root, ``.data/purelib``, ``.data/platlib``, and
``.data/data/lib/pythonX.Y/site-packages`` through the data scheme): the route does not matter, the path it
lands on does. At the top of site-packages these run code at every start:

- ``<name>.pth`` with an ``import`` line (site decodes it as ``utf-8-sig``: a leading BOM changes nothing);
- ``<name>.start`` (PEP 829, Python 3.15+): entry points called at start;
- ``sitecustomize`` / ``usercustomize``: a module, a package or an extension module of that name.

Files whose name starts with a dot are skipped by site and are not start-up code.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from immutable_installer.core.pth import executable_pth_lines

STARTUP_MODULES = ("sitecustomize", "usercustomize")
_SITE_VIA_DATA = re.compile(r"^(?:lib/python\d+\.\d+t?|Lib)/site-packages/(.+)$")


def site_relative(installed: str) -> str | None:
    """The path under site-packages of a scheme-qualified installed path (``purelib/x``, ``data/lib/python3.11/
    site-packages/x``), or None when it lands elsewhere (scripts, headers, other data)."""
    scheme, _, rest = installed.partition("/")
    if scheme in ("purelib", "platlib"):
        return rest
    if scheme == "data":
        found = _SITE_VIA_DATA.match(rest)
        return found.group(1) if found else None
    return None


def startup_name(rel: str) -> str | None:
    """The name a site-packages path is allowed by (``verify.allowed_pth``) when it is start-up code: the
    top-level file or folder (``evil.pth``, ``x.start``, ``sitecustomize.py``, ``sitecustomize``)."""
    head = rel.split("/", 1)[0]
    if not head or head.startswith("."):
        return None
    if "/" not in rel and rel.endswith((".pth", ".start")):
        return rel
    if head.split(".", 1)[0] in STARTUP_MODULES and (head.endswith((".py", ".pyc", ".so", ".pyd")) or "/" in rel
                                                     or head in STARTUP_MODULES):
        return head
    return None


def startup_finding(rel: str, read: Callable[[], bytes]) -> tuple[str, str] | None:
    """(allow-list name, what runs) when ``rel`` (a path under site-packages) is start-up code, else None."""
    name = startup_name(rel)
    if name is None:
        return None
    if name.endswith(".pth"):
        lines = executable_pth_lines(read().decode("utf-8", errors="replace"))
        return (name, f"an import line: {lines[0][:100]}") if lines else None
    if name.endswith(".start"):
        entries = [ln.strip() for ln in read().decode("utf-8", errors="replace").splitlines()
                   if ln.strip() and not ln.strip().startswith("#")]
        return name, f"start-up entry points: {', '.join(entries)[:100] or '(none yet)'}"
    return name, f"{name.split('.', 1)[0]}, imported at every start"
