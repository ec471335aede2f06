"""`verify`: prove an environment is the one the manifest describes.

The heavy checks (imports, torch, CUDA, a tiny transformers forward pass, blocked modules) run in **one**
subprocess of the target interpreter (``probe.py``), started only after this process has accounted for and
hashed every file of the environment (inventory.py): code in a tampered file must not run before verify has said
it is tampered, so the hashing cannot hide behind the imports (docs/performance.md has what that costs). The
rest (package set, dependencies, torch lock, shims on disk, fingerprint) is read from the filesystem here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from immutable_installer.core.errors import UsageError
from immutable_installer.core.events import Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.generation_files import RECEIPT, TORCH_LOCK
from immutable_installer.core.markers import applicable_requirements
from immutable_installer.core.model import Manifest, Package
from immutable_installer.core.names import canonical
from immutable_installer.core.receipt import Receipt, read_receipt
from immutable_installer.core.selection import Selection
from immutable_installer.core.startup import startup_finding
from immutable_installer.dists.installed import Dist, installed_dists, site_packages, venv_python
from immutable_installer.runner import Runner, clean_env
from immutable_installer.shims import CONFIG_MODULE, PTH_NAME, SHIM_MODULES, START_NAME
from immutable_installer.verify.inventory import Inventory, check_digests, inventory

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


@dataclass
class Report:
    ok: bool
    venv: str
    fingerprint: str | None
    duration_s: float
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # when it failed: what the lock said it held back may be why

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "venv": self.venv, "fingerprint": self.fingerprint,
                "duration_s": round(self.duration_s, 3), "checks": [asdict(c) for c in self.checks],
                **({"notes": self.notes} if self.notes else {})}

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]


def fingerprint(dists: dict[str, Dist]) -> str:
    """sha256 over every RECORD hash inside site-packages: the same manifest gives the same value anywhere.

    Entries outside site-packages (console scripts carry the venv's absolute path in their shebang) and
    entries without a hash are left out.
    """
    lines = []
    for dist in sorted(dists.values(), key=lambda d: d.name):
        for path, digest in dist.record:
            if digest and not path.startswith(".."):
                lines.append(f"{dist.name}=={dist.version}\t{path}\t{digest}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


# --------------------------------------------------------------------------------------------- the probe
def _config(blocked: list[str], names: set[str], cuda_mode: str, is_cuda: bool, smoke: bool, alloc_mb: int,
            imports: list[str], secondary: list[str], site: str, run_pth: list[str]) -> dict[str, Any]:
    """The probe's configuration; ``auto`` CUDA means required for a CUDA variant, not for cpu."""
    cuda_required = cuda_mode == "required" or (cuda_mode == "auto" and is_cuda)
    return {
        "blocked": blocked, "torch": "torch" in names, "transformers": "transformers" in names,
        "smoke": smoke, "use_cuda": cuda_required,
        "gpu_alloc_mb": alloc_mb if cuda_required or cuda_mode == "optional" else 0,
        "imports": imports, "secondary_imports": secondary,
        "site": site, "run_pth": run_pth,  # the probe starts without site: it adds site-packages itself
    }


def probe_config(selection: Selection, site: Path) -> dict[str, Any]:
    """What the probe must check for this selection (``site``: the environment's site-packages, whose ``.pth``
    files the probe reads itself: only the shims' and the allowed ones run)."""
    manifest = selection.manifest
    return _config([b.name for b in manifest.shims.blocked_modules], {n.package.name for n in selection.wheels},
                   manifest.verify.cuda, manifest.variant(selection.variant).is_cuda, manifest.verify.model_smoke_test,
                   manifest.verify.gpu_alloc_mb, list(manifest.verify.imports),
                   list(manifest.verify.secondary_imports), str(site), [PTH_NAME, *manifest.verify.allowed_pth])


class ProbeRun:
    """The probe running inside the target interpreter (one subprocess, JSON on stdout): isolated (``-I``: no
    ``PYTHON*`` variable, no user site), without ``site`` (``-S``: no ``.pth`` file runs; the probe adds
    site-packages and runs only the shims' and the allowed ones), writing no bytecode (``-B``)."""

    def __init__(self, venv: Path, config: dict[str, Any]) -> None:
        self.venv = Path(os.path.realpath(venv))
        self.config = config
        self.proc = (Runner()).start(
            [str(venv_python(self.venv)), "-I", "-S", "-B", str(Path(__file__).with_name("probe.py")),
             json.dumps(config)], env=clean_env(), cwd=str(self.venv))

    def finish(self, timeout: float) -> tuple[str, str, int]:
        stdout, stderr = self.proc.communicate(timeout=timeout)
        return stdout, stderr, self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


# -------------------------------------------------------------------------------------------- the checks
class Verifier:
    """Runs every check against one environment."""

    def __init__(self, reporter: Reporter = null_reporter) -> None:
        self.report = reporter

    def verify(self, venv: Path, selection: Selection) -> Report:
        """Run every check. Nothing in the environment runs before every file of it is accounted for and hashed
        (inventory.py), and the start-up code and the interpreter link are checked; only then does the probe
        import torch and transformers there, started so that no start-up code but the shims' (and what the
        manifest allows) runs in it."""
        started = time.monotonic()
        manifest = selection.manifest
        venv = Path(os.path.realpath(venv))
        self.report(Phase("verify", str(venv)))
        python = venv_python(venv)
        if not python.exists():
            raise UsageError(f"{venv} has no interpreter at {python.relative_to(venv)}",
                             hint="build the environment with `immutable-installer install`")
        site = site_packages(venv)
        config = probe_config(selection, site)
        self.report(Progress("verify", 0, 3, "stages", "reading RECORD files and the store's file lists"))
        dists = installed_dists(site)
        receipt_file = venv / RECEIPT
        receipt = read_receipt(receipt_file) if receipt_file.is_file() else None
        inv = inventory(venv, site, dists, receipt)
        startup = self._startup(manifest, site)
        link = self._interpreter_link(venv)
        self.report(Progress("verify", 1, 3, "stages", "hashing every file"))
        changed, missing = check_digests(venv, inv.expected, inv.alternatives)
        files = [self._inventory(inv), self._integrity(changed, missing, receipt, inv), startup, link]
        probe_error: str | None
        if inv.unaccounted or changed or startup.status == FAIL or link.status == FAIL:  # a missing file runs nothing
            probe, probe_error = _not_probed(), ("not run: the environment holds files nobody accounted for, or "
                                                 "start-up code (checks above); nothing in it was executed")
        else:
            self.report(Progress("verify", 2, 3, "stages", "importing torch and transformers in the environment"))
            run = ProbeRun(venv, config)
            try:
                stdout, stderr, code = run.finish(timeout=900)
            except BaseException:
                run.kill()
                raise
            probe, probe_error = _parse_probe(stdout, stderr, code)
        self.report(Progress("verify", 3, 3, "stages", "checks"))
        fp = fingerprint(dists)
        checks = [
            self._interpreter(manifest, probe, probe_error),
            self._isolation(venv),
            self._packages(selection, dists),
            *files,
            self._dependencies(selection, dists),
            self._torch_lock(selection, dists, venv),
            self._blacklist(manifest, dists, probe),
            self._shims(manifest, site, probe),
            *self._torch(manifest, probe, config["use_cuda"], config["torch"]),
            self._transformers(probe, config),
            self._imports(probe),
            *self._secondary_imports(probe),
            self._fingerprint(fp, receipt),
        ]
        duration = time.monotonic() - started
        self.report(PhaseDone("verify", duration))
        ok = not any(c.status == FAIL for c in checks)
        return Report(ok, str(venv), fp, duration, checks, [] if ok else [n.describe() for n in manifest.held_back])

    @staticmethod
    def _interpreter(manifest: Manifest, probe: dict[str, Any], error: str | None) -> Check:
        if error:
            return Check("interpreter", FAIL, error)
        want = manifest.python.minor
        got = probe["python"]
        ok = (got == want or got.startswith(want + ".")) and probe["implementation"] == manifest.python.implementation
        if not ok:
            return Check("interpreter", FAIL, f"{probe['implementation']} {got}, manifest wants "
                                              f"{manifest.python.implementation} {manifest.python.version}")
        if manifest.python.version != want and got != manifest.python.version:
            # a lock for X.Y.Z evaluated python_full_version markers for that patch level: say it, do not fail
            return Check("interpreter", WARN, f"{probe['implementation']} {got}; the lock's markers were evaluated "
                                              f"for {manifest.python.version}")
        return Check("interpreter", PASS, f"{probe['implementation']} {got}")

    @staticmethod
    def _isolation(venv: Path) -> Check:
        """The environment sees only its own packages: ``include-system-site-packages`` is false (a leaked
        ``VIRTUALENV_SYSTEM_SITE_PACKAGES=1`` would add the base interpreter's packages to every import while
        the package check, which reads site-packages, still saw the exact set)."""
        try:
            text = (Path(os.path.realpath(venv)) / "pyvenv.cfg").read_text(encoding="utf-8")
        except OSError:
            return Check("isolation", FAIL, "pyvenv.cfg is missing: not a virtual environment")
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "include-system-site-packages" and value.strip().lower() == "true":
                return Check("isolation", FAIL, "pyvenv.cfg says include-system-site-packages = true: the base "
                                                    "interpreter's packages are importable here")
        return Check("isolation", PASS, "no system site-packages")

    @staticmethod
    def _packages(selection: Selection, dists: dict[str, Dist]) -> Check:
        wanted = {n.package.name: n.package for n in selection.wheels}
        missing = sorted(set(wanted) - set(dists))
        unexpected = sorted(set(dists) - set(wanted))
        wrong = sorted(f"{n} {dists[n].version} (manifest: {wanted[n].version})" for n in set(wanted) & set(dists)
                       if dists[n].version != wanted[n].version)
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing))
        if unexpected:
            parts.append("unexpected: " + ", ".join(f"{n} {dists[n].version}" for n in unexpected))
        if wrong:
            parts.append("wrong version: " + ", ".join(wrong))
        if parts:
            return Check("packages", FAIL, "; ".join(parts))
        return Check("packages", PASS, f"{len(wanted)} distributions, exactly the manifest's set")

    @staticmethod
    def _inventory(inv: Inventory) -> Check:
        """Every file under the environment is on a list with a hash: a store entry's, the receipt's, a RECORD."""
        if inv.unaccounted:
            shown = ", ".join(inv.unaccounted[:4]) + (", ..." if len(inv.unaccounted) > 4 else "")
            return Check("files", FAIL, f"{len(inv.unaccounted)} file(s) that no RECORD, store entry or list of the "
                                        f"tool's accounts for: {shown}")
        notes = []
        if not inv.complete:
            notes.append("the receipt lists no files of the tool's (made before it did): unlisted files not checked")
        if inv.unreadable_entries:
            notes.append(f"store entr{'y' if len(inv.unreadable_entries) == 1 else 'ies'} "
                         f"{', '.join(k[:24] for k in inv.unreadable_entries[:3])} unreadable: bytecode not checked")
        if inv.runtime_bytecode:
            notes.append(f"{len(inv.runtime_bytecode)} bytecode file(s) Python wrote later for another optimisation "
                         f"level (e.g. {inv.runtime_bytecode[0]})")
        if notes:
            return Check("files", WARN, "; ".join(notes))
        return Check("files", PASS, f"{len(inv.expected)} files, each on a list with its hash; nothing else")

    @staticmethod
    def _integrity(changed: list[str], missing: list[str], receipt: Receipt | None, inv: Inventory) -> Check:
        if changed or missing:
            def named(paths: list[str]) -> str:
                shown = [f"{p} ({inv.package[p]})" if p in inv.package else p for p in paths[:3]]
                return ", ".join(shown) + (", ..." if len(paths) > 3 else "")

            parts = []
            if changed:
                parts.append(f"{len(changed)} changed ({named(changed)})")
            if missing:
                parts.append(f"{len(missing)} missing ({named(missing)})")
            keys = sorted({inv.owner[p] for p in changed if p in inv.owner})
            return Check("integrity", FAIL, "; ".join(parts) + _store_note(receipt, keys))
        return Check("integrity", PASS, f"{len(inv.expected)} files match their sha256 (bytecode and the tool's "
                                        "files included)")

    @staticmethod
    def _interpreter_link(venv: Path) -> Check:
        """The environment's interpreter is the one its ``pyvenv.cfg`` names (a ``bin/python`` pointed at another
        interpreter runs that one)."""
        python = venv_python(venv)
        try:
            cfg = dict(line.split("=", 1) for line in (venv / "pyvenv.cfg").read_text(encoding="utf-8").splitlines()
                       if "=" in line)
        except OSError:
            return Check("interpreter link", FAIL, "pyvenv.cfg is missing")
        cfg = {k.strip(): v.strip() for k, v in cfg.items()}
        base = cfg.get("base-executable") or cfg.get("executable")
        if not base or not os.path.islink(python):
            return Check("interpreter link", SKIP, "the interpreter is not a link here (its bytes are checked)")
        if os.path.realpath(python) != os.path.realpath(base):
            return Check("interpreter link", FAIL, f"{python.relative_to(venv)} leads to {os.path.realpath(python)}, "
                                                   f"not {base} as pyvenv.cfg says")
        return Check("interpreter link", PASS, f"{python.relative_to(venv)} -> {base}")

    @staticmethod
    def _dependencies(selection: Selection, dists: dict[str, Dist]) -> Check:
        env = dict(selection.environment)
        extras = {n.package.name: n.package.extras for n in selection.wheels}
        problems = []
        for dist in dists.values():
            for _, req in applicable_requirements(dist.requires, extras.get(dist.name, ()), env):
                dep = dists.get(canonical(req.name))
                if dep is None:
                    problems.append(f"{dist.name} requires {req}, which is not installed")
                elif not req.specifier.contains(dep.version, prereleases=True):
                    problems.append(f"{dist.name} requires {req}, but {dep.name} {dep.version} is installed")
        if problems:
            return Check("dependencies", FAIL, "; ".join(problems[:4]) + (" ..." if len(problems) > 4 else ""))
        return Check("dependencies", PASS, "every Requires-Dist is satisfied")

    @staticmethod
    def _torch_lock(selection: Selection, dists: dict[str, Dist], venv: Path) -> Check:
        variant = selection.variant
        pinned: Package | None = next((n.package for n in selection.wheels if n.package.name == "torch"), None)
        if pinned is None:
            return Check("torch lock", SKIP, "torch is not in the manifest")
        lock = _read_json(venv / TORCH_LOCK)
        installed = dists.get("torch")
        if installed is None:
            return Check("torch lock", FAIL, "torch is not installed")
        if not lock:
            return Check("torch lock", FAIL, f"{TORCH_LOCK} is missing")
        problems = []
        if lock.get("torch_version") != installed.version:
            problems.append(f"installed torch {installed.version} != {TORCH_LOCK} {lock.get('torch_version')}")
        if installed.version != pinned.version:
            problems.append(f"installed torch {installed.version} != manifest {pinned.version}")
        if lock.get("variant") != variant:
            problems.append(f"{TORCH_LOCK} variant {lock.get('variant')} != {variant}")
        if problems:
            return Check("torch lock", FAIL, "; ".join(problems))
        return Check("torch lock", PASS, f"torch {installed.version} ({variant}) as locked")

    @staticmethod
    def _blacklist(manifest: Manifest, dists: dict[str, Dist], probe: dict[str, Any]) -> Check:
        problems = [f"{d.name} {d.version} is installed (forbidden: {rule.reason})" for d in dists.values()
                    if (rule := manifest.blacklist_rule_for(d.name)) is not None]
        for mod in manifest.shims.blocked_modules:
            seen = probe.get("blocked", {}).get(mod.name)
            if seen is None:
                problems.append(f"{mod.name}: not probed")
            elif mod.mode == "absent":
                if not seen.get("find_spec_none"):
                    problems.append(f"find_spec({mod.name!r}) is not None"
                                    + (f" ({seen['find_spec_error']})" if seen.get("find_spec_error") else ""))
                if not seen.get("import_error") or seen.get("wrong_error"):
                    problems.append(f"import {mod.name} " + ("succeeded" if not seen.get("import_error")
                                                             else f"raised {seen['import_error']}"))
        if problems:
            return Check("blacklist", FAIL, "; ".join(problems))
        names = ", ".join(m.name for m in manifest.shims.blocked_modules) or "none"
        return Check("blacklist", PASS, f"no blacklisted distribution; blocked modules absent ({names})")

    @staticmethod
    def _shims(manifest: Manifest, site: Path, probe: dict[str, Any]) -> Check:
        if not manifest.shims.blocked_modules and not manifest.shims.transformers_patcher:
            return Check("shims", SKIP, "the manifest configures no shims")
        missing = [n for n in (PTH_NAME, START_NAME, *SHIM_MODULES, CONFIG_MODULE + ".py") if not (site / n).exists()]
        if missing:
            return Check("shims", FAIL, "missing from site-packages: " + ", ".join(missing))
        shims = probe.get("shims") or {}
        blocker = shims.get("blocker") or {}
        if manifest.shims.blocked_modules and not blocker.get("active"):
            return Check("shims", FAIL, "the import blocker is not active (is IMMUTABLE_INSTALLER_SHIMS_DISABLE set?)")
        patcher = shims.get("patcher")
        if manifest.shims.transformers_patcher and patcher is None:
            return Check("shims", FAIL, "the transformers patcher is not loaded")
        note = ""
        if patcher and not patcher.get("enabled"):
            note = f"; transformers patcher off ({patcher.get('why_off')})"
        where = "first on" if blocker.get("first_on_meta_path") else "on"
        return Check("shims", PASS, f"blocker {where} sys.meta_path{note}")

    @staticmethod
    def _startup(manifest: Manifest, site: Path) -> Check:
        """Code that runs at every interpreter start (``.pth`` import lines, ``.start`` entry points,
        ``sitecustomize`` / ``usercustomize``, core/startup.py): only ours and the allowed ones may."""
        found = []
        for entry in sorted(site.iterdir()):
            if entry.name in (PTH_NAME, START_NAME) or entry.name in manifest.verify.allowed_pth:
                continue
            rel = entry.name + ("/__init__.py" if entry.is_dir() else "")
            finding = startup_finding(rel, functools.partial(_read_or_empty, entry))
            if finding is not None and finding[0] not in manifest.verify.allowed_pth:
                found.append(f"{finding[0]} ({finding[1]})")
        if found:
            return Check("startup", FAIL, "code runs at every Python start from " + "; ".join(found)
                         + ": not ours and not in verify.allowed_pth")
        allowed = ", ".join(manifest.verify.allowed_pth)
        return Check("startup", PASS, "no start-up code but the shims" + (f" and {allowed}" if allowed else ""))

    @staticmethod
    def _torch(manifest: Manifest, probe: dict[str, Any], cuda_required: bool, pinned: bool) -> list[Check]:
        if not pinned:
            return [Check("torch", SKIP, "torch is not in the manifest")]
        torch = probe.get("torch") or {}
        if not torch.get("ok"):
            return [Check("torch", FAIL, torch.get("error", "the probe did not report torch")),
                    Check("cuda", FAIL if cuda_required else SKIP, "torch did not import")]
        checks = [Check("torch", PASS, f"import torch {torch['version']} ({torch.get('seconds', 0):.1f} s)")]
        mode = manifest.verify.cuda
        available = torch.get("cuda_available")
        if mode == "forbidden":
            detail = "CUDA is available but the manifest forbids it" if available else "no CUDA, as required"
            checks.append(Check("cuda", FAIL if available else PASS, detail))
        elif not available:
            checks.append(Check("cuda", FAIL if cuda_required else SKIP,
                                f"torch.cuda.is_available() is False (torch built for CUDA "
                                f"{torch.get('built_cuda') or 'none'}; no GPU/driver here)"
                                + ("" if cuda_required else "; not required for this variant")))
        else:
            devices = ", ".join(f"{d['name']} (sm {d['capability']})" for d in torch.get("devices", []))
            alloc = torch.get("alloc_ok")
            status = PASS if alloc in (True, None) and not torch.get("cuda_error") else FAIL
            checks.append(Check("cuda", status, f"{torch.get('device_count')} device(s): {devices}; built CUDA "
                                                f"{torch.get('built_cuda')}, driver CUDA {torch.get('driver_cuda')}; "
                                                f"allocation {_alloc_word(alloc)}"
                                                + (f"; {torch['cuda_error']}" if torch.get("cuda_error") else "")))
        return checks

    @staticmethod
    def _transformers(probe: dict[str, Any], config: dict[str, Any]) -> Check:
        if not config["transformers"]:
            return Check("transformers", SKIP, "transformers is not in the manifest")
        info = probe.get("transformers") or {}
        if not info.get("ok"):
            return Check("transformers", FAIL, "from transformers import PreTrainedModel failed: "
                                               + info.get("error", "not reported"))
        if config["smoke"] and not info.get("forward_ok"):
            return Check("transformers", FAIL, f"tiny BERT forward pass failed: {info.get('forward_error')}")
        smoke = f"; tiny BERT forward on {info.get('forward_device')} ok" if config["smoke"] else ""
        return Check("transformers", PASS, f"from transformers import PreTrainedModel ({info['version']}){smoke}")

    @staticmethod
    def _imports(probe: dict[str, Any]) -> Check:
        imports = probe.get("imports") or {}
        failed = [f"{n}: {i.get('error')}" for n, i in imports.items() if not i.get("ok")]
        if failed:
            return Check("imports", FAIL, "; ".join(failed))
        return Check("imports", PASS if imports else SKIP, ", ".join(imports) or "none configured")

    @staticmethod
    def _secondary_imports(probe: dict[str, Any]) -> list[Check]:
        """Modules a requested distribution ships besides its main one (duckdb's ``adbc_driver_duckdb``): one
        that does not import without an optional dependency is worth a warning, not a failed environment."""
        imports = probe.get("secondary_imports") or {}
        if not imports:
            return []
        failed = [f"{n}: {i.get('error')}" for n, i in imports.items() if not i.get("ok")]
        if failed:
            return [Check("secondary imports", WARN, "; ".join(failed) + " (the main modules import; these may "
                                                                      "need an optional dependency)")]
        return [Check("secondary imports", PASS, ", ".join(imports))]

    @staticmethod
    def _fingerprint(fp: str, receipt: Receipt | None) -> Check:
        if receipt is None:
            return Check("fingerprint", WARN, f"{RECEIPT} is missing: cannot tell drift ({fp[:16]})")
        want = receipt.fingerprint
        if want != fp:
            return Check("fingerprint", FAIL, f"drift: files differ from the receipt ({fp[:16]} != {str(want)[:16]})")
        return Check("fingerprint", PASS, f"{fp[:16]} matches the receipt")


