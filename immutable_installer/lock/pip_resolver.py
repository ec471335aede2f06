"""pip's resolver, for locks whose target is the interpreter running the tool (``lock --resolver pip``).

pip evaluates markers for the interpreter running it, so it is refused for any other target (uv resolves
those, lock/uv_resolver.py). It runs ``pip install --dry-run --report`` and reads pip's installation report.
"""

from __future__ import annotations

import json
import os
import platform as platform_mod
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from immutable_installer import net_settings
from immutable_installer.core.errors import ResolutionError, SpecError
from immutable_installer.core.model import Platform
from immutable_installer.core.names import canonical
from immutable_installer.core.tags import expand_platform_tags
from immutable_installer.lock.resolved import Pending, Resolved, ResolveRequest
from immutable_installer.runner import Runner, clean_env


class PipResolver:
    """``Resolver`` for this interpreter only."""

    name = "pip"

    def __init__(self) -> None:
        self.runner = Runner()

    def resolve(self, request: ResolveRequest, pool: Executor | None = None) -> Pending:
        problem = host_target_problem(request.python_version, request.platform)
        if problem:
            raise SpecError("", f"pip's resolver evaluates markers for this interpreter only: {problem}",
                            hint="lock with the default resolver (--resolver uv) for another platform or Python")
        if request.exclude_newer or request.prerelease not in (None, "allow", "disallow"):
            what = "--exclude-newer" if request.exclude_newer else f"--prerelease {request.prerelease}"
            raise SpecError("", f"pip's resolver has no {what}",
                            hint="lock with the default resolver (--resolver uv), which has every uv mode")
        report, stderr = self._report(request)
        found = parse_report(report)
        return Pending([(r.name, r.version) for r in found], lambda: found, yank_warnings(report, stderr))

    def _report(self, request: ResolveRequest) -> tuple[dict[str, Any], str]:
        py = self.runner.python()
        with tempfile.TemporaryDirectory(prefix="immutable-lock-") as tmp:
            report_path = Path(tmp) / "report.json"
            pre = ["--pre"] if request.prerelease == "allow" else []
            args = [py, "-m", "pip", "install", *pre, "--dry-run", "--no-input", "--ignore-installed", "--only-binary",
                    ":all:", "--report", str(report_path), "--target", str(Path(tmp) / "target"),
                    "--quiet", "--disable-pip-version-check",
                    "--python-version", request.python_version,
                    "--implementation", "cp" if request.implementation == "cpython" else "pp"]
            for tag in expand_platform_tags(request.platform.tags):
                args += ["--platform", tag]
            if request.isolated:
                args.append("--isolated")
            if request.no_index:
                args.append("--no-index")
            else:
                args += ["--index-url", str(request.index_url)]
            for url in request.extra_index_urls:
                args += ["--extra-index-url", url]
            for d in request.find_links:
                args += ["--find-links", d]
            if request.constraints:
                cpath = Path(tmp) / "constraints.txt"
                cpath.write_text("\n".join(request.constraints) + "\n", encoding="utf-8")
                args += ["-c", str(cpath)]
            network = net_settings.current()
            args += network.pip_args()  # trust and proxy hold under --isolated too
            args += list(request.requirements)
            env = clean_env(network.pip_env(), keep_pip=not request.isolated)
            result = self.runner.run(args, env=env, timeout=1800)
            if not result.ok:
                raise ResolutionError(f"pip's resolver could not resolve {request.label}: "
                                      f"{_pip_error(result.stderr)}",
                                      details=result.stderr.strip().splitlines()[-30:])
            data: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
            return data, result.stderr


def yank_warnings(report: Mapping[str, Any], stderr: str) -> list[str]:
    """A yanked release in pip's answer (PEP 592: chosen only when pinned with ==), with pip's stated reason."""
    reasons = [line.split(":", 1)[1].strip() for line in stderr.splitlines()
               if line.strip().startswith("Reason for being yanked:")]
    out = []
    for item in report.get("install", []):
        if item.get("is_yanked"):
            meta = item.get("metadata", {})
            reason = reasons.pop(0) if reasons else "no reason given"
            out.append(f"{meta.get('name')} {meta.get('version')} is yanked (reason: {reason}); it was chosen "
                       "because it is pinned with ==")
    return out


def parse_report(report: Mapping[str, Any]) -> list[Resolved]:
    """pip's installation report (format version 1) -> resolved distributions."""
    out = []
    for item in report.get("install", []):
        meta = item["metadata"]
        info = item["download_info"]
        url = info["url"]
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1].split("#", 1)[0])
        if not filename.endswith(".whl"):
            raise ResolutionError(f"pip chose a non-wheel for {meta['name']}: {filename}",
                                  hint="only wheels are allowed; pin a version that publishes wheels")
        hashes = info.get("archive_info", {}).get("hashes") or {}
        sha = hashes.get("sha256")
        if not sha:
            legacy = info.get("archive_info", {}).get("hash", "")
            sha = legacy.split("=", 1)[1] if legacy.startswith("sha256=") else ""
        if not sha:
            raise ResolutionError(f"{filename}: the index gave no sha256", hint="use an index that publishes hashes")
        out.append(Resolved(
            name=canonical(meta["name"]), version=meta["version"], filename=filename, sha256=sha, source_url=url,
            requires_dist=tuple(meta.get("requires_dist") or ()), requested=bool(item.get("requested")),
        ))
    return out


def host_target_problem(python_version: str, platform: Platform) -> str:
    """Why this interpreter is not the lock's target ("" when it is)."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    full = f"{here}.{sys.version_info.micro}"
    if python_version not in (here, full):
        return f"the target is python {python_version}, this is python {here}"
    host = {"os_name": os.name, "sys_platform": sys.platform, "platform_system": platform_mod.system(),
            "platform_machine": platform_mod.machine()}
    wrong = [f"{k} {platform.environment.get(k)!r} (here {v!r})" for k, v in host.items()
             if k in platform.environment and platform.environment[k] != v]
    return f"platform {platform.name} has " + ", ".join(wrong) if wrong else ""


def _pip_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    text = errors[0] if errors else (lines[-1] if lines else "no output")
    return text.removeprefix("ERROR: ")

