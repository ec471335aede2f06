"""Nothing held back silently: a requested package pinned below its newest release for the target, or at a
pre-release, is said aloud with the reason, found by asking the resolver for the newer version.

pip and uv pick the newest version that resolves; when a dependency of the newest has no wheel (hydra-core
1.3 needs antlr4-python3-runtime 4.9.3, published as an sdist only), a wheels-only lock backtracks years
without a word. The resolver knows why: asked for ``hydra-core==1.3.2`` it explains the conflict, and its
explanation names the package that has no usable wheel (``--build`` would let the lock build it) or the
Python version a release needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from immutable_installer.core.events import HeldBack
from immutable_installer.lock.index_pages import IndexFile

_HAS_NO_WHEELS = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)((?:[<>=!~]=?=?[^\s,]+,?)*) (?:has|have) no usable wheels")
_WHEELS_REQUIRED = re.compile(r"Wheels are required for `([^`]+)`")
_PYTHON_NEEDED = re.compile(r"(\S+)==(\S+) only supports ([^\s),]+)")
_PYTHON_REQUIRED = re.compile(r"(\S+)==(\S+) (?:requires|depends on) Python ([^\s),]+)")


@dataclass(frozen=True)
class Explanation:
    """The resolver's answer to "why not this version?", read from its error output."""

    text: str  # the cause, on one line
    wheel_less: tuple[tuple[str, str], ...] = ()  # (name, specifier) of packages that have no usable wheel
    python: str | None = None  # the Requires-Python of a release the target's Python does not satisfy


@dataclass(frozen=True)
class Finding:
    """A held-back package (the ``held_back`` event) and the wheel-less packages behind it, which ``--build``
    could build."""

    event: HeldBack
    build: tuple[tuple[str, str], ...] = ()


def explain(stderr: str) -> Explanation:
    """uv's error output -> the cause on one line, the packages without usable wheels, a Python requirement."""
    lines = stderr.splitlines()
    cause: list[str] = []
    hints: list[str] = []
    in_cause = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith(("cause:", "╰─▶")):
            in_cause = True
            stripped = stripped.split(":", 1)[1] if stripped.startswith("cause:") else stripped[3:]
        elif stripped.startswith("hint:"):
            in_cause = False
            hints.append(stripped[5:].strip())
            continue
        elif not stripped:
            continue  # a long derivation has blank lines inside it
        if in_cause:
            cause.append(stripped.strip())
    text = re.sub(r"\s+", " ", " ".join(cause)).strip() or next(
        (ln.strip().removeprefix("error:").strip() for ln in lines if ln.strip()), "")
    wheel_less: dict[str, str] = {}
    for name, spec in _HAS_NO_WHEELS.findall(text):
        if name not in ("versions", "of"):
            wheel_less.setdefault(name, spec.rstrip(","))
    for hint in hints:
        for name in _WHEELS_REQUIRED.findall(hint):
            wheel_less.setdefault(name, "")
    python = next((m.group(3) for hint in hints if (m := _PYTHON_NEEDED.search(hint))), None) or next(
        (m.group(3) for m in [_PYTHON_REQUIRED.search(text)] if m), None)
    return Explanation(text, tuple(sorted(wheel_less.items())), python)


def summary(text: str, limit: int = 400) -> str:
    """A long derivation (uv explains version by version) cut to its conclusion: the last step, which names
    the requirement that decides."""
    if len(text) <= limit:
        return text
    steps = text.split("And because ")
    return ("... and because " + steps[-1])[:limit] if len(steps) > 1 else text[:limit]


def usable_wheels(files: Iterable[IndexFile], tags: Sequence[Tag], python_full: str,
                  cutoff: str | None = None) -> list[IndexFile]:
    """The files a target can install: wheels with one of its tags, a Requires-Python its Python satisfies,
    not yanked, and (with ``--exclude-newer``) uploaded by the cutoff."""
    accepted = set(tags)
    out = []
    for f in files:
        if not f.is_wheel or f.yanked or (cutoff and f.upload_time and f.upload_time[:len(cutoff)] > cutoff):
            continue
        try:
            if not set(parse_wheel_filename(f.filename)[3]) & accepted:
                continue
        except InvalidWheelFilename:
            continue
        if f.requires_python and not _admits(f.requires_python, python_full):
            continue
        out.append(f)
    return out


def _admits(requires_python: str, version: str) -> bool:
    try:
        return SpecifierSet(requires_python).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True


def newest(files: Iterable[IndexFile], prereleases: bool) -> Version | None:
    versions = [v for f in files if (v := f.version) is not None and (prereleases or not v.is_prerelease)]
    return max(versions, default=None)


