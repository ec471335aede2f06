"""`lock`: resolve a spec for each variant and target platform and write the frozen manifest.

uv resolves by default (immutable_installer/lock/uv_resolver.py): it evaluates markers for the *target* platform and
Python, so locks for Windows, macOS, aarch64 or another Python are right for that target. pip's resolver
(``install --dry-run --ignore-installed --only-binary :all: --report``) remains for the host only
(``--resolver pip``): it evaluates markers for the interpreter running it. Everything after resolution is pure
and shared: propagate requested extras, look for blacklisted packages with their chains on every target's
graph, assign order groups, merge variants and platforms into one manifest.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from immutable_installer.core.blacklist import Node, active, requirement_findings
from immutable_installer.core.errors import BlacklistError, ManifestError, ResolutionError, SpecError
from immutable_installer.core.events import HeldBack, Message, Phase, PhaseDone, Reporter, null_reporter
from immutable_installer.core.manifest import manifest_from_data
from immutable_installer.core.model import BuiltFrom, HeldBackNote, LockSettings, Manifest, Package, Platform, WheelFile
from immutable_installer.core.names import canonical
from immutable_installer.core.serialize import manifest_to_data
from immutable_installer.core.spec import LockSpec, SpecVariant, as_requirement
from immutable_installer.core.urls import mask_url
from immutable_installer.interpreters import find_interpreter
from immutable_installer.lock import held_back
from immutable_installer.lock.builds import BUILD_PASSES, LockBuilds, Sources, allowed
from immutable_installer.lock.held_back import Explanation, Finding, explain
from immutable_installer.lock.index_pages import project_files
from immutable_installer.lock.resolved import Resolved, Resolver, ResolveRequest
from immutable_installer.net import remember, with_credentials
from immutable_installer.runner import Runner

Resolutions = dict[tuple[str, str], dict[str, Resolved]]  # (variant, platform) -> name -> resolved
Extras = dict[tuple[str, str], dict[str, frozenset[str]]]


def _check_hashes(resolved: Mapping[str, Resolved], hashes: Mapping[str, frozenset[str]]) -> None:
    """``-r FILE`` with ``--hash``: every file pinned for a name it hashes is one of those files (uv chose among
    them already; pip's resolver is checked here)."""
    for name, listed in hashes.items():
        dist = resolved.get(name)
        if dist is not None and dist.sha256 not in listed:
            raise ResolutionError(f"{dist.filename} (sha256 {dist.sha256[:16]}...) is not one of the {len(listed)} "
                                  f"files the requirements file lists for {name}",
                                  hint="remove its --hash lines to lock afresh, or lock with the default resolver")


def _python_note(version: str) -> str:
    """How a target Python without a patch level is read, said in the lock's first line."""
    if version.count(".") != 1:
        return ""
    return f" (read as {version}.0 for Requires-Python and markers, so the lock installs on every {version})"


def _with_build_hint(exc: ResolutionError, found: Explanation, spec: LockSpec) -> ResolutionError:
    """The resolver's failure with its cause on one line, and ``--build`` named for a package without wheels."""
    names = [n for n, _ in found.wheel_less if not allowed(spec, canonical(n))]
    hint = (" ".join(f"--build {n}" for n in names) + " lets the lock build it from its sdist (its code runs, in a "
            "sandbox)") if names else exc.hint
    cause = found.text if found.text and found.text not in exc.message else ""
    message = exc.message.split(": ", 1)[0] + f": {cause[:600]}" if cause else exc.message
    return ResolutionError(message, hint=hint, details=exc.details)


@dataclass
class LockOptions:
    """Resolver inputs that are not part of the spec."""

    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    isolated: bool = True  # the user's pip configuration adds no source unless asked (--use-pip-config)
    prerelease: str | None = None  # None: what the manifest being re-locked recorded, else the default
    exclude_newer: str | None = None
    upgrade: bool = False
    upgrade_packages: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    resolver: str = "uv"  # uv: markers for the target; pip: only when the target is this interpreter
    hashes: dict[str, frozenset[str]] = field(default_factory=dict)  # -r FILE --hash: the files allowed per name
    adopt: bool = False  # -r FILE --adopt: the file's pins as they are, no resolution
    pylock: str | None = None  # --from pylock.toml: that lock's pins as they are, no resolution


# --------------------------------------------------------------------------------------------- pure part
def propagate_extras(resolved: Mapping[str, Resolved], top: Iterable[Requirement],
                     env: Mapping[str, str]) -> dict[str, frozenset[str]]:
    """Which extras of each package are in use: requested at the top, then by dependents, to a fixpoint."""
    extras: dict[str, set[str]] = {name: set() for name in resolved}
    for req in top:
        name = canonical(req.name)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue  # the requirement does not apply to this target: nor do its extras
        if name in extras:
            extras[name] |= {canonical(e) for e in req.extras}
    changed = True
    while changed:
        changed = False
        for name, dist in resolved.items():
            node = Node(name, dist.version, dist.requires_dist, frozenset(extras[name]))
            for req in active(node, env):
                dep = canonical(req.name)
                wanted = {canonical(e) for e in req.extras}
                if dep in extras and not wanted <= extras[dep]:
                    extras[dep] |= wanted
                    changed = True
    return {k: frozenset(v) for k, v in extras.items()}


def dependency_names(dist: Resolved, extras: frozenset[str], env: Mapping[str, str],
                     known: Iterable[str]) -> set[str]:
    node = Node(dist.name, dist.version, dist.requires_dist, extras)
    names = set(known)
    return {canonical(r.name) for r in active(node, env)} & names


def assign_groups(spec_groups: Sequence[tuple[str, Sequence[str]]], deps: Mapping[str, set[str]]
                  ) -> dict[str, tuple[str, int]]:
    """Group and order number for every package.

    Explicit members keep their group; every other package goes to the earliest group that is not before
    any of its dependencies. Order numbers follow a depth-first topological order (ties by name), so a
    package never comes before what it depends on (cycles excepted: pip installs a group in one call).
    """
    names = [g for g, _ in spec_groups]
    explicit = {canonical(p): i for i, (_, members) in enumerate(spec_groups) for p in members}
    topo: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str) -> None:
        stack = [(node, iter(sorted(deps.get(node, ()))))]
        state[node] = 1
        while stack:
            current, children = stack[-1]
            for child in children:
                if state.get(child, 0) == 0 and child in deps:
                    state[child] = 1
                    stack.append((child, iter(sorted(deps.get(child, ())))))
                    break
            else:
                stack.pop()
                state[current] = 2
                topo.append(current)

    for name in sorted(deps):
        if state.get(name, 0) == 0:
            visit(name)
    group: dict[str, int] = {}
    for name in topo:
        floor = max((group[d] for d in deps.get(name, ()) if d in group), default=0)
        if name in explicit:
            if explicit[name] < floor:
                culprit = next(d for d in sorted(deps[name]) if group.get(d, 0) == floor)
                raise SpecError("groups", f"{name!r} is in group {names[explicit[name]]!r} but depends on "
                                          f"{culprit!r} in the later group {names[floor]!r}",
                                hint="move it to a later group, or its dependency to an earlier one")
            group[name] = explicit[name]
        else:
            group[name] = floor
    position = {name: i for i, name in enumerate(topo)}
    ordered = sorted(topo, key=lambda n: (group[n], position[n]))
    return {name: (names[group[name]], i + 1) for i, name in enumerate(ordered)}


