"""`scan`: the gate before every install. Installs nothing.

Checks, in this order, so the most useful message wins: every needed wheel present with its sha256 (exit 4),
no blacklisted package by any route with its provenance chain (exit 3), and the wheels' *real* METADATA
closed over the pinned set (exit 2: the manifest does not describe its own wheels), and no path installed by
two wheels with different contents (exit 6: pip would let the later one overwrite the earlier silently), and no
``.pth`` file with an executable line the manifest does not allow by name (exit 7: code at every start-up).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from packaging.requirements import Requirement

from immutable_installer.core import blacklist
from immutable_installer.core.errors import (
    BlacklistError,
    FileClashError,
    ManifestError,
    StartupCodeError,
    UnsoundWheelError,
    WheelhouseError,
)
from immutable_installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.generation_files import tool_owned
from immutable_installer.core.model import Package
from immutable_installer.core.names import canonical
from immutable_installer.core.selection import Needed, Selection
from immutable_installer.dists.hashing import sha256_file
from immutable_installer.dists.wheel import WheelBytes, WheelInfo, open_wheel, verify_contents
from immutable_installer.wheelhouse.clashes import find_clashes


@dataclass
class ScanResult:
    """What a clean scan saw (a failing scan raises instead)."""

    wheels: dict[str, WheelInfo] = field(default_factory=dict)  # by package name
    strays: list[str] = field(default_factory=list)
    seconds: float = 0.0


def strays_of(wheelhouse: Path, needed: Sequence[Needed]) -> list[str]:
    """Wheel files in the wheelhouse that the selection does not use (a blacklisted one is still refused)."""
    wanted = {n.wheel.filename for n in needed}
    if not wheelhouse.is_dir():
        return []
    return sorted(p.name for p in wheelhouse.iterdir() if p.suffix == ".whl" and p.name not in wanted)


def require_hashes(needed: Sequence[Needed], infos: Mapping[str, WheelInfo], wheelhouse: Path) -> None:
    """Every needed wheel was read and has its pinned sha256, else exit 4 listing every problem."""
    problems = []
    for item in needed:
        info = infos.get(item.package.name)
        if info is None:
            problems.append(f"missing: {item.wheel.filename} ({item.package.name} {item.package.version})")
        elif info.sha256 != item.wheel.sha256:
            problems.append(f"sha256 mismatch: {item.wheel.filename} (expected {item.wheel.sha256[:16]}..., "
                            f"found {info.sha256[:16]}...)")
    if problems:
        raise WheelhouseError(f"the wheelhouse {wheelhouse} is incomplete: {len(problems)} problem(s), first: "
                              f"{problems[0]}", details=problems,
                              hint="run `immutable-installer download` with network, then retry")


def read_needed(needed: Sequence[Needed], wheelhouse: Path,
                on_read: Callable[[Needed, WheelBytes], None] | None = None,
                reporter: Reporter = null_reporter,
                known: Mapping[str, WheelInfo] | None = None, contents: bool = False) -> dict[str, WheelInfo]:
    """Read every needed wheel once (hash and metadata from the same bytes); a missing file is left out.

    ``known`` (package name -> facts) are wheels read before with exactly the pinned sha256: the ones the store
    holds, whose entries kept what was read when they were built. They are not read again (the wheelhouse
    file may even be gone). ``on_read`` sees each wheel's bytes while they are in memory (the store fills its
    entries from them); ``reporter`` gets one ``scan`` progress event per wheel (a front end's determinate bar).
    With ``contents`` every member is checked against its RECORD hash too (`scan`, `install --dry-run`: what the
    store checks while it unpacks, so the verdict is install's)."""
    infos: dict[str, WheelInfo] = {}
    for done, item in enumerate(needed, 1):
        held = (known or {}).get(item.package.name)
        if held is not None and held.sha256 == item.wheel.sha256:
            infos[item.package.name] = held
            reporter(Progress("scan", done, len(needed), "wheels",
                              f"{item.wheel.filename} (scanned from its store entry)"))
            continue
        try:
            opened = open_wheel(wheelhouse / item.wheel.filename)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise WheelhouseError(f"{item.wheel.filename} cannot be read ({exc.strerror})",
                                  hint="check the wheelhouse's permissions") from None
        except ValueError as exc:
            if sha256_file(wheelhouse / item.wheel.filename) != item.wheel.sha256:
                raise WheelhouseError(f"sha256 mismatch: {item.wheel.filename} is not the pinned file",
                                      hint="run `immutable-installer download` to fetch it again") from None
            raise UnsoundWheelError(f"{item.wheel.filename} is the pinned file but not a sound wheel: {exc}") from None
        if contents and opened.info.sha256 == item.wheel.sha256:
            found = verify_contents(opened)
            if found:
                opened = WheelBytes(replace(opened.info, problems=(*opened.info.problems, *found)), opened.data)
        infos[item.package.name] = opened.info
        if on_read is not None and opened.info.sha256 == item.wheel.sha256:
            on_read(item, opened)
        reporter(Progress("scan", done, len(needed), "wheels", item.wheel.filename))
    return infos


def scan(selection: Selection, wheelhouse: Path, reporter: Reporter = null_reporter) -> ScanResult:
    """Read every needed wheel once and run every check, each member against its RECORD hash included; raise on
    the first failing kind."""
    started = time.monotonic()
    reporter(Phase("scan", f"{len(selection.wheels)} wheels, variant {selection.variant}"))
    infos = read_needed(selection.wheels, wheelhouse, reporter=reporter, contents=True)
    result = check(selection, infos, wheelhouse, reporter)
    result.seconds = time.monotonic() - started
    reporter(PhaseDone("scan", result.seconds))
    return result


def check(selection: Selection, infos: Mapping[str, WheelInfo], wheelhouse: Path,
          reporter: Reporter = null_reporter) -> ScanResult:
    """Every check on wheels already read (``infos``: package name -> what its wheel holds), in the order
    that makes the most useful message win: hashes (4), blacklist (3), closure (2), start-up code (7),
    clashes (6)."""
    manifest, needed = selection.manifest, selection.wheels
    require_hashes(needed, infos, wheelhouse)
    strays = strays_of(wheelhouse, needed)
    wheels = {n.package.name: infos[n.package.name] for n in needed}
    env = dict(selection.environment)
    pinned = {n.package.name: n.package for n in needed}
    nodes = {name: blacklist.Node(name, pinned[name].version, info.requires_dist, frozenset(pinned[name].extras))
             for name, info in wheels.items()}
    rules = manifest.blacklist
    findings = blacklist.pinned_findings(nodes.values(), rules)
    findings += blacklist.requirement_findings(nodes, env, rules)
    findings += blacklist.stray_findings(strays, rules)
    findings += blacklist.module_findings({n: i.top_level for n, i in wheels.items()},
                                          {n: nodes[n].label for n in nodes}, rules)
    findings += blacklist.identity_findings({n: i.claimed_names for n, i in wheels.items()},
                                            {n: nodes[n].label for n in nodes}, rules)
    if findings:
        lines = [f.describe() for f in findings]
        raise BlacklistError(f"blacklisted package found: {lines[0]}", details=lines,
                             chains=[f.names() for f in findings])
    _check_identity(needed, wheels)
    _check_sound(needed, wheels)

    for name, node in sorted(nodes.items()):
        for req in blacklist.active(node, env):
            _check_requirement(name, req, pinned)
    startup = [f"{n.wheel.filename} ships {name}, which runs at every Python start: {what[0]}"
               for n in needed for name, what in sorted(wheels[n.package.name].startup.items())
               if name not in manifest.verify.allowed_pth]
    if startup:
        raise StartupCodeError(f"start-up code not allowed by the manifest: {startup[0]}", details=startup)
    owned = [f"{n.wheel.filename} ships {path.partition('/')[2]} ({path.partition('/')[0]}), a file the tool "
             "writes into every environment itself" for n in needed for path in sorted(wheels[n.package.name].installed)
             if tool_owned(path)]
    if owned:
        raise FileClashError(f"a wheel would overwrite the tool's own file: {owned[0]}", details=owned,
                             hint="this wheel cannot be installed by immutable-installer; pin another release")
    folded = dict(selection.environment).get("sys_platform") in ("win32", "darwin")  # case-insensitive files
    clashes = find_clashes({n.wheel.filename: wheels[n.package.name].installed for n in needed}, folded)
    if clashes:
        lines = [c.describe() for c in clashes]
        raise FileClashError(f"two wheels would install the same file: {lines[0]}", details=lines)
    if strays:
        reporter(Message("info", f"{len(strays)} other wheel(s) in the wheelhouse are not used by this variant"))
    return ScanResult(wheels, strays)


def _check_identity(needed: Sequence[Needed], wheels: Mapping[str, WheelInfo]) -> None:
    """A wheel's file name, METADATA and .dist-info folder name one distribution: the one pinned (exit 2)."""
    wrong = [f"{n.wheel.filename} is filed as {n.package.name} but calls itself "
             f"{', '.join(x for x in wheels[n.package.name].claimed_names if x != n.package.name)} inside"
             for n in needed if set(wheels[n.package.name].claimed_names) != {n.package.name}]
    if wrong:
        raise ManifestError("packages", f"a wheel is not the distribution it is filed as: {wrong[0]}",
                            hint="its file name, METADATA and .dist-info folder must name one distribution; do not "
                                 "install it")


def _check_sound(needed: Sequence[Needed], wheels: Mapping[str, WheelInfo]) -> None:
    """What install would refuse while unpacking, refused here the same way (exit 4)."""
    lines = [f"{n.wheel.filename}: {p}" for n in needed for p in wheels[n.package.name].problems]
    if lines:
        raise UnsoundWheelError(f"a wheel is not sound: {lines[0]}", details=lines)


def _check_requirement(name: str, req: Requirement, pinned: Mapping[str, Package]) -> None:
    dep = canonical(req.name)
    target = pinned.get(dep)
    if target is None:
        raise ManifestError("packages", f"the wheel of {name} requires {req}, which the manifest does not pin "
                                        "(its real METADATA differs from the manifest)",
                            hint="re-lock the manifest")
    if not req.specifier.contains(target.version, prereleases=True):
        raise ManifestError("packages", f"the wheel of {name} requires {req} but {dep} {target.version} is pinned")
