"""`install`, owned in one place: selection -> (download) -> one pass over the wheels (hash, scan, fill the
store) -> generation (virtualenv, link, shims, receipt) -> verify -> switch -> prune. It reports through
events only; the CLI and any other front end render them.

One pass over each wheel: its bytes are read from the wheelhouse once; the same bytes are hashed, parsed for
the scan and, when the store lacks the wheel, unpacked into a staged entry whose bytecode compiles on every
core while the other wheels are still being read. Staged entries reach the store only after the scan passed;
the virtualenv is created meanwhile (and, when the store already holds every wheel, the generation linked).
Every failure before the switch deletes the new generation and leaves the current one untouched; the target
lock serialises installers; leftovers of killed runs are removed by the next run.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from immutable_installer.core.errors import InstallerError, UsageError, VerificationFailed
from immutable_installer.core.events import Message, Phase, PhaseDone, PlanMade, Reporter, null_reporter
from immutable_installer.core.plan import Plan as CorePlan
from immutable_installer.core.plan import make_plan
from immutable_installer.core.receipt import Receipt
from immutable_installer.core.selection import Needed, Selection, select
from immutable_installer.dists.wheel import WheelBytes, WheelInfo
from immutable_installer.generation.engine import Engine, package_changes
from immutable_installer.generation.populate import Populator
from immutable_installer.generation.switching import HOW
from immutable_installer.interpreters import find_interpreter
from immutable_installer.store.entries import Entry, Store, StoreWheel, interpreter_tag
from immutable_installer.verify.verifier import Report, Verifier
from immutable_installer.wheelhouse.download import Audit, audit
from immutable_installer.wheelhouse.scan import ScanResult, check, read_needed


class Fetcher(Protocol):
    """What fills the wheelhouse before the pass (``wheelhouse.download.Downloader``)."""

    def download(self, selection: Selection, wait: bool = True) -> Audit: ...


@dataclass
class InstallResult:
    """What `install` did."""

    changed: bool
    generation: str
    fingerprint: str | None
    variant: str
    report: Report | None = None
    phases: dict[str, float] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"changed": self.changed, "generation": self.generation, "fingerprint": self.fingerprint,
                "variant": self.variant, "phases": {k: round(v, 3) for k, v in self.phases.items()},
                "pruned": self.pruned, "changes": self.changes,
                "verify": self.report.to_json() if self.report else None}


@dataclass
class InstallPlan:
    """What an install of one selection will do, computed once: each wheel's store entry, the entries the store
    holds (linked as they are, scanned from what they kept of their wheel), and the steps in group order.
    ``install`` runs on it; ``install --dry-run`` prints it, with what only reading the wheelhouse tells (its
    state, the scan's verdict): the two cannot drift."""

    selection: Selection
    interp: str
    keys: dict[str, str]  # wheel sha256 -> store entry key
    held: dict[str, Entry]  # entry key -> the entry the store holds
    steps: CorePlan

    @property
    def known(self) -> dict[str, WheelInfo]:
        """Package name -> what its entry kept of its wheel (read when the entry was built)."""
        return {n.package.name: facts for n in self.selection.wheels
                if (entry := self.held.get(self.keys[n.wheel.sha256])) is not None and (facts := entry.wheel_facts)}

    def to_json(self) -> dict[str, Any]:
        return {**self.steps.to_json(), "entries": {n.wheel.filename: self.keys[n.wheel.sha256]
                                                    for n in self.selection.wheels}}


class Pipeline:
    """Install one selection into one target."""

    def __init__(self, target: Path, wheelhouse: Path, store: Store, reporter: Reporter = null_reporter,
                 link_mode: str = "auto") -> None:
        self.wheelhouse = Path(wheelhouse).absolute()
        self.store = store
        self.report = reporter
        self.engine = Engine(target, reporter=reporter, link_mode=link_mode)
        self.generations = self.engine.generations

    def plan(self, selection: Selection, wheelhouse_state: tuple[set[str], set[str]] = (set(), set()),
             unpacked: dict[str, int] | None = None) -> InstallPlan:
        """The plan of an install (reads the store's entries, never a wheel); ``wheelhouse_state`` (filenames
        present, with a bad hash) and ``unpacked`` come from a dry run's read of the wheelhouse."""
        manifest = selection.manifest
        interp = interpreter_tag(manifest.python.implementation, manifest.python.minor)
        keys = {n.wheel.sha256: self.store.key(n.wheel.sha256, interp) for n in selection.wheels}
        held = {key: self.store.load(key) for key in keys.values() if self.store.entry_path(key).is_dir()}
        stored = {sha for sha, key in keys.items() if key in held}
        steps = make_plan(selection, wheelhouse_state[0], wheelhouse_state[1], stored, unpacked)
        return InstallPlan(selection, interp, keys, held, steps)

    def dry_run(self, selection: Selection) -> tuple[InstallPlan, dict[str, Any]]:
        """The plan an install would run, with the wheelhouse as it is and the scan's verdict (each wheel read
        once, every member checked as the store would): touches nothing."""
        infos = read_needed(selection.wheels, self.wheelhouse, contents=True)
        hashed = {n.wheel.filename: infos[n.package.name].sha256 for n in selection.wheels if n.package.name in infos}
        state = audit(self.wheelhouse, selection.wheels, hashed)
        present = {n.wheel.filename for n in state.present}
        unpacked = {n.wheel.filename: infos[n.package.name].unpacked for n in selection.wheels
                    if n.wheel.filename in present}
        plan = self.plan(selection, (present, {n.wheel.filename for n, _ in state.bad_hash}), unpacked)
        # the verdict install would reach: a wheel the store holds is scanned as its entry kept it, whatever the
        # wheelhouse file has become (the plan's state column still tells the wheelhouse as it is)
        try:
            check(selection, {**infos, **plan.known}, self.wheelhouse)
            verdict: dict[str, Any] = {"ok": True, "kind": None,
                                       "message": "clean: hashes, blacklist, closure, start-up code, clashes"}
        except InstallerError as exc:
            verdict = {**exc.to_event(), "ok": False}
            del verdict["event"]
        return plan, verdict

    def install(self, selection: Selection, *, force: bool = False, keep: int = 2, wait: bool = True,
                fetcher: Fetcher | None = None) -> InstallResult:
        """Build, verify and switch to a new generation (or report "up to date")."""
        phases: dict[str, float] = {}
        self.generations.check_target()  # refused before any work; switch() checks again after the minutes of a build
        self._refuse_crossed_paths()
        lock = self.generations.lock(wait)
        try:
            self.generations.clean_leftovers()
            self._reseal()
            current = self.generations.current()
            receipt = current.receipt if current is not None else Receipt()
            if current is not None and not force and receipt.manifest_sha256 == selection.manifest.raw_sha256 \
                    and receipt.variant == selection.variant:
                report = Verifier(self.report).verify(current.path, selection)
                if report.ok:
                    self.report(Message("info", f"up to date: {current.name} was built from this manifest "
                                                f"({selection.variant}) and verifies"))
                    return InstallResult(False, current.name, report.fingerprint, selection.variant, report,
                                         {"verify": report.duration_s})
                self.report(Message("warn", f"{current.name} no longer verifies; building a new generation"))
            state: tuple[set[str], set[str]] = (set(), set())
            if fetcher is not None:  # it reports its own phase, and hashed every wheel it placed or found
                started = time.monotonic()
                audited = fetcher.download(selection, wait)
                phases["download"] = time.monotonic() - started
                state = ({n.wheel.filename for n in audited.present}, {n.wheel.filename for n, _ in audited.bad_hash})
            else:  # --skip-wheelhouse: the files that are there (the scan, next, hashes each and refuses a stranger)
                state = ({n.wheel.filename for n in selection.wheels if (self.wheelhouse / n.wheel.filename).is_file()},
                         set())
            plan = self.plan(selection, state)
            self.report(PlanMade(plan.to_json()))
            path = self.generations.new()
            try:
                report, new_receipt = self._build(path, plan, phases)
            except BaseException:
                self.generations.discard(path)
                self._reseal()
                raise
            self.generations.mark_complete(path)
            how = HOW[self.generations.mode()]
            with _timed(self.report, phases, "switch", f"{self.generations.target} -> {path.name} ({how})"):
                self.generations.switch(path)
            with _timed(self.report, phases, "prune", f"keeping {keep} older generation(s)"):
                pruned = self.generations.prune(keep)
                self._reseal()
            changes = package_changes(receipt, new_receipt) if current else [
                f"first generation: {len(new_receipt.packages)} packages"]
            return InstallResult(True, path.name, report.fingerprint, selection.variant, report, phases, pruned,
                                 changes)
        finally:
            lock.release()

    def _refuse_crossed_paths(self) -> None:
        """The environment is never inside the store (store gc would delete it, store verify call it damage), and
        the store never inside the environment's folders (pruning a generation would delete it)."""
        target = self.generations.target
        if self.store.contains(target) or self.store.contains(self.generations.root):
            raise UsageError(f"--venv {target} lies inside the store {self.store.root}",
                             hint="put the environment outside the store (e.g. --venv .venv)")
        for folder in (target, self.generations.root):
            real = os.path.realpath(folder)
            if os.path.realpath(self.store.root).startswith(real.rstrip(os.sep) + os.sep):
                raise UsageError(f"the store {self.store.root} lies inside {folder}",
                                 hint="put the store outside the environment (--store, IMMUTABLE_INSTALLER_STORE)")

    def _reseal(self) -> None:
        """Deleting a generation on Windows made store files writable (removal.py): read-only again."""
        if self.generations.removed_shared:
            self.store.reseal()
            self.generations.removed_shared = False

    def _build(self, path: Path, plan: InstallPlan, phases: dict[str, float]) -> tuple[Report, Receipt]:
        selection, keys, held = plan.selection, plan.keys, plan.held
        manifest = selection.manifest
        python = find_interpreter(manifest.python.minor, manifest.python.implementation)
        # before building or linking: gc never takes these away (in rename mode, not once the folder is the target)
        self.store.register(path, keys.values(), self.generations.target)

        # Meanwhile, on a second thread: virtualenv makes the bare environment while every entry the store
        # already holds is linked (all of them in a warm rebuild), then each new entry as soon as it is
        # compiled. The generation is switched to only after the scan below has passed, and discarded if not.
        populator = self.engine.populator(path, len(selection.wheels))
        link_started: list[float] = []

        def start_link() -> None:
            if not link_started:
                link_started.append(time.monotonic())
                self.report(Phase("link", f"{len(selection.wheels)} packages in {len(selection.groups)} groups "
                                          f"from the store {self.store.root}"))

        linking = _Linking(self.engine, populator, path, python, start_link, list(held.values()))
        linking.start()
        try:
            self._wheel_pass(plan, python, phases, linking)
        finally:
            linking.finish()
        # what neither the store held nor the pass built: entries another installer finished meanwhile
        remaining = [self.store.load(keys[n.wheel.sha256]) for n in selection.wheels
                     if keys[n.wheel.sha256] not in linking.linked]
        if remaining:
            start_link()
            populator.add(remaining)
        self.engine.linked(populator)
        phases["link"] = time.monotonic() - link_started[0] if link_started else 0.0
        self.report(PhaseDone("link", phases["link"]))
        with _timed(self.report, phases, "shims", "runtime shims, locks, receipt"):
            receipt = self.engine.finish(path, selection, keys, self.store.root, populator.linker.mode,
                                         populator.owners)
        report = Verifier(self.report).verify(path, selection)
        phases["verify"] = report.duration_s
        if not report.ok:
            failed = report.failures()
            raise VerificationFailed(f"the new generation failed verification: {failed[0].name}: {failed[0].detail}",
                                     details=[f"{c.name}: {c.detail}" for c in failed] + report.notes,
                                     hint="the previous environment is untouched; see the details above"
                                          + (f" ({report.notes[0]})" if report.notes else ""))
        return report, receipt

    def _wheel_pass(self, plan: InstallPlan, python: str, phases: dict[str, float], linking: _Linking) -> ScanResult:
        """Read each wheel the store lacks once: hash, scan and unpack from the same bytes; each new entry is
        linked from its staging folder as soon as it is compiled; the new entries are committed only when the
        scan passed. A wheel the store holds is scanned from what its entry kept when it was read (its sha256
        is the entry's key), not read again."""
        selection, keys = plan.selection, plan.keys
        started = time.monotonic()
        self.report(Phase("scan", f"{len(selection.wheels)} wheels, variant {selection.variant}"))
        with self.store.fill(keys.values(), python, plan.interp, on_ready=linking.add) as session:
            try:
                def fill(item: Needed, opened: WheelBytes) -> None:
                    key = keys[item.wheel.sha256]
                    if session.needs(key):
                        session.add(key, StoreWheel(item.package.name, item.package.version, item.wheel.filename,
                                                    item.wheel.sha256, self.wheelhouse / item.wheel.filename),
                                    opened)

                # the largest first: their unpacking and compilation take longest
                order = sorted(selection.wheels, key=lambda n: -_size(self.wheelhouse / n.wheel.filename))
                infos = read_needed(order, self.wheelhouse, on_read=fill, reporter=self.report, known=plan.known)
                result = check(selection, infos, self.wheelhouse, self.report)
                phases["scan"] = time.monotonic() - started
                self.report(PhaseDone("scan", phases["scan"]))
                session.wait()
                linking.finish()  # nothing links from a staging folder once it is renamed into the store
            except BaseException:
                linking.abandon()  # before the session removes the staging folders
                raise
            session.commit()
        if session.added:
            phases["store"] = time.monotonic() - started - phases["scan"]
        return result


class _Linking:
    """The second thread of a build: virtualenv beside the linking of the entries the store holds, then of
    each new entry as soon as the pass has compiled it (``add``, from any thread), then virtualenv's files
    moved in. ``finish`` waits for all of it and raises its first error; ``abandon`` links nothing more."""

    def __init__(self, engine: Engine, populator: Populator, path: Path, python: str,
                 on_first: Callable[[], None], held: list[Entry]) -> None:
        """``held``: the entries the store already holds, linked first."""
        self.engine, self.populator, self.path, self.python, self.on_first = engine, populator, path, python, on_first
        self.held = held
        self.queue: queue.Queue[Entry | None] = queue.Queue()
        self.linked: set[str] = set()
        self.errors: list[BaseException] = []
        self.abandoned = threading.Event()
        self.thread = threading.Thread(target=_capture, args=(self.errors, self._run), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def add(self, entry: Entry) -> None:
        self.queue.put(entry)

    def _run(self) -> None:
        virtualenv = self.engine.start_venv(self.path, self.python)
        try:
            self._link(self.held)
            while self._link(self._next_batch()):
                pass
            if self.abandoned.is_set():
                raise _Abandoned()
        except BaseException:
            self.engine.stop_venv(virtualenv)  # nothing may write into the generation once it is discarded
            raise
        self.engine.adopt_venv(self.path, virtualenv, self.populator.owners)

    def _next_batch(self) -> list[Entry] | None:
        """The entries ready by now (at least one; waits for it), or None once ``finish`` was called."""
        entry = self.queue.get()
        batch: list[Entry] = []
        while entry is not None:
            batch.append(entry)
            try:
                entry = self.queue.get_nowait()
            except queue.Empty:
                return batch
        self.queue.put(None)  # seen again by the next call: the batch before it is linked first
        return batch or None

    def _link(self, entries: list[Entry] | None) -> bool:
        if entries is None:
            return False
        if entries and not self.abandoned.is_set():
            self.on_first()
            self.populator.add(entries)
            self.linked.update(e.key for e in entries)
        return True

    def finish(self) -> None:
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.errors and not self.abandoned.is_set():
            raise self.errors[0]

    def abandon(self) -> None:
        self.abandoned.set()
        self.finish()


class _Abandoned(Exception):
    """The build was given up: the linking thread stops without adopting virtualenv's files."""


def _capture(errors: list[BaseException], func: Any, *args: Any) -> None:
    try:
        func(*args)
    except BaseException as exc:  # handed to the pipeline's thread, raised there
        errors.append(exc)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class _timed:
    """A phase: its start and end events and its duration in ``phases``."""

    def __init__(self, report: Reporter, phases: dict[str, float], name: str, message: str) -> None:
        self.report, self.phases, self.name, self.message = report, phases, name, message
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.monotonic()
        self.report(Phase(self.name, self.message))

    def __exit__(self, *exc: object) -> None:
        self.phases[self.name] = time.monotonic() - self.started
        if exc[0] is None:
            self.report(PhaseDone(self.name, self.phases[self.name]))


def check_environment(venv: Path, manifest: Path | None, reporter: Reporter = null_reporter) -> Report:
    """``verify``: an interrupted switch finished first, then the environment checked against ``manifest`` (by
    default the copy the generation carries of the manifest it was built from), for the variant its receipt
    names, on this machine's platform."""
    from immutable_installer.core.generation_files import MANIFEST_COPY, RECEIPT
    from immutable_installer.core.manifest import load_manifest
    from immutable_installer.core.receipt import read_receipt
    from immutable_installer.generation.generations import Generations
    from immutable_installer.hardware import host_platform

    Generations(venv).settle()
    if not venv.exists():
        raise UsageError(f"{venv} does not exist", hint="build it with `immutable-installer install`")
    if not venv.is_dir():
        raise UsageError(f"{venv} is not an environment (not a folder)", hint="pass the --venv that install built")
    generation = Path(os.path.realpath(venv))
    if manifest is None:
        manifest = generation / MANIFEST_COPY
        if not manifest.is_file():
            raise UsageError(f"{venv} carries no copy of the manifest it was built from",
                             hint="pass --manifest with the manifest it was built from")
    loaded = load_manifest(manifest)
    variant = read_receipt(generation / RECEIPT).variant or loaded.default_variant
    return Verifier(reporter).verify(venv, select(loaded, variant, host_platform(loaded)))