def variant_requirements(spec: LockSpec, sv: SpecVariant) -> list[str]:
    """The spec's requirements with torch-family pins made exact for the variant.

    ``torch==2.13.0`` becomes ``torch==2.13.0+cpu`` for a variant with a local label, and ``torch===2.13.0``
    (arbitrary equality: no local build may match) for one without: this is what stops pip from quietly
    taking a CPU wheel for a CUDA variant or the reverse.
    """
    out = []
    for text in spec.requirements:
        req = as_requirement(text)
        if canonical(req.name) in sv.variant.torch_packages and req.url is None:
            exact = [s for s in req.specifier if s.operator in ("==", "===")]
            if len(exact) != 1 or "*" in exact[0].version:
                raise SpecError("requirements", f"{req.name} must be pinned exactly (e.g. {req.name}==2.13.0): it "
                                                "is a torch-family package and its variant build depends on it")
            base = exact[0].version.split("+", 1)[0]
            pin = f"=={base}+{sv.local_label}" if sv.local_label else f"==={base}"
            extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
            marker = f"; {req.marker}" if req.marker else ""
            out.append(f"{req.name}{extras}{pin}{marker}")
        else:
            out.append(text)
    return out



def torch_build(resolved: Mapping[str, Resolved], env: Mapping[str, str]) -> tuple[str, str | None]:
    """The variant name and CUDA version of the torch build a resolution pinned: ``("cpu", None)`` for a CPU
    build (``+cpu``, or no CUDA runtime among its requirements on this platform), ``("cu130", "13.0")`` for a
    ``+cu130`` build or one that requires ``cuda-toolkit==13.0.*`` / ``nvidia-cuda-runtime-cu13==13.0.*``."""
    torch = resolved.get("torch")
    if torch is None:
        return "cpu", None
    local = torch.version.partition("+")[2]
    if local.startswith("cu") and local[2:].isdigit() and len(local) >= 4:
        return local, f"{local[2:-1]}.{local[-1]}"
    if local == "cpu":
        return "cpu", None
    for req in active(Node(torch.name, torch.version, torch.requires_dist, frozenset()), env):
        name = canonical(req.name)
        if name == "cuda-toolkit" or name.startswith("nvidia-cuda-runtime"):
            pins = [s.version for s in req.specifier if s.operator in ("==", "===", ">=", "~=")]
            parts = pins[0].split(".") if pins else []
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                return f"cu{parts[0]}{parts[1]}", f"{parts[0]}.{parts[1]}"
    return "cpu", None