def check(name: str, pinned: str, requested: bool, files: Sequence[IndexFile], tags: Sequence[Tag],
          python_full: str, python_label: str, prereleases: bool, cutoff: str | None,
          probe: Callable[[str], str | dict[str, str]], target: str,
          requested_pins: Mapping[str, str] | None = None,
          pinned_by: Callable[[str, str], list[str]] | None = None,
          wanted: SpecifierSet | None = None) -> Finding | None:
    """Whether ``name`` (pinned at ``pinned``) is held back on this target, and why.

    ``probe(requirement)`` resolves again with one more requirement and returns the resolver's error output, or
    the pins when it resolves; ``requested_pins``: what the lock pinned for the requested packages (to say what
    would move)."""
    pins = dict(requested_pins or {})
    holders = pinned_by or (lambda _name, _version: [])
    if wanted is not None:  # releases the requirement itself excludes (torch==2.13.0) are not held back
        files = [f for f in files if f.version is not None and wanted.contains(f.version, prereleases=True)]
    pin = Version(pinned)
    usable = usable_wheels(files, tags, python_full, cutoff)
    best = newest(usable, prereleases or (pin.is_prerelease and prereleases))
    stable = newest(usable, False)
    if pin.is_prerelease and not prereleases:
        if stable is not None and stable > Version("0"):
            why = _why(name, str(stable), probe, python_label, pins, holders, python_full)
            if why is None:
                return None
            reason, hint, build = why
            return Finding(HeldBack(name, pinned, str(stable), requested, f"{name} {stable} " + reason, hint, True,
                                    target), build)
        return Finding(HeldBack(name, pinned, pinned, requested, "no stable release has a wheel for this target", "",
                                True, target))
    if best is None or best <= pin:
        newer_files = [f for f in files if (v := f.version) is not None and v > pin and not f.yanked
                       and (prereleases or not v.is_prerelease)]
        top = newest(newer_files, prereleases)
        if top is None:
            return None
        wheels = [f for f in newer_files if f.version == top and f.is_wheel]
        if wheels and all(f.requires_python and not _admits(f.requires_python, python_full) for f in wheels):
            needs = str(wheels[0].requires_python)
            later = ".".join(python_full.split(".")[:2]) + ".99"
            if python_label.count(".") != 1 or not _admits(needs, later):
                return None  # a release for another Python is not one for this target
            return Finding(HeldBack(name, pinned, str(top), requested, f"{name} {top} needs Python {needs}; the lock "
                                                                       f"targets Python {python_label}",
                                    _python_hint(python_label, needs), False, target))
        if not wheels:
            return Finding(HeldBack(name, pinned, str(top), requested, f"{name} {top} is published as an sdist only",
                                    f"--build {name} builds its wheel", False, target), ((name, f"=={top}"),))
        return None  # newer releases exist only for other platforms or Pythons
    why = _why(name, str(best), probe, python_label, pins, holders, python_full)
    if why is None:
        return None
    reason, hint, build = why
    return Finding(HeldBack(name, pinned, str(best), requested, f"{name} {best} " + reason, hint, False, target),
                   build)


def _why(name: str, version: str, probe: Callable[[str], str | dict[str, str]],
         python_label: str, pins: Mapping[str, str], holders: Callable[[str, str], list[str]], python_full: str
         ) -> tuple[str, str, tuple[tuple[str, str], ...]] | None:
    """(reason, hint, wheel-less packages) for not pinning ``name==version``; None when that release is not one
    for this target after all (it needs another Python, which an index without Requires-Python on its pages
    did not say)."""
    answer = probe(f"{name}=={version}")
    if isinstance(answer, dict):
        moved = [f"{other} {answer[other]} instead of {pin}" for other, pin in sorted(pins.items())
                 if other != name and other in answer and answer[other] != pin]
        if moved:
            return (f"resolves only with {', '.join(moved)}: the resolver prefers the newer of those",
                    f"require {name}>={version} to prefer it", ())
        return "also resolves; the resolver preferred another combination", f"require {name}>={version}", ()
    found = explain(answer)
    if found.wheel_less:
        needs = ", ".join(f"{n}{s}" for n, s in found.wheel_less)
        names = " ".join(f"--build {n}" for n, _ in found.wheel_less)
        return (f"needs {needs}, which has no wheel for this target", names + " builds it from its sdist",
                found.wheel_less)
    if found.python:
        later = ".".join(python_full.split(".")[:2]) + ".99"
        if python_label.count(".") != 1 or not _admits(found.python, later):
            return None  # a release for another Python is not held back on this one
        return (f"needs Python {found.python}; the lock targets Python {python_label}",
                _python_hint(python_label, found.python), ())
    held_by = holders(name, version)
    if held_by:  # a pinned package's own requirement excludes it (opentelemetry-sdk 1.45.2: api==1.45.2)
        return f"is excluded by {'; '.join(held_by[:3])}", "", ()
    return f"does not resolve: {summary(found.text) or 'the resolver gave no reason'}", "", ()


def _python_hint(label: str, needs: str) -> str:
    return (f"the lock reads Python {label} as {label}.0 so that it installs on every {label}; "
            f"--python-version {label}.N (N as {needs} needs) locks for a later patch level" if label.count(".") == 1
            else f"--python-version with a version {needs} allows")
