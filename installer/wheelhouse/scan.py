"""`scan`: the gate before every install. Installs nothing.

Checks, in this order, so the most useful message wins: every needed wheel present with its sha256 (exit 4),
no blacklisted package by any route with its provenance chain (exit 3), and the wheels' *real* METADATA
closed over the pinned set (exit 2: the manifest does not describe its own wheels), and no path installed by
two wheels with different contents (exit 6: pip would let the later one overwrite the earlier silently), and no
``.pth`` file with an executable line the manifest does not allow by name (exit 7: code at every start-up).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

from installer.core import blacklist
from installer.core.errors import BlacklistError, FileClashError, ManifestError, StartupCodeError
from installer.core.events import Message, Phase, PhaseDone, Reporter, null_reporter
from installer.core.manifest import Manifest, Package
from installer.core.names import canonical
from installer.wheelhouse.clashes import find_clashes
from installer.wheelhouse.download import Audit, needed_wheels, require_complete
from installer.wheelhouse.wheels import WheelInfo, installed_files, read_wheel, startup_code


@dataclass
class ScanResult:
    """What a clean scan saw (a failing scan raises instead)."""

    audit: Audit
    wheels: dict[str, WheelInfo] = field(default_factory=dict)
    findings: list[blacklist.Finding] = field(default_factory=list)
    seconds: float = 0.0


def scan(manifest: Manifest, wheelhouse: Path, variant: str, platform: str,
         reporter: Reporter = null_reporter) -> ScanResult:
    """Run every check; raise WheelhouseError, BlacklistError or ManifestError on the first failing kind."""
    started = time.monotonic()
    reporter(Phase("scan", f"{len(manifest.packages_for(variant, platform))} wheels, variant {variant}"))
    state = require_complete(wheelhouse, manifest, variant, platform)
    needed = needed_wheels(manifest, variant, platform)
    wheels: dict[str, WheelInfo] = {}
    for item in needed:
        try:
            wheels[item.package.name] = read_wheel(wheelhouse / item.wheel.filename)
        except ValueError as exc:
            raise ManifestError("", f"{exc}", hint="delete the file and run `download` again") from None

    env = manifest.python.marker_environment(manifest.platform(platform))
    pinned = {n.package.name: n.package for n in needed}
    nodes = {name: blacklist.Node(name, pinned[name].version, info.requires_dist, frozenset(pinned[name].extras))
             for name, info in wheels.items()}
    rules = manifest.blacklist
    findings = blacklist.pinned_findings(nodes.values(), rules)
    findings += blacklist.requirement_findings(nodes, env, rules)
    findings += blacklist.stray_findings(state.strays, rules)
    findings += blacklist.module_findings({n: i.top_level for n, i in wheels.items()},
                                          {n: nodes[n].label for n in nodes}, rules)
    if findings:
        lines = [f.describe() for f in findings]
        raise BlacklistError(f"blacklisted package found: {lines[0]}", details=lines)

    for name, node in sorted(nodes.items()):
        for req in blacklist.active(node, env):
            _check_requirement(name, req, pinned)
    startup = [f"{n.wheel.filename} ships {pth}, which runs at every Python start: {lines[0][:100]}"
               for n in needed for pth, lines in sorted(startup_code(wheelhouse / n.wheel.filename).items())
               if pth not in manifest.verify.allowed_pth]
    if startup:
        raise StartupCodeError(f"start-up code not allowed by the manifest: {startup[0]}", details=startup)
    clashes = find_clashes({n.wheel.filename: installed_files(wheelhouse / n.wheel.filename) for n in needed})
    if clashes:
        lines = [c.describe() for c in clashes]
        raise FileClashError(f"two wheels would install the same file: {lines[0]}", details=lines)
    if state.strays:
        reporter(Message("info", f"{len(state.strays)} other wheel(s) in the wheelhouse are not used by this variant"))
    seconds = time.monotonic() - started
    reporter(PhaseDone("scan", seconds))
    return ScanResult(state, wheels, [], seconds)


def _check_requirement(name: str, req: Requirement, pinned: Mapping[str, Package]) -> None:
    dep = canonical(req.name)
    target = pinned.get(dep)
    if target is None:
        raise ManifestError("packages", f"the wheel of {name} requires {req}, which the manifest does not pin "
                                        "(its real METADATA differs from the manifest)",
                            hint="re-lock the manifest")
    if not req.specifier.contains(target.version, prereleases=True):
        raise ManifestError("packages", f"the wheel of {name} requires {req} but {dep} {target.version} is pinned")