def constraints_from(manifest: Manifest | None, variant: str, upgrade: bool,
                     upgrade_packages: Iterable[str], platform: str | None = None) -> list[str]:
    """The current pins of a variant (on ``platform``: a package may differ per platform) as constraints (what
    keeps a re-lock stable)."""
    if manifest is None or upgrade or variant not in manifest.variant_names():
        return []
    if platform is not None and platform not in {p.name for p in manifest.platforms}:
        platform = None  # a platform new to this lock: every pin of the variant that is not per platform
    skip = {canonical(n) for n in upgrade_packages}
    torch_family = set(manifest.variant(variant).torch_packages)
    names = [p.name for p in manifest.packages if variant in p.variants]
    out = []
    for pkg in manifest.packages:
        on_platform = platform is None or pkg.file_for(platform) is not None
        if platform is None and names.count(pkg.name) > 1:
            continue  # different per platform: no single pin to keep
        if variant in pkg.variants and pkg.name not in skip and on_platform:
            op = "===" if pkg.name in torch_family else "=="
            out.append(f"{pkg.name}{op}{pkg.version}")
    return sorted(set(out))



def build_manifest(spec: LockSpec, resolutions: Mapping[tuple[str, str], Mapping[str, Resolved]],
                   extras: Mapping[tuple[str, str], Mapping[str, frozenset[str]]],
                   sizes: Mapping[str, int | None], built: Mapping[str, BuiltFrom] | None = None) -> Manifest:
    """Merge per-(variant, platform) resolutions into one validated manifest (``built``: wheel sha256 -> the
    provenance of the wheels this lock built from sdists)."""
    deps: dict[str, set[str]] = {}
    for key, resolved in resolutions.items():
        env = spec.python.marker_environment(_platform(spec, key[1]))
        for name, dist in resolved.items():
            deps.setdefault(name, set()).update(dependency_names(dist, extras[key][name], env, resolved))
    placement = assign_groups([(g.name, g.packages) for g in spec.groups], deps)

    # entries keyed by everything that makes two pins the same pin
    entries: dict[tuple[Any, ...], dict[str, Any]] = {}
    for (variant, platform), resolved in sorted(resolutions.items()):
        sv = next(v for v in spec.variants if v.variant.name == variant)
        for name, dist in sorted(resolved.items()):
            direct = dist.direct_url is not None or dist.local_path is not None
            index_name = None if direct else sv.variant.index if name in sv.variant.torch_packages \
                else spec.default_index
            entry_id = (name, dist.version, dist.requires_dist, extras[(variant, platform)][name], index_name)
            entry = entries.setdefault(entry_id, {"variants": set(), "files": {}})
            entry["variants"].add(variant)
            files_seen = entry["files"].setdefault((dist.filename, dist.sha256, dist.direct_url or dist.public_url,
                                                    dist.local_path), set())
            files_seen.add(platform)
    # one file entry per (filename, sha) with all its platforms; a package must not differ per platform
    packages = []
    for entry_key, entry in entries.items():
        name, version, requires, pkg_extras, index_name = entry_key
        index = spec.index(index_name) if index_name is not None else None
        files = []
        for (filename, sha, direct_url, local_path), platforms in sorted(entry["files"].items(),
                                                                         key=lambda item: item[0][:2]):
            url = direct_url or (index.file_url.format(filename=urllib.parse.quote(filename))
                                 if index is not None and index.file_url else None)
            files.append(WheelFile(filename, sha, sizes.get(sha), tuple(sorted(platforms)), url, local_path,
                                   (built or {}).get(sha)))
        group, order = placement[name]
        packages.append(Package(name, version, group, order, index_name, tuple(sorted(entry["variants"])),
                                tuple(files), requires, tuple(sorted(pkg_extras))))
    packages = _merge_variant_entries(packages)
    manifest = Manifest(
        name=spec.name, python=spec.python, platforms=spec.platforms, indexes=spec.manifest_indexes(),
        default_index=spec.default_index, variants=tuple(v.variant for v in spec.variants),
        default_variant=spec.default_variant, groups=tuple(g.name for g in spec.groups),
        blacklist=spec.blacklist, packages=tuple(packages), verify=spec.verify, shims=spec.shims,
    )
    # round-trip through the strict loader: lock never writes what install would refuse
    try:
        return manifest_from_data(json.loads(json.dumps(manifest_to_data(manifest))))
    except ManifestError as exc:
        if "is not closed" not in exc.message:
            raise
        host = f"python {sys.version_info.major}.{sys.version_info.minor} on {sys.platform}"
        raise ManifestError("", f"the lock is not closed for its target: {exc.message}",
                            hint=f"pip's resolver evaluated markers for the interpreter running it ({host}), not for "
                                 f"python {spec.python.version} on the spec's platforms; lock on a machine of the "
                                 "target, or see docs/lock.md (locks for another platform or Python)") from None


