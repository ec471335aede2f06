"""Blacklist rules + dependency metadata -> findings with provenance chains. Pure.

A finding is only useful if it says *who* pulls the forbidden package in, so every route produces the
full chain from a pinned root: ``peft 0.17.0 -> torchao>=0.5 (forbidden: ...)``.
Routes: pinned directly, required through Requires-Dist (markers and requested extras honoured), a stray
wheel lying in the wheelhouse, and an importable top-level package shipped inside some other wheel.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from packaging.requirements import Requirement

from immutable_installer.core.markers import applicable_requirements
from immutable_installer.core.model import BlacklistRule
from immutable_installer.core.names import canonical


@dataclass(frozen=True)
class Node:
    """A distribution in the graph: its version, requirements and the extras requested of it."""

    name: str
    version: str
    requires: tuple[str, ...] = ()
    extras: frozenset[str] = field(default_factory=frozenset)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass(frozen=True)
class Finding:
    """One way a blacklisted package would get in."""

    package: str
    route: str  # pinned | requires | stray | module | identity
    chain: tuple[str, ...]
    rule: BlacklistRule

    def describe(self) -> str:
        return f"{' -> '.join(self.chain)} (forbidden: {self.rule.reason})"

    def names(self) -> list[str]:
        """The chain as canonical package names, root first (a front end draws it on the dependency graph); a
        stray wheel is its own package, a wheel shipping a forbidden module is the wheel's package."""
        if self.route == "stray":
            return [self.package]
        links = self.chain[:1] if self.route in ("module", "identity") else self.chain
        return [canonical(re.split(r"[\s<>=!~;\[(@]", link.strip(), maxsplit=1)[0]) for link in links]


def active(node: Node, env: Mapping[str, str]) -> list[Requirement]:
    """Requirements of ``node`` that apply in ``env`` with its requested extras."""
    return [req for _, req in applicable_requirements(node.requires, node.extras, env)]


def rule_for(name: str, rules: Sequence[BlacklistRule]) -> BlacklistRule | None:
    for rule in rules:
        if rule.matches(name):
            return rule
    return None


def pinned_findings(nodes: Iterable[Node], rules: Sequence[BlacklistRule]) -> list[Finding]:
    """Blacklisted distributions that are pinned themselves."""
    out = []
    for node in sorted(nodes, key=lambda n: n.name):
        rule = rule_for(node.name, rules)
        if rule is not None:
            out.append(Finding(node.name, "pinned", (f"{node.label} (pinned)",), rule))
    return out


def requirement_findings(nodes: Mapping[str, Node], env: Mapping[str, str], rules: Sequence[BlacklistRule],
                         roots: Iterable[str] | None = None) -> list[Finding]:
    """Breadth-first from the roots: the shortest chain to each requirement of a blacklisted name."""
    if roots is None:
        required = {canonical(r.name) for n in nodes.values() for r in active(n, env)}
        roots = [n for n in nodes if n not in required] or list(nodes)
    order = sorted(set(roots)) + sorted(set(nodes) - set(roots))
    seen: set[str] = set()
    found: dict[str, Finding] = {}
    for root in order:
        if root in seen or root not in nodes:
            continue
        seen.add(root)
        queue: deque[tuple[str, tuple[str, ...]]] = deque([(root, (nodes[root].label,))])
        while queue:
            name, chain = queue.popleft()
            for req in active(nodes[name], env):
                dep = canonical(req.name)
                rule = rule_for(dep, rules)
                if rule is not None:
                    found.setdefault(dep, Finding(dep, "requires", (*chain, str(req)), rule))
                    continue
                if dep in nodes and dep not in seen:
                    seen.add(dep)
                    queue.append((dep, (*chain, nodes[dep].label)))
    return [found[k] for k in sorted(found)]


def stray_findings(filenames: Iterable[str], rules: Sequence[BlacklistRule]) -> list[Finding]:
    """Blacklisted wheels lying in the wheelhouse although nothing pins them."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    out = []
    for filename in sorted(filenames):
        try:
            name = str(parse_wheel_filename(filename)[0])
        except InvalidWheelFilename:
            continue
        rule = rule_for(name, rules)
        if rule is not None:
            out.append(Finding(name, "stray", (f"wheelhouse/{filename} (stray file)",), rule))
    return out


def module_findings(top_levels: Mapping[str, Iterable[str]], labels: Mapping[str, str],
                    rules: Sequence[BlacklistRule]) -> list[Finding]:
    """Wheels that ship an importable package a rule forbids (a renamed fork installing ``torchao/``)."""
    forbidden = {mod: rule for rule in rules for mod in rule.import_names}
    out = []
    for dist in sorted(top_levels):
        for mod in sorted(set(top_levels[dist])):
            rule = forbidden.get(mod)
            if rule is not None:
                out.append(Finding(dist, "module", (labels.get(dist, dist), f"ships importable '{mod}/'"), rule))
    return out


def identity_findings(claimed: Mapping[str, Iterable[str]], labels: Mapping[str, str],
                      rules: Sequence[BlacklistRule]) -> list[Finding]:
    """Wheels that call themselves by a forbidden name in their METADATA or a ``.dist-info`` folder (a wheel filed
    as ``numpy`` whose METADATA says ``torchao``, or that carries a second ``torchao-1.0.dist-info/``)."""
    out = []
    for dist in sorted(claimed):
        for name in sorted(set(claimed[dist]) - {dist}):
            rule = rule_for(name, rules)
            if rule is not None:
                out.append(Finding(dist, "identity", (labels.get(dist, dist), f"calls itself '{name}' inside"), rule))
    return out
