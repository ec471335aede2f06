"""What the window shows, computed from the CLI's JSON output without Qt: progress per phase and overall, the
log line of each event, the plan at a glance, and an outcome in words a non-expert understands.

Pure and tested without a display; the Qt window only draws what these return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immutable_installer.core.errors import ExitCode

# The install's phases in the order the pipeline runs them, with their share of the overall bar (rough
# shares of a cold install's time; the bar only has to move steadily and never backwards).
PHASES: tuple[str, ...] = ("download", "scan", "store", "link", "shims", "verify", "switch", "prune")
WEIGHTS: Mapping[str, float] = {"download": 30, "scan": 8, "store": 30, "link": 8, "shims": 2, "verify": 20,
                                "switch": 1, "prune": 1}

# SIGINT, SIGTERM, SIGHUP: the child stopped the way Ctrl-C stops the CLI
INTERRUPTED = (ExitCode.INTERRUPTED, 143, 129, -2, -15, -1)


def expected_phases(plan: Mapping[str, Any] | None, offline: bool) -> list[str]:
    """The phases an install of ``plan`` will go through: no download offline or with nothing to fetch, no
    store fill when the store holds every wheel."""
    if plan is None:
        return list(PHASES)
    out = []
    for phase in PHASES:
        if phase == "download" and (offline or not plan.get("to_fetch")):
            continue
        if phase == "store" and not plan.get("to_store"):
            continue
        out.append(phase)
    return out


@dataclass
class ProgressTracker:
    """Per-phase fractions and the overall fraction, fed the CLI's events in order."""

    expected: list[str] = field(default_factory=lambda: list(PHASES))
    fractions: dict[str, float] = field(default_factory=dict)
    current: str = ""
    detail: str = ""

    def feed(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        if kind == "phase":
            self._enter(str(event.get("name", "")))
            self.detail = str(event.get("message", ""))
        elif kind == "progress":
            phase = str(event.get("phase", ""))
            self._enter(phase)
            total = event.get("total")
            if isinstance(total, (int, float)) and total > 0:
                done = float(event.get("done") or 0)
                self.fractions[phase] = max(self.fractions.get(phase, 0.0), min(1.0, done / float(total)))
            self.detail = _progress_text(event)
        elif kind == "phase_done":
            self._enter(str(event.get("name", "")))
            self.fractions[str(event.get("name", ""))] = 1.0

    def _enter(self, phase: str) -> None:
        if not phase:
            return
        if phase not in self.expected:
            self.expected.insert(_position(self.expected, phase), phase)
        if phase != self.current:
            # a phase that begins ends the ones before it in the pipeline's order, except that the store
            # fills while the scan still reads wheels (the two overlap)
            for earlier in self.expected[: self.expected.index(phase)]:
                if not (phase == "store" and earlier == "scan"):
                    self.fractions[earlier] = 1.0
            self.current = phase
            self.fractions.setdefault(phase, 0.0)

    def phase_fraction(self) -> float:
        return self.fractions.get(self.current, 0.0)

    def overall(self) -> float:
        total = sum(WEIGHTS.get(p, 1.0) for p in self.expected)
        done = sum(WEIGHTS.get(p, 1.0) * self.fractions.get(p, 0.0) for p in self.expected)
        return done / total if total else 0.0

    def finish(self) -> None:
        """The run succeeded: every phase is complete."""
        for phase in self.expected:
            self.fractions[phase] = 1.0


def _position(expected: Sequence[str], phase: str) -> int:
    if phase not in PHASES:
        return len(expected)
    rank = PHASES.index(phase)
    for i, other in enumerate(expected):
        if other in PHASES and PHASES.index(other) > rank:
            return i
    return len(expected)


def _progress_text(event: Mapping[str, Any]) -> str:
    done, total, unit = event.get("done") or 0, event.get("total"), str(event.get("unit", ""))
    item = str(event.get("item", ""))
    if unit == "bytes":
        amount = f"{human_bytes(done)} of {human_bytes(total)}" if total else human_bytes(done)
    else:
        amount = f"{int(done)} of {int(total)} {unit}" if total else f"{int(done)} {unit}"
    return f"{amount}: {item}" if item else amount


def log_line(event: Mapping[str, Any]) -> str | None:
    """The log's line for one event (None for progress ticks, which the bars show)."""
    kind = event.get("event")
    if kind == "phase":
        return f"==> {event.get('name')} {event.get('message', '')}".rstrip()
    if kind == "phase_done":
        return f"    {event.get('name')} done in {float(event.get('seconds') or 0):.1f} s"
    if kind == "message":
        prefix = "warning: " if event.get("level") == "warn" else ""
        return f"    {prefix}{event.get('text', '')}"
    if kind == "error":
        return f"error: {event.get('message', '')}"
    return None


def human_bytes(value: float | int | None) -> str:
    if value is None:
        return "unknown"
    size = float(value)
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


@dataclass(frozen=True)
class Outcome:
    """A finished run told to a person: a title, what it means, what to do, and the details."""

    ok: bool
    title: str
    meaning: str
    hint: str = ""
    details: tuple[str, ...] = ()
    exit_code: int = 0


_MEANINGS: Mapping[int, tuple[str, str]] = {
    ExitCode.FAILED: ("The new environment could not be built or did not pass its checks",
                      "Nothing was switched: your previous environment is untouched and still the one in use."),
    ExitCode.USAGE: ("The settings or the manifest are not valid",
                     "Nothing was changed. The message below names the file or field to fix."),
    ExitCode.BLACKLISTED: ("A forbidden package would have been installed",
                           "A package on the manifest's blocklist is pulled in by another package (the chain is "
                           "below and drawn in red on the dependency graph). Nothing was installed; your previous "
                           "environment is untouched."),
    ExitCode.WHEELHOUSE: ("Some package files are missing or damaged",
                          "The wheelhouse lacks a file, or a file is not the one the manifest pins. Nothing was "
                          "installed. Untick \"offline\" to download the files again."),
    ExitCode.LOCKED: ("Another install is running on this environment",
                      "Wait for it to finish, then try again. Nothing was changed."),
    ExitCode.FILE_CLASH: ("Two packages would write the same file",
                          "Installing both would silently overwrite one with the other, so nothing was installed. "
                          "Your previous environment is untouched."),
    ExitCode.STARTUP_CODE: ("A package wants to run code every time Python starts",
                            "The manifest does not allow that start-up file, so nothing was installed. Your previous "
                            "environment is untouched."),
}


def outcome(action: str, exit_code: int, error: Mapping[str, Any] | None = None,
            result: Mapping[str, Any] | None = None) -> Outcome:
    """The dialog for a finished ``action`` ("install", "verify", "rollback")."""
    if exit_code == 0:
        if action == "install" and result is not None and not result.get("changed", True):
            return Outcome(True, "Already up to date",
                           f"{result.get('generation')} was built from this manifest and still passes every check; "
                           "nothing needed to change.")
        if action == "install":
            name = result.get("generation") if result else None
            return Outcome(True, "Installed and verified",
                           f"The new environment{f' {name}' if name else ''} passed every check and is now the one "
                           "in use. Earlier environments of this target, if any, stay available for Rollback.")
        if action == "rollback":
            return Outcome(True, "Rolled back",
                           f"The environment now uses {result.get('generation') if result else 'the chosen one'}, "
                           "which passed every check first.")
        return Outcome(True, "Healthy", "The environment passed every check.")
    if exit_code in INTERRUPTED:
        return Outcome(False, "Cancelled", "The run was stopped before it finished. Your previous environment is "
                                           "untouched and still the one in use.", exit_code=exit_code)
    if action == "verify" and exit_code == ExitCode.FAILED and error is None:
        return Outcome(False, "Not healthy", "At least one check failed: the table of checks says which and why. "
                                             "\"Install / Repair All\" builds a fresh environment.",
                       exit_code=exit_code)
    title, meaning = _MEANINGS.get(exit_code, ("Something went wrong", "The run failed; see the log below."))
    if error is not None and error.get("kind") == "internal":
        title = "The installer hit a bug"
    message = str(error.get("message", "")) if error else ""
    details = tuple(str(d) for d in (error.get("details") or []) if str(d) != message) if error else ()
    return Outcome(False, title, f"{meaning}\n\n{message}".strip(), str(error.get("hint", "")) if error else "",
                   details, exit_code)


@dataclass(frozen=True)
class PackageRow:
    group: str
    name: str
    version: str
    size: int | None
    wheelhouse: str
    store: str


@dataclass(frozen=True)
class PlanView:
    """The dry-run plan as the window shows it."""

    manifest: str
    python: str
    platform: str
    variant: str
    variants: tuple[str, ...]
    rows: tuple[PackageRow, ...]
    scan_ok: bool
    scan_message: str
    chains: tuple[tuple[str, ...], ...]
    download_bytes: int
    store_new: int | None
    missing: int
    stored: int

    @property
    def summary(self) -> str:
        wheels = len(self.rows)
        state = ("all present" if not self.missing else
                 f"{self.missing} missing ({human_bytes(self.download_bytes)} to download)")
        new_store = "nothing new" if self.store_new == 0 else (
            f"about {human_bytes(self.store_new)} more" if self.store_new is not None else "size known once downloaded")
        return (f"{wheels} packages: wheelhouse {state}; store holds {self.stored} of {wheels} ({new_store}); "
                "the new environment links the store's files, so it takes almost no disk itself")


def plan_view(result: Mapping[str, Any]) -> PlanView:
    """A ``install --dry-run --json`` result -> what the window shows."""
    rows = []
    for step in result.get("steps", []):
        for w in step.get("wheels", []):
            rows.append(PackageRow(str(step.get("group")), str(w["name"]), str(w["version"]), w.get("size"),
                                   str(w.get("state")), str(w.get("store"))))
    about = result.get("manifest", {})
    scan = result.get("scan", {})
    disk = result.get("disk", {})
    return PlanView(str(about.get("name", "")), str(about.get("python", "")), str(result.get("platform", "")),
                    str(result.get("variant", "")), tuple(v["name"] for v in about.get("variants", [])),
                    tuple(rows), bool(scan.get("ok")), str(scan.get("message", "")),
                    tuple(tuple(c) for c in scan.get("chains", []) or []), int(disk.get("download") or 0),
                    disk.get("store_new"), sum(1 for r in rows if r.wheelhouse != "present"),
                    sum(1 for r in rows if r.store == "stored"))


def hardware_text(detect: Mapping[str, Any]) -> str:
    """``detect --json`` in one line: the driver and GPUs, or that there is no NVIDIA driver."""
    driver = detect.get("driver")
    picks = f"; auto picks {detect['variant']}" if detect.get("variant") else ""
    if not driver:
        return f"no NVIDIA driver found{picks}"
    names = list(detect.get("gpus") or []) or ["GPU name unknown"]
    caps = list(detect.get("compute_capability") or [])
    gpus = ", ".join(f"{n}, compute capability {caps[i]}" if i < len(caps) else n for i, n in enumerate(names))
    refused = [f"{f['name']}: {f['why']}" for f in detect.get("variants") or [] if not f.get("ok")
               and f.get("why") != "no NVIDIA driver found"]
    return f"NVIDIA driver {driver} ({gpus}){picks}" + (f" (not {'; '.join(refused)})" if refused else "")


def generation_rows(status: Mapping[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """``status --json`` -> (name, created, fingerprint, variant, current), newest first."""
    rows = [(str(g["generation"]), str(g.get("created") or ""), str(g.get("fingerprint") or "")[:16],
             str(g.get("variant") or ""), bool(g.get("current"))) for g in status.get("generations", [])]
    return sorted(rows, key=lambda r: r[0], reverse=True)


def check_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A verify report -> (check, status, detail) rows."""
    return [(str(c["name"]), str(c["status"]), str(c.get("detail", ""))) for c in report.get("checks", [])]


@dataclass(frozen=True)
class Options:
    """The window's options: those of `install`, as the `gui` command received them."""

    manifest: Path
    venv: Path
    wheelhouse: Path
    variant: str = "auto"
    offline: bool = False
    store: Path | None = None

    def _store(self) -> list[str]:
        return ["--store", str(self.store)] if self.store is not None else []

    def plan_args(self, variant: str) -> list[str]:
        """`install --dry-run`: the plan, touching nothing."""
        return ["install", "--dry-run", "--json", "--manifest", str(self.manifest), "--wheelhouse",
                str(self.wheelhouse), "--variant", variant, *self._store()]

    def install_args(self, variant: str, offline: bool, force: bool = False) -> list[str]:
        """`install`: exactly what the command line does (offline is --skip-wheelhouse)."""
        return ["install", "--json", "--manifest", str(self.manifest), "--venv", str(self.venv), "--wheelhouse",
                str(self.wheelhouse), "--variant", variant, *self._store(),
                *(["--skip-wheelhouse"] if offline else []), *(["--force"] if force else [])]

    def verify_args(self) -> list[str]:
        return ["verify", "--json", "--venv", str(self.venv), "--manifest", str(self.manifest)]

    def status_args(self) -> list[str]:
        return ["status", "--json", "--venv", str(self.venv)]

    def detect_args(self) -> list[str]:
        return ["detect", "--json", "--manifest", str(self.manifest)]

    def rollback_args(self, generation: str) -> list[str]:
        return ["rollback", "--json", "--venv", str(self.venv), "--to", generation]
