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

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from immutable_installer.core.errors import VerificationFailed
from immutable_installer.core.events import Message, Phase, PhaseDone, Reporter, null_reporter
from immutable_installer.core.receipt import Receipt
from immutable_installer.core.selection import Needed, Selection
from immutable_installer.dists.wheel import WheelBytes
from immutable_installer.generation.engine import Engine, find_interpreter, package_changes
from immutable_installer.generation.switching import HOW
from immutable_installer.store.entries import Store, StoreWheel, interpreter_tag
from immutable_installer.verify.verifier import Report, Verifier
from immutable_installer.wheelhouse.scan import ScanResult, check, read_needed


class Fetcher(Protocol):
    """What fills the wheelhouse before the pass (``wheelhouse.download.Downloader``)."""

    def download(self, selection: Selection, wait: bool = True) -> Any: ...


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


class Pipeline:
    """Install one selection into one target."""

    def __init__(self, target: Path, wheelhouse: Path, store: Store, reporter: Reporter = null_reporter,
                 link_mode: str = "auto") -> None:
        self.wheelhouse = Path(wheelhouse).absolute()
        self.store = store
        self.report = reporter
        self.engine = Engine(target, reporter=reporter, link_mode=link_mode)
        self.generations = self.engine.generations

    def install(self, selection: Selection, *, force: bool = False, keep: int = 2, wait: bool = True,
                fetcher: Fetcher | None = None) -> InstallResult:
        """Build, verify and switch to a new generation (or report "up to date")."""
        phases: dict[str, float] = {}
        self.generations.check_target()
        lock = self.generations.lock(wait)
        try:
            self.generations.clean_leftovers()
            self._reseal()
            current = self.generations.current()
            receipt = current.receipt if current is not None else Receipt()
            if current is not None and not force and receipt.manifest_sha256 == selection.manifest.raw_sha256 \
                    and receipt.variant == selection.variant:
                report = Verifier(self.report).verify(current.path, selection.manifest, selection.variant,
                                                      selection.platform.name)
                if report.ok:
                    self.report(Message("info", f"up to date: {current.name} was built from this manifest "
                                                f"({selection.variant}) and verifies"))
                    return InstallResult(False, current.name, report.fingerprint, selection.variant, report,
                                         {"verify": report.duration_s})
                self.report(Message("warn", f"{current.name} no longer verifies; building a new generation"))
            if fetcher is not None:  # it reports its own phase
                started = time.monotonic()
                fetcher.download(selection, wait)
                phases["download"] = time.monotonic() - started
            path = self.generations.new()
            try:
                report, new_receipt = self._build(path, selection, phases)
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

    def _reseal(self) -> None:
        """Deleting a generation on Windows made store files writable (core/removal.py): read-only again."""
        if self.generations.removed_shared:
            self.store.reseal()
            self.generations.removed_shared = False

    def _build(self, path: Path, selection: Selection, phases: dict[str, float]) -> tuple[Report, Receipt]:
        manifest = selection.manifest
        python = find_interpreter(manifest.python.minor, manifest.python.implementation)
        interp = interpreter_tag(manifest.python.implementation, manifest.python.minor)
        keys = {n.wheel.sha256: self.store.key(n.wheel.sha256, interp) for n in selection.wheels}
        # before building or linking: gc never takes these away (in rename mode, not once the folder is the target)
        self.store.register(path, keys.values(), self.generations.target)

        # Meanwhile, on a second thread: the linking of every entry the store already holds (all of them in a
        # warm rebuild) while virtualenv makes the bare environment beside it; the entries new to the store
        # follow once the pass has unpacked them. The generation is switched to only after the scan below has
        # passed, and discarded if it has not.
        held = [n for n in selection.wheels if self.store.entry_path(keys[n.wheel.sha256]).is_dir()]
        populator = self.engine.populator(path, len(selection.wheels))
        link_started: list[float] = []

        def start_link() -> None:
            link_started.append(time.monotonic())
            self.report(Phase("link", f"{len(selection.wheels)} packages in {len(selection.groups)} groups from "
                                      f"the store {self.store.root}"))

        def prepare() -> None:
            virtualenv = self.engine.start_venv(path, python)
            try:
                if held:
                    start_link()
                    populator.add([self.store.load(keys[n.wheel.sha256]) for n in held])
            except BaseException:
                self.engine.stop_venv(virtualenv)  # nothing may write into the generation once it is discarded
                raise
            self.engine.adopt_venv(path, virtualenv, populator.owners)

        errors: list[BaseException] = []
        helper = threading.Thread(target=_capture, args=(errors, prepare), daemon=True)
        helper.start()
        try:
            self._wheel_pass(selection, keys, python, interp, phases)
        finally:
            helper.join()
        if errors:
            raise errors[0]
        if not held:
            start_link()  # after the pass's phases: a cold install reads scan, store, link in that order
        held_keys = {n.wheel.sha256 for n in held}
        populator.add([self.store.load(keys[n.wheel.sha256]) for n in selection.wheels
                       if n.wheel.sha256 not in held_keys])
        self.engine.linked(populator)
        phases["link"] = time.monotonic() - link_started[0]
        self.report(PhaseDone("link", phases["link"]))
        with _timed(self.report, phases, "shims", "runtime shims, locks, receipt"):
            receipt = self.engine.finish(path, selection, keys, self.store.root, populator.linker.mode)
        report = Verifier(self.report).verify(path, manifest, selection.variant, selection.platform.name)
        phases["verify"] = report.duration_s
        if not report.ok:
            failed = report.failures()
            raise VerificationFailed(f"the new generation failed verification: {failed[0].name}: {failed[0].detail}",
                                     details=[f"{c.name}: {c.detail}" for c in failed],
                                     hint="the previous environment is untouched; see the details above")
        return report, receipt

    def _wheel_pass(self, selection: Selection, keys: dict[str, str], python: str, interp: str,
                    phases: dict[str, float]) -> ScanResult:
        """Read each wheel once: hash, scan and (where the store lacks it) unpack from the same bytes; commit
        the new entries only when the scan passed."""
        started = time.monotonic()
        self.report(Phase("scan", f"{len(selection.wheels)} wheels, variant {selection.variant}"))
        with self.store.fill(keys.values(), python, interp) as session:
            def fill(item: Needed, opened: WheelBytes) -> None:
                key = keys[item.wheel.sha256]
                if session.needs(key):
                    session.add(key, StoreWheel(item.package.name, item.package.version, item.wheel.filename,
                                                item.wheel.sha256, self.wheelhouse / item.wheel.filename), opened)

            # the largest first: their unpacking and compilation take longest
            order = sorted(selection.wheels, key=lambda n: -_size(self.wheelhouse / n.wheel.filename))
            infos = read_needed(order, self.wheelhouse, on_read=fill, reporter=self.report)
            result = check(selection, infos, self.wheelhouse, self.report)
            phases["scan"] = time.monotonic() - started
            self.report(PhaseDone("scan", phases["scan"]))
            session.commit()
        if session.added:
            phases["store"] = time.monotonic() - started - phases["scan"]
        return result


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