def _store_note(receipt: Receipt | None, keys: list[str]) -> str:
    """Where changed files of a hard-linked generation really live (``keys``: their store entries): damaged for
    every generation that links them, and how to heal them."""
    if not keys or receipt is None or receipt.link_mode != "hardlink" or not receipt.store:
        return ""
    store = receipt.store
    return (f"; the files are hard links into the store: store entr{'y' if len(keys) == 1 else 'ies'} "
            f"{', '.join(k[:24] for k in keys)} in {store} {'is' if len(keys) == 1 else 'are'} damaged for every "
            f"generation linking {'it' if len(keys) == 1 else 'them'}: run `immutable-installer store verify --repair "
            f"--store {store}`, then `immutable-installer install --force`")


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _not_probed() -> dict[str, Any]:
    return {"python": "?", "implementation": "?", "blocked": {}}


def _parse_probe(stdout: str, stderr: str, code: int | None) -> tuple[dict[str, Any], str | None]:
    marker = "\n@@PROBE@@"
    if marker in stdout:
        try:
            data: dict[str, Any] = json.loads(stdout.rsplit(marker, 1)[1].strip().splitlines()[0])
            return data, None
        except (ValueError, IndexError):
            pass
    tail = (stderr.strip().splitlines() or [f"exit code {code}"])[-1]
    return {"python": "?", "implementation": "?", "blocked": {}}, f"the probe failed inside the environment: {tail}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _alloc_word(alloc: object) -> str:
    return "ok" if alloc else "failed" if alloc is False else "skipped"
