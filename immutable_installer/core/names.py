"""Package-name rules shared by the manifest, the blacklist and the scanners.

PEP 503 normalisation decides identity (``Foo_Bar`` is ``foo-bar``). Blacklist matching is deliberately
looser: separators are dropped too, so ``TorchAO``, ``torch_ao`` and ``torch-ao`` all hit a ``torchao`` rule
(renamed forks are exactly how a forbidden package sneaks back in).
"""

from __future__ import annotations

import fnmatch
import re

from packaging.utils import canonicalize_name

_SEPARATORS = re.compile(r"[-_.]+")
_VARIANT = re.compile(r"cpu|cu\d{3}|rocm[\d.]+")
VARIANT_NAMES = "cpu, cu126, cu130, rocm6.4, ..."


def is_variant_name(name: str) -> bool:
    """The one rule for variant names, shared by the spec and the manifest: ``cpu``, ``cuXYZ`` or ``rocmX.Y``
    (``auto`` picks among them by the driver, so a name must say which build it is)."""
    return _VARIANT.fullmatch(name) is not None


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return str(canonicalize_name(name))


def squashed(name: str) -> str:
    """Lower-case name without any separator: the loose key used for blacklist matching."""
    return _SEPARATORS.sub("", name.lower())


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether a blacklist pattern (a name or a glob such as ``torchao-*``) matches a distribution name.

    Both the canonical and the squashed forms are compared, so separator variants never slip through.
    """
    pat = canonical(pattern) if not any(c in pattern for c in "*?[") else pattern.lower()
    cname = canonical(name)
    if fnmatch.fnmatchcase(cname, pat):
        return True
    return fnmatch.fnmatchcase(squashed(name), squashed(pat))