def _merge_variant_entries(packages: list[Package]) -> list[Package]:
    """Entries equal but for their variants become one entry listing both."""
    merged: dict[tuple[Any, ...], Package] = {}
    for p in packages:
        key = (p.name, p.version, p.requires_dist, p.extras, p.index, p.files)
        if key in merged:
            old = merged[key]
            merged[key] = Package(p.name, p.version, p.group, p.order, p.index,
                                  tuple(sorted(set(old.variants) | set(p.variants))), p.files, p.requires_dist,
                                  p.extras, p.marker)
        else:
            merged[key] = p
    return list(merged.values())


def _platform(spec: LockSpec, name: str) -> Any:
    return next(p for p in spec.platforms if p.name == name)


# -------------------------------------------------------------------------------------------- the service
class Locker:
    """Runs a resolver (uv, or pip for this interpreter) per variant and platform, then builds the manifest."""

    def __init__(self, reporter: Reporter = null_reporter,
                 size_lookup: Callable[[str], int | None] | None = None,
                 reachable: Callable[[str], bool] | None = None) -> None:
        from immutable_installer.net import reachable as default_reachable
        from immutable_installer.net import remote_size

        self.runner = Runner()
        self.report = reporter
        self.size_lookup = size_lookup or remote_size
        self.reachable = reachable or default_reachable
        self._said_sources = False

    def lock(self, spec: LockSpec, options: LockOptions, existing: Manifest | None = None) -> Manifest:
        started = time.monotonic()
        recorded = existing.lock if existing is not None else LockSettings()
        settings = LockSettings(options.prerelease or recorded.prerelease,
                                options.exclude_newer or recorded.exclude_newer)  # a re-lock reproduces them
        options = replace(options, prerelease=settings.prerelease, exclude_newer=settings.exclude_newer)
        self.report(Phase("resolve", f"resolving {len(spec.requirements)} requirements with {options.resolver} for "
                                     f"Python {spec.python.version}{_python_note(spec.python.version)}"))
        builds = LockBuilds(spec, lambda: find_interpreter(spec.python.minor, spec.python.implementation),
                            self.report) if spec.build else None
        try:
            resolutions, extras, held = self._resolve_building(spec, options, existing, builds)
            provenance = builds.provenance() if builds is not None else {}
            if spec.name_variant_after_torch:
                spec, resolutions, extras = self._name_variant(spec, resolutions, extras)
            resolutions = self._with_facts(resolutions)
            self._check_shipped(spec, resolutions)
            sizes = self._sizes(resolutions, existing)  # while built wheels are still where uv found them
        finally:
            if builds is not None:
                builds.close()
        self._tell_held_back(spec, held)
        if spec.imports_from_wheels:
            primary, secondary = self._import_names(resolutions)
            spec = replace(spec, verify=replace(spec.verify, imports=primary, secondary_imports=secondary))
        self._tell_startup(spec, resolutions)
        notes = tuple(sorted({HeldBackNote(h.package, h.pinned, h.newest, h.reason, h.hint) for h in held
                              if h.requested}, key=lambda n: n.package))
        manifest = replace(build_manifest(spec, resolutions, extras, sizes, provenance), lock=settings,
                           held_back=notes)
        self.report(PhaseDone("resolve", time.monotonic() - started))
        return manifest

    def _resolve_building(self, spec: LockSpec, options: LockOptions, existing: Manifest | None,
                          builds: LockBuilds | None) -> tuple[Resolutions, Extras, list[HeldBack]]:
        """Resolve every target, then look for held-back requested packages. When the resolver names a
        version without a usable wheel that ``--build`` allows, build it and resolve again (a few rounds)."""
        for attempt in range(BUILD_PASSES + 1):
            current = options if builds is None else replace(options, find_links=[*options.find_links,
                                                                                  *builds.find_links()])
            try:
                resolutions, extras, requests = self._resolve_all(spec, current, existing)
            except ResolutionError as exc:
                found = explain("\n".join(exc.details))
                wanted = self._to_build(spec, found.wheel_less, builds)
                if builds is None or not wanted or attempt == BUILD_PASSES:
                    raise _with_build_hint(exc, found, spec) from None
                builds.build(wanted, self._build_sources(spec, current))
                continue
            findings = self._held_back(spec, current, requests, resolutions, existing)
            wanted = self._to_build(spec, tuple(w for f in findings for w in f.build), builds)
            if builds is None or not wanted or attempt == BUILD_PASSES:
                return resolutions, extras, [f.event for f in findings]
            builds.build(wanted, self._build_sources(spec, current))
        raise AssertionError("unreachable")  # pragma: no cover

    def _resolve_all(self, spec: LockSpec, options: LockOptions, existing: Manifest | None
                     ) -> tuple[Resolutions, Extras, dict[tuple[str, str], ResolveRequest]]:
        """One resolution per variant and platform, with the request each was made from."""
        variants = [v for v in spec.variants if not options.variants or v.variant.name in options.variants]
        variants.sort(key=lambda v: (v.variant.name != spec.default_variant, v.variant.name))
        resolutions: Resolutions = {}
        extras: Extras = {}
        requests: dict[tuple[str, str], ResolveRequest] = {}
        # per platform: the pins of the first variant, offered to the others so they agree (a package may have a
        # different version on another platform, so pins never travel between platforms)
        shared: dict[str, list[str]] = {}
        pending: dict[tuple[str, str], tuple[Callable[[], list[Resolved]], list[str], Platform]] = {}
        with ThreadPoolExecutor(max_workers=16) as pool:  # wheel metadata arrives while the next target resolves
            for sv in variants:
                requirements = variant_requirements(spec, sv)
                for platform in spec.platforms:
                    self.report(Message("info", f"resolving variant {sv.variant.name} for {platform.name}"))
                    constraints = constraints_from(existing, sv.variant.name, options.upgrade,
                                                   options.upgrade_packages, platform.name)
                    offered = shared.get(platform.name, [])
                    cons = constraints + [c for c in offered if canonical(Requirement(c).name) not in
                                          sv.variant.torch_packages]
                    key = (sv.variant.name, platform.name)
                    try:
                        requests[key] = self._request(spec, sv, platform, requirements, cons, options)
                        pins, finish = self._resolve(requests[key], options, pool)
                    except ResolutionError:
                        if not offered:
                            raise
                        requests[key] = self._request(spec, sv, platform, requirements, constraints, options)
                        pins, finish = self._resolve(requests[key], options, pool)
                    pending[key] = (finish, requirements, platform)
                    if platform.name not in shared:
                        shared[platform.name] = [f"{n}=={v}" for n, v in sorted(pins)
                                                 if n not in sv.variant.torch_packages]
            for key, (finish, requirements, platform) in pending.items():
                resolved = {r.name: r for r in finish()}
                _check_hashes(resolved, options.hashes)
                env = spec.python.marker_environment(platform)
                resolutions[key] = resolved
                if not resolved:  # a valid answer (uv and pip give it too), said aloud
                    self.report(Message("warn", f"nothing to install for variant {key[0]} on {key[1]}: no "
                                                "requirement applies to that target"))
                extras[key] = propagate_extras(resolved, [as_requirement(r) for r in requirements], env)
                self._check_blacklist(spec, resolved, extras[key], env)
        return resolutions, extras, requests

    @staticmethod
    def _to_build(spec: LockSpec, wheel_less: Iterable[tuple[str, str]], builds: LockBuilds | None
                  ) -> list[tuple[str, str]]:
        """The wheel-less packages ``--build`` allows and this lock has not built yet."""
        done = set() if builds is None else {p.sdist for p in builds.provenance().values()}
        out = []
        for name, specifier in dict(wheel_less).items():
            if allowed(spec, canonical(name)) and not any(canonical(s.split("-")[0]) == canonical(name) and
                                                           specifier.startswith("==") and specifier[2:] in s
                                                           for s in done):
                out.append((canonical(name), specifier))
        return out

    def _build_sources(self, spec: LockSpec, options: LockOptions) -> Sources:
        sv = next(v for v in spec.variants if v.variant.name == spec.default_variant)
        index_url, extra = self._sources(spec, sv, options)
        return Sources(index_url, tuple(extra), tuple(options.find_links), options.no_index)

    def _held_back(self, spec: LockSpec, options: LockOptions, requests: Mapping[tuple[str, str], ResolveRequest],
                   resolutions: Resolutions, existing: Manifest | None = None) -> list[Finding]:
        """Each requested package pinned below its newest release for the target (or at a pre-release), and why;
        and, for a lock whose Python is ``X.Y`` on an ``X.Y.Z`` interpreter, what a later patch level would
        have pinned instead (``X.Y`` is read as ``X.Y.0``)."""
        from immutable_installer.lock.uv_resolver import target_tags

        if options.adopt or options.pylock:
            return []  # an adopted lock is taken as it is: no resolver to ask
        findings: list[Finding] = []
        seen: set[tuple[str, str]] = set()
        prereleases = options.prerelease == "allow"
        with ThreadPoolExecutor(max_workers=8) as pool:
            for key, request in sorted(requests.items()):
                resolved = resolutions[key]
                requested = sorted((d for d in resolved.values() if d.requested and (d.name, d.version) not in seen),
                                   key=lambda d: d.name)
                if not requested:
                    continue
                sources = [u for u in (request.index_url, *request.extra_index_urls) if u and not request.no_index]
                pages = dict(zip((d.name for d in requested), pool.map(
                    lambda d, s=sources, r=request: project_files(d.name, s, r.find_links), requested), strict=True))
                tags = target_tags(spec.python.minor, request.platform)
                full = spec.python.marker_environment(request.platform)["python_full_version"]
                constrained = {canonical(Requirement(c).name) for c in request.constraints}

                def probe(extra: str, request: ResolveRequest = request) -> str | dict[str, str]:
                    return self._probe(request, extra, options)

                pins = {d.name: d.version for d in resolved.values() if d.requested}
                env = spec.python.marker_environment(request.platform)
                wanted: dict[str, SpecifierSet] = {}
                for text in request.requirements:
                    req = as_requirement(text)
                    name = canonical(req.name)
                    wanted[name] = wanted.get(name, SpecifierSet()) & req.specifier

                def pinned_by(name: str, version: str, resolved: Mapping[str, Resolved] = resolved,
                              env: Mapping[str, str] = env) -> list[str]:
                    """The pinned packages whose own requirement on ``name`` excludes ``version``."""
                    out = []
                    for other in sorted(resolved.values(), key=lambda item: item.name):
                        for req in active(Node(other.name, other.version, other.requires_dist, frozenset()), env):
                            if canonical(req.name) == name and not req.specifier.contains(version, prereleases=True):
                                out.append(f"{other.name} {other.version} (pinned), which requires {req}")
                    return out

                noted = {(n.package, n.pinned): n for n in (existing.held_back if existing is not None else ())}
                for dist in requested:
                    seen.add((dist.name, dist.version))
                    note = noted.get((dist.name, dist.version))
                    if dist.name in constrained:  # a re-lock keeps the pin, and says again what the lock said then
                        if note is not None:
                            findings.append(Finding(HeldBack(note.package, note.pinned, note.newest, True,
                                                             note.reason, note.hint, False, request.label)))
                        continue
                    found = held_back.check(dist.name, dist.version, True, pages[dist.name], tags, full,
                                            spec.python.version, prereleases, options.exclude_newer, probe,
                                            request.label, pins, pinned_by, wanted.get(dist.name))
                    if found is not None:
                        findings.append(found)
        return findings + self._patch_level(spec, options, requests, resolutions)

    def _patch_level(self, spec: LockSpec, options: LockOptions,
                     requests: Mapping[tuple[str, str], ResolveRequest], resolutions: Resolutions) -> list[Finding]:
        """A lock for ``X.Y`` evaluates Requires-Python for ``X.Y.0``: what this interpreter's ``X.Y.Z`` would have
        pinned instead is named (soupsieve 4.1 needs Python >=3.11.5), never changed silently."""
        here = f"{sys.version_info.major}.{sys.version_info.minor}"
        if spec.python.version != here or sys.version_info.micro == 0 or options.resolver != "uv" or not requests:
            return []
        full = f"{here}.{sys.version_info.micro}"
        key, request = sorted(requests.items())[0]
        try:
            later = dict(self._resolver(options.resolver).resolve(replace(request, python_version=full)).pins)
        except ResolutionError:
            return []
        out = []
        for name, dist in sorted(resolutions[key].items()):
            newer = later.get(name)
            if newer is not None and Version(newer) > Version(dist.version):
                out.append(Finding(HeldBack(
                    name, dist.version, newer, dist.requested,
                    f"{name} {newer} needs a later Python {here} than {here}.0 (Python {full} would pin it)",
                    f"the lock reads --python-version {here} as {here}.0 so that it installs on every {here}; "
                    f"--python-version {full} locks for this interpreter's patch level", False, request.label)))
        return out

    def _probe(self, request: ResolveRequest, extra: str, options: LockOptions) -> str | dict[str, str]:
        """The resolver's error output for the same request with one more requirement, or its pins when it
        resolves."""
        try:
            pending = self._resolver(options.resolver).resolve(
                replace(request, requirements=[*request.requirements, extra]))
        except ResolutionError as exc:
            return "\n".join(exc.details)
        return dict(pending.pins)

    def _tell_held_back(self, spec: LockSpec, held: list[HeldBack]) -> None:
        """Every held-back package is said (the ``held_back`` event); with ``--strict`` a requested one is exit 1."""
        for event in held:
            self.report(event)
        strict = [h for h in held if h.requested]
        if spec.strict and strict:
            raise ResolutionError(f"--strict: {len(strict)} requested package(s) held back: {strict[0].text}",
                                  details=[h.text for h in strict],
                                  hint=strict[0].hint or "pin the version you accept, or lock without --strict")

    def _name_variant(self, spec: LockSpec, resolutions: dict[tuple[str, str], dict[str, Resolved]],
                      extras: dict[tuple[str, str], dict[str, frozenset[str]]]) -> tuple[
                          LockSpec, dict[tuple[str, str], dict[str, Resolved]],
                          dict[tuple[str, str], dict[str, frozenset[str]]]]:
        """Plain requirements have one variant: name it after the torch build it pinned, so a CUDA build of
        torch is never called ``cpu`` (``--variant auto`` would otherwise install CUDA wheels on a CPU box)."""
        (old, platform), resolved = next(iter(sorted(resolutions.items())))
        name, cuda = torch_build(resolved, spec.python.marker_environment(_platform(spec, platform)))
        torch_family = ("torch",) if "torch" in resolved else ()
        if name == old and not torch_family:
            return spec, resolutions, extras
        sv = spec.variants[0]
        variant = replace(sv.variant, name=name, cuda=cuda, torch_packages=torch_family)
        spec = replace(spec, variants=(replace(sv, variant=variant),), default_variant=name)
        if name != old:
            pinned = resolved["torch"].version
            self.report(Message("info", f"variant named {name!r} after the torch build it pins ({pinned}"
                                        + (f", CUDA {cuda})" if cuda else ")")))
        return (spec, {(name, p): r for (_, p), r in resolutions.items()},
                {(name, p): e for (_, p), e in extras.items()})

    def _with_facts(self, resolutions: dict[tuple[str, str], dict[str, Resolved]]
                    ) -> dict[tuple[str, str], dict[str, Resolved]]:
        """Every resolved wheel with its facts (import names, start-up code): uv's answers carry them already,
        pip's are read here (lock/wheel_facts.py, cached by sha256)."""
        from immutable_installer.lock.wheel_facts import cached_facts

        missing = {d.sha256: d for r in resolutions.values() for d in r.values() if d.facts is None}
        if not missing:
            return resolutions
        with ThreadPoolExecutor(max_workers=16) as pool:
            read = dict(zip(missing, pool.map(lambda d: cached_facts(
                {"url": d.source_url, "size": d.size, "hashes": {"sha256": d.sha256}}, d.name), missing.values()),
                strict=True))
        return {key: {n: d if d.facts is not None else replace(d, facts=read[d.sha256]) for n, d in r.items()}
                for key, r in resolutions.items()}

    def _import_names(self, resolutions: Mapping[tuple[str, str], Mapping[str, Resolved]]
                      ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What `verify` imports when the spec does not say: the modules the requested distributions are known
        by (dists/import_names.py: ``pyyaml`` gives ``yaml``, never ``scikit_learn.libs``), and their other
        top-level packages as secondary imports (a failure there is a warning)."""
        resolved = next(iter(sorted(resolutions.items())))[1]
        requested = sorted((d for d in resolved.values() if d.requested), key=lambda d: d.name)
        primary = sorted({n for d in requested if d.facts for n in d.facts.imports.primary})
        secondary = sorted({n for d in requested if d.facts for n in d.facts.imports.secondary} - set(primary))
        self.report(Message("info", f"verify will import {', '.join(primary) or 'nothing'}"
                                    + (f" (and try {', '.join(secondary)}: a failure there is a warning)"
                                       if secondary else "")
                                    + "; lock --verify-import NAME (or verify.imports in a spec) chooses"))
        return tuple(primary), tuple(secondary)

    def _tell_startup(self, spec: LockSpec, resolutions: Mapping[tuple[str, str], Mapping[str, Resolved]]) -> None:
        """Say now what `install` will refuse (exit 7): a pinned wheel that runs code at every Python start and
        is not allowed by name, with the option that allows it."""
        seen: set[tuple[str, str]] = set()
        for resolved in resolutions.values():
            for dist in sorted(resolved.values(), key=lambda d: d.name):
                for name, what in sorted((dist.facts.startup if dist.facts else {}).items()):
                    if name in spec.verify.allowed_pth or (dist.name, name) in seen:
                        continue
                    seen.add((dist.name, name))
                    self.report(Message("warn", f"{dist.name} {dist.version} ships {name}, which runs code at every "
                                                f"Python start ({what}); install will refuse it (exit 7) unless you "
                                                f"allow it: lock --allow-pth {name} (or verify.allowed_pth in the "
                                                "spec)"))

    @staticmethod
    def _check_shipped(spec: LockSpec, resolutions: Resolutions) -> None:
        """What the pinned wheels ship, against the blacklist as the scan applies it: a wheel of another name that
        installs a forbidden module (a renamed fork shipping ``torchao/``), or calls itself a forbidden name in its
        METADATA or a ``.dist-info`` folder, is exit 3 now, not at install."""
        if not spec.blacklist:
            return
        from immutable_installer.core.blacklist import identity_findings, module_findings

        for resolved in resolutions.values():
            labels = {n: f"{d.name} {d.version}" for n, d in resolved.items()}
            findings = module_findings({n: d.facts.top_level for n, d in resolved.items() if d.facts}, labels,
                                       spec.blacklist)
            findings += identity_findings({n: d.facts.names for n, d in resolved.items() if d.facts}, labels,
                                          spec.blacklist)
            if findings:
                lines = [f.describe() for f in findings]
                raise BlacklistError(f"the resolution contains a blacklisted package: {lines[0]}", details=lines,
                                     chains=[f.names() for f in findings])

    def _check_blacklist(self, spec: LockSpec, resolved: Mapping[str, Resolved],
                         extras: Mapping[str, frozenset[str]], env: Mapping[str, str]) -> None:
        if not spec.blacklist:
            return
        nodes = {n: Node(n, d.version, d.requires_dist, extras[n]) for n, d in resolved.items()}
        roots = [n for n, d in resolved.items() if d.requested]
        findings = requirement_findings(nodes, env, spec.blacklist, roots)
        direct = [d for d in resolved.values() if d.requested and any(b.matches(d.name) for b in spec.blacklist)]
        lines = [f.describe() for f in findings]
        lines += [f"{d.name} {d.version} (requested directly)" for d in direct]
        if lines:
            raise BlacklistError(f"the resolution contains a blacklisted package: {lines[0]}", details=lines)

    def _sources(self, spec: LockSpec, sv: SpecVariant, options: LockOptions) -> tuple[str | None, list[str]]:
        """The index and extra indexes to resolve from; an unreachable variant index is dropped up front."""
        if options.no_index:
            return None, list(options.extra_index_urls)
        # credentials: those in a URL given here are passed on as they are; a spec index's come from its
        # variables (IMMUTABLE_INSTALLER_INDEX_<NAME>_USERNAME / _PASSWORD); netrc is read by uv itself
        for url in [options.index_url, *options.extra_index_urls]:
            if url:
                remember(url)
        for index in spec.indexes:
            remember(index.url, index.name)
        index_url = options.index_url or with_credentials(spec.index(spec.default_index).url)
        extra = list(options.extra_index_urls)
        variant_url = with_credentials(spec.index(sv.variant.index).url)
        if variant_url != index_url:
            if self.reachable(variant_url):
                extra.append(variant_url)
            else:
                self.report(Message("warn", f"index {sv.variant.index} ({mask_url(variant_url)}) is unreachable; "
                                            + ("resolving from your configured pip sources instead"
                                               if not options.isolated else
                                               "--use-pip-config would resolve from your configured pip sources (a "
                                               "mirror you trust)")))
        return index_url, extra

    def _request(self, spec: LockSpec, sv: SpecVariant, platform: Platform, requirements: list[str],
                 constraints: list[str], options: LockOptions) -> ResolveRequest:
        """What one target is resolved from: its requirements, constraints and sources."""
        index_url, extra = self._sources(spec, sv, options)
        find_links = list(options.find_links)
        if options.resolver == "uv" and not options.isolated:
            # the user's pip configuration adds sources (mirrors, find-links), as it does for pip itself
            from immutable_installer import net_settings

            config = net_settings.current().pip  # pip is asked once per process
            if not self._said_sources:  # said once per lock, not once per variant and platform
                self._said_sources = True
                added = config.get("extra-index-url", "").split() + config.get("find-links", "").split()
                self.report(Message("warn", "--use-pip-config: your pip configuration adds these sources: "
                                            + (", ".join(mask_url(u) for u in added) or "none")))
            extra += [u for u in config.get("extra-index-url", "").split() if u not in extra and u != index_url]
            find_links += [f for f in config.get("find-links", "").split() if f not in find_links]
        return ResolveRequest(spec.python.version, spec.python.implementation, platform, requirements,
                              constraints, index_url, extra, find_links, options.no_index, options.isolated,
                              f"variant {sv.variant.name} for {platform.name}", options.prerelease,
                              options.exclude_newer, options.hashes)

    def _resolve(self, request: ResolveRequest, options: LockOptions, pool: Executor
                 ) -> tuple[list[tuple[str, str]], Callable[[], list[Resolved]]]:
        """The pinned versions now, and a function that gives the full resolution (metadata may still be
        arriving on ``pool``)."""
        pending = self._resolver(options.resolver, options).resolve(request, pool)
        for warning in pending.warnings:
            self.report(Message("warn", f"{request.label}: {warning}"))
        return pending.pins, pending.finish

    @staticmethod
    def _resolver(name: str, options: LockOptions | None = None) -> Resolver:
        if options is not None and options.pylock:
            from pathlib import Path

            from immutable_installer.lock.adopt import PylockResolver

            return PylockResolver(Path(options.pylock))
        if options is not None and options.adopt:
            from immutable_installer.lock.adopt import PinnedResolver

            return PinnedResolver()
        if name == "pip":
            from immutable_installer.lock.pip_resolver import PipResolver

            return PipResolver()
        from immutable_installer.lock.uv_resolver import UvResolver

        return UvResolver()

    def _sizes(self, resolutions: Mapping[tuple[str, str], Mapping[str, Resolved]],
               existing: Manifest | None) -> dict[str, int | None]:
        known = {f.sha256: f.size for p in (existing.packages if existing else ()) for f in p.files}
        wanted = {}
        for resolved in resolutions.values():
            for dist in resolved.values():
                if known.get(dist.sha256) is None and dist.size is not None:
                    known[dist.sha256] = dist.size  # the resolver told us (uv's lock carries sizes)
                elif known.get(dist.sha256) is None:
                    wanted[dist.sha256] = dist.source_url
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = dict(zip(wanted, pool.map(self.size_lookup, wanted.values()), strict=True))
        return {**known, **found}
