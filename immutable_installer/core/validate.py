"""Checks across a manifest's fields: one entry per package on each target, no blacklisted pin, files for every
platform a marker holds on, the install order consistent with dependencies, the set closed for every variant
and platform (every requirement pinned, at a version and with the extras it asks for). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from immutable_installer.core.errors import BlacklistedPin
from immutable_installer.core.fields import FieldReader
from immutable_installer.core.markers import active_requirements, applicable_requirements, marker_holds
from immutable_installer.core.model import Manifest, Package
from immutable_installer.core.names import canonical


def validate_semantics(manifest: Manifest, file: str | None = None) -> None:
    """Checks across fields: uniqueness, blacklist, order, closure, per-platform files, shim modes."""
    r = FieldReader(file)
    pos = {id(p): i for i, p in enumerate(manifest.packages)}
    group_pos = {g: i for i, g in enumerate(manifest.groups)}

    for variant in manifest.variants:  # one entry per name on each platform (entries may differ per platform)
        for platform in manifest.platforms:
            seen: dict[str, int] = {}
            for i, pkg in enumerate(manifest.packages):
                if variant.name in pkg.variants and pkg.file_for(platform.name) is not None:
                    if pkg.name in seen:
                        raise r.fail(f"packages[{i}].name", f"{pkg.name!r} is pinned twice for variant "
                                                            f"{variant.name!r} on {platform.name!r} (also "
                                                            f"packages[{seen[pkg.name]}])")
                    seen[pkg.name] = i

    for i, pkg in enumerate(manifest.packages):
        rule = manifest.blacklist_rule_for(pkg.name)
        if rule is not None:
            raise BlacklistedPin(f"packages[{i}].name", f"{pkg.name} {pkg.version} (pinned) is blacklisted "
                                 f"(forbidden: {rule.reason})", file=file)
        for platform in manifest.platforms:
            env_items = tuple(sorted(manifest.python.marker_environment(platform).items()))
            if pkg.marker is not None and pkg.file_for(platform.name) is None and marker_holds(pkg.marker, env_items):
                raise r.fail(f"packages[{i}].files", f"no wheel for platform {platform.name!r} although the "
                                                     f"marker {pkg.marker!r} holds there")

    pinned = {p.name for p in manifest.packages}
    for i, mod in enumerate(manifest.shims.blocked_modules):
        if mod.mode == "stub" and mod.name == "triton" and "torch" in pinned:
            raise r.fail(f"shims.blocked_modules[{i}].mode",
                         "'stub' is refused for triton when torch is pinned: a stub makes torch believe triton "
                         "exists and torch.compile / torch._inductor then fail; use 'absent'")

    for variant in manifest.variants:
        for platform in manifest.platforms:
            installed = {p.name: p for p in manifest.packages_for(variant.name, platform.name)}
            env = manifest.python.marker_environment(platform)
            for pkg in installed.values():
                i = pos[id(pkg)]
                for j, dep in applicable_requirements(pkg.requires_dist, pkg.extras, env):
                    where = f"packages[{i}].requires_dist[{j}]"
                    target = installed.get(canonical(dep.name))
                    if target is None:
                        raise r.fail(where, f"{pkg.name} {pkg.version} requires {dep} but {canonical(dep.name)!r} "
                                            f"is not pinned for variant {variant.name!r} on {platform.name!r} "
                                            "(the set is not closed)", hint="re-lock to add the missing package")
                    if not dep.specifier.contains(target.version, prereleases=True):
                        raise r.fail(where, f"{pkg.name} {pkg.version} requires {dep} but {target.name} "
                                            f"{target.version} is pinned")
                    missing = {canonical(e) for e in dep.extras} - {canonical(e) for e in target.extras}
                    if missing:
                        raise r.fail(where, f"{pkg.name} requires {dep} but {target.name} is pinned without "
                                            f"extras {sorted(missing)}")
                    mine = (group_pos[pkg.group], pkg.order)
                    theirs = (group_pos[target.group], target.order)
                    if theirs > mine and not _depends_on(target, pkg.name, installed, env):
                        raise r.fail(f"packages[{i}].order",
                                     f"{pkg.name} (group {pkg.group!r}, order {pkg.order}) comes before its "
                                     f"dependency {target.name} (group {target.group!r}, order {target.order})")


def _depends_on(start: Package, name: str, installed: Mapping[str, Package], env: Mapping[str, str]) -> bool:
    """Whether ``start`` (transitively) requires ``name``: a cycle makes a strict order impossible."""
    stack, seen = [start], {start.name}
    while stack:
        for req in active_requirements(stack.pop(), env):
            dep = canonical(req.name)
            if dep == name:
                return True
            if dep in installed and dep not in seen:
                seen.add(dep)
                stack.append(installed[dep])
    return False
