"""Filling the store: wheels unpacked in-process and in parallel, bytecode compiled across every core as soon as
each entry is unpacked, entries committed only when the caller says the whole set passed its checks.

Why not pip: one pip start-up and one scratch virtualenv per build, single-threaded unpacking and compilation
that waits for unpacking cost a cold install more than everything else together (docs/performance.md). Here
each wheel's bytes are read from the wheelhouse once (``dists.wheel.open_wheel``: the same read hashes,
parses and unpacks), PyPA ``installer`` routes every archive member to its scheme, and a destination of
ours writes what pip writes (its console-script template and shebang rule, its sorted ``\\r\\n`` RECORD,
``REQUESTED``, ``INSTALLER``), so a store entry holds the bytes pip would have installed (docs/store.md).
Every file's hash is checked against the wheel's own RECORD while it is written.

Bytecode is compiled by the *target* interpreter (bytecode depends on it), started by us with ``-I -S``
(isolated, no site: no ``.pth`` of any installation runs), one worker per core, fed batches of files as
entries finish unpacking. Nothing a wheel ships is ever executed.

An entry's bytes depend on the wheel and the interpreter only, not on the machine, the store's path, the day or
the umask (so a registry can carry it and another machine check it, docs/fleet.md): every file takes one fixed
mtime (``ENTRY_MTIME``, which the timestamp bytecode then records), bytecode names its source by its
prefix-relative path (the import system puts the real path in at import, as it does for any moved pyc), and
console scripts carry a placeholder interpreter (``#!python``) that each generation replaces with its own.
Its content digest (``entry_digest``) is computed from the hashes taken while the files were written.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import queue
import stat
import subprocess
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from installer.destinations import WheelDestination
from installer.sources import WheelContentElement, WheelFile

from immutable_installer.core.errors import BuildError, UnsoundWheelError, WheelhouseError
from immutable_installer.dists.hashing import CHUNK, record_digest, record_form
from immutable_installer.dists.installed import record_rows, venv_scheme
from immutable_installer.dists.members import data_limits, open_member
from immutable_installer.dists.scripts import console_shebang, fixed_shebang, windows_launcher
from immutable_installer.dists.wheel import ALLOWED_HASHES, WheelBytes, WheelInfo, digest_of
from immutable_installer.runner import Runner, clean_env

# byte-identical to pip's install on purpose: the same RECORD, the same fingerprint whichever of the two
# built an environment, and pip's own tools (uninstall, list, check) treat the packages as theirs
INSTALLER_NAME = b"pip\n"
ASYNC_LIMIT = 4 << 20  # members up to this size are written by the writer pool
WRITE_BATCH = 32  # small files per writer task: a task per file cost a lock hand-over (futex) per file
# a new file, never an existing one; O_BINARY: Windows opens in text mode otherwise and writes "\n" as "\r\n"
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
# every file of an entry has this mtime (1980-01-01, the earliest a zip member can carry): timestamp bytecode
# records it, so an entry built anywhere, or pulled from a registry, has the same bytes and valid bytecode
ENTRY_MTIME = 315532800
# the interpreter an entry's console scripts name: a placeholder, replaced in every generation (populate.py)
SCRIPT_PLACEHOLDER = "python"
ENTRY_FORMAT = 3  # 3: reproducible bytes and a content digest

# pip's console-script template (pip/_internal/operations/install/wheel.py, PipScriptMaker): the store's
# fidelity test compares a pip install with ours byte for byte, so a change in pip shows up there
SCRIPT_TEMPLATE = """import sys
from %(module)s import %(import_name)s
if __name__ == '__main__':
    sys.argv[0] = sys.argv[0].removesuffix('.exe')
    sys.exit(%(func)s())
"""

# runs inside the target interpreter (-I -S): compile the files of each batch (each line: the source, a tab, the
# name the bytecode gives it: its prefix-relative path), answer one line per bytecode file written (path,
# RECORD-form sha256, size: the caller never reads it back) and "done" at the end of the batch. Timestamp
# bytecode always (py_compile would switch to hash-based bytecode when SOURCE_DATE_EPOCH is set); the bytecode
# takes the entry's fixed mtime and loses its write bits here, like every file of a store entry. Warnings are
# off and stderr goes nowhere: thousands of SyntaxWarnings (3.12+ shows invalid escapes) would otherwise fill a
# pipe nobody reads until the end, and the worker would block forever.
_COMPILER = r"""
import base64, hashlib, os, stat, sys, warnings, py_compile
warnings.simplefilter("ignore")
sys.stderr = open(os.devnull, "w")
out = sys.stdout
mtime = int(sys.argv[1])
for line in sys.stdin:
    path, _, dfile = line.rstrip("\n").partition("\t")
    if not path:
        out.write("done\n"); out.flush(); continue
    try:
        pyc = py_compile.compile(path, dfile=dfile or None, doraise=True,
                                 invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP)
        with open(pyc, "rb") as fh:
            data = fh.read()
        os.utime(pyc, (mtime, mtime))
        os.chmod(pyc, stat.S_IMODE(os.stat(pyc).st_mode) & ~0o222)
    except Exception:
        continue  # like compileall: a module that does not compile stays uncompiled (speed, not correctness)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    out.write(f"{pyc}\tsha256={digest}\t{len(data)}\n")
"""


@dataclass
class Staged:
    """One entry unpacked under the store's ``tmp/``, waiting for its bytecode and for the commit."""

    key: str
    wheel: WheelInfo
    root: Path
    files: list[list[Any]] = field(default_factory=list)  # [prefix-relative path, sha256=..., size]
    executables: set[str] = field(default_factory=set)  # prefix-relative paths of the files written executable
    scripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    record: str = ""
    compiled: list[list[Any]] = field(default_factory=list)  # [absolute .pyc path, sha256=..., size]
    meta: dict[str, Any] = field(default_factory=dict)  # entry.json, once finished


class CompilePool:
    """Target-interpreter processes compiling batches of ``.py`` files; one per core."""

    def __init__(self, runner: Runner, python: str, processes: int | None = None, batch: int = 150) -> None:
        self.python = python
        self.batch = batch
        self.jobs: queue.Queue[tuple[list[str], Callable[[list[list[Any]]], None]] | None] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.stopped = False
        for _ in range(processes or max(1, os.cpu_count() or 1)):
            proc = runner.start([python, "-I", "-S", "-c", _COMPILER, str(ENTRY_MTIME)], env=clean_env(), stdin=True)
            self.procs.append(proc)
            thread = threading.Thread(target=self._feed, args=(proc,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def submit(self, files: Sequence[str], done: Callable[[list[list[Any]]], None]) -> None:
        """Queue one batch of ``files`` (each ``source<TAB>name in the bytecode``); ``done`` is called when it is
        compiled (or failed), with the bytecode files written (``[path, sha256=..., size]``)."""
        self.jobs.put((list(files), done))

    def _feed(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        while True:
            job = self.jobs.get()
            if job is None:
                return
            files, done = job
            written: list[list[Any]] = []
            try:
                if self.stopped:
                    continue
                proc.stdin.write("".join(f"{f}\n" for f in files) + "\n")
                proc.stdin.flush()
                while (line := proc.stdout.readline()) != "done\n":
                    if not line:
                        raise OSError(f"the compiler exited with {proc.wait()}")
                    pyc, digest, size = line.rstrip("\n").split("\t")
                    written.append([pyc, digest, int(size)])
            except (OSError, ValueError) as exc:  # a dead pipe, or one closed by kill()
                if not self.stopped:
                    self.errors.append(f"bytecode compilation failed: {exc}")
            finally:
                done(written)

    def close(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        for proc in self.procs:
            with contextlib.suppress(OSError):
                if proc.stdin:
                    proc.stdin.close()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def kill(self) -> None:
        self.stopped = True
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.communicate(timeout=10)
        while True:  # release feeders waiting on the queue
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        for _ in self.threads:
            self.jobs.put(None)


def unpack(wheel: WheelBytes, name: str, root: Path, python_version: str, script_python: str = SCRIPT_PLACEHOLDER,
           cancelled: threading.Event | None = None, on_source: Callable[[str], None] | None = None,
           writers: ThreadPoolExecutor | None = None) -> Staged:
    """Install ``wheel`` into ``root`` (a prefix: ``lib/pythonX.Y/site-packages``, ``bin``, ``include``, data)
    from its bytes, as pip would into a virtualenv whose interpreter is ``script_python`` (a store entry's
    placeholder, by default). ``on_source`` hears of each module as soon as it is written (the compile pool
    starts on it while the rest is unpacked)."""
    from installer import install

    staged = Staged("", wheel.info, root)
    destination = _PipLikeDestination(root, name, python_version, script_python, staged)
    destination.cancelled = cancelled
    destination.on_source = on_source
    destination.writers = writers
    try:
        with wheel.zipfile() as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.filename = wheel.info.filename  # the library reads name and version from it
            source = _InMemoryWheel(zf, wheel.data)
            destination.wheel_record = wheel.info.record  # parsed once, when the wheel was read
            destination.members = set(zf.namelist())
            destination.data_dir = source.data_dir
            purelib = "root-is-purelib: true" in source.read_dist_info("WHEEL").lower()
            destination.root_scheme = "purelib" if purelib else "platlib"
            destination.entry_points = set(wheel.info.entry_points)
            install(source, destination, {"INSTALLER": INSTALLER_NAME, "REQUESTED": b""})
    except BaseException as exc:
        for future in destination.pending_writes:  # nothing may write into the staging folder after this
            with contextlib.suppress(BaseException):
                future.result()
        if isinstance(exc, (BuildError, UnsoundWheelError, OSError)) or not isinstance(exc, Exception):
            raise  # OSError: the disk, not the wheel (the CLI names the path and the cause)
        # the library's own errors for unsound wheels (bad RECORD, bad .data, ...)
        raise UnsoundWheelError(f"{wheel.info.filename} cannot be installed: {type(exc).__name__}: {exc}",
                                hint="the wheel is unsound; re-lock to another release or report it upstream") from None
    return staged


class _InMemoryWheel(WheelFile):
    """PyPA ``installer``'s wheel source with each member read by ``dists.members`` from the bytes already in
    memory (inflated by ISA-L, with zipfile's checks) instead of ``zipfile.open``: ``get_contents`` as the
    library's own, but for the stream."""

    def __init__(self, archive: zipfile.ZipFile, data: bytes) -> None:
        super().__init__(archive)
        self.archive, self.data = archive, data
        self.limits = data_limits(archive)

    def get_contents(self) -> Iterator[WheelContentElement]:
        records = {row[0]: row for row in record_rows(self.read_dist_info("RECORD"))}  # the one RECORD parser
        for item in self.archive.infolist():
            if item.filename.endswith("/"):  # a directory
                continue
            record = records.pop(item.filename, (item.filename, "", ""))  # the library validates RECORD
            mode = item.external_attr >> 16
            executable = bool(mode and stat.S_ISREG(mode) and mode & 0o111)  # pip's rule, as the library's
            yield record, open_member(self.data, self.archive, item, self.limits[item.filename]), executable


def _set_entry_mtime(fd: int, path: str) -> None:
    """The file's mtime is ``ENTRY_MTIME`` (through its descriptor where the OS allows, else by name)."""
    if os.utime in os.supports_fd:
        os.utime(fd, (ENTRY_MTIME, ENTRY_MTIME))
    else:  # Windows: by name (setting times is allowed on a read-only file)
        os.utime(path, (ENTRY_MTIME, ENTRY_MTIME))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _wrapper_of(filename: str) -> str:
    """The entry point a setuptools-generated wrapper stands for (``EP``, ``EP.exe``, ``EP-script.py``)."""
    lower = filename.lower()
    for suffix in (".exe", "-script.py", ".pya"):
        if lower.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def _pip_script_names(name: str, python_version: str) -> list[str]:
    """The scripts pip writes for one console entry point: ``pip`` becomes ``pip``, ``pipX`` and ``pipX.Y``
    (for the target's version) and pip's own ``pipN`` entries are dropped (pip's ``get_console_script_specs``);
    likewise ``easy_install``."""
    import re

    if name == "pip":
        return ["pip", f"pip{python_version.split('.')[0]}", f"pip{python_version}"]
    if re.match(r"pip(\d+(\.\d+)?)?$", name):
        return []
    if name == "easy_install":
        return ["easy_install", f"easy_install-{python_version}"]
    if re.match(r"easy_install(-\d+\.\d+)?$", name):
        return []
    return [name]


class _PipLikeDestination(WheelDestination):
    """A PyPA ``installer`` destination writing what pip writes into a virtualenv, rooted at a store entry.

    Creating a file costs far more than writing its bytes on most filesystems (measured here: ~150 us per
    ``open(O_CREAT)``), and torch alone has 12,000 files: members up to ``ASYNC_LIMIT`` are hashed in the
    unpacking thread and created and written by a shared pool of writer threads (the GIL is released in
    ``open`` and ``write``), handed over ``WRITE_BATCH`` at a time; a module goes to the compile pool once it
    is on disk."""

    def __init__(self, root: Path, name: str, python_version: str, script_python: str, staged: Staged) -> None:
        self.root = os.path.abspath(root)
        self.windows = os.name == "nt"  # console scripts are .exe launchers there (the store serves this host only)
        site, scripts = (os.path.join(self.root, rel) for rel in venv_scheme(python_version))
        self.site = site
        self.schemes = {"purelib": site, "platlib": site, "scripts": scripts, "data": self.root,
                        "headers": os.path.join(self.root, "include", "site", f"python{python_version}", name)}
        self.python = script_python
        self.python_version = python_version
        self.staged = staged
        self.wheel_record: dict[str, str] = {}
        self.members: set[str] = set()  # the wheel's own member names
        self.data_dir = ""
        self.root_scheme = "purelib"
        self.entry_points: set[str] = set()
        self.cancelled: threading.Event | None = None  # set when the install is abandoned: stop writing
        self.on_source: Callable[[str], None] | None = None
        self.writers: ThreadPoolExecutor | None = None
        self.pending_writes: list[Future[None]] = []
        self.batch: list[tuple[str, bytes, bool, bool]] = []  # small files for the writer pool, handed on together
        self.batch_bytes = 0
        self.made: set[str] = set()
        self.made_lock = threading.Lock()

    def _target(self, scheme: str, path: str) -> str:
        base = self.schemes[scheme]
        target = os.path.normpath(os.path.join(base, path))
        if not target.startswith(base + os.sep):
            raise BuildError(f"{self.staged.wheel.filename} installs {path} outside its {scheme} folder; refusing it")
        return target

    def _rel(self, target: str) -> str:
        """Prefix-relative, with ``/`` on every host (entry.json and RECORD read the same everywhere)."""
        return target[len(self.root) + 1:].replace(os.sep, "/")

    def _create(self, target: str, executable: bool) -> int:
        """A new file (never an existing one: ``O_EXCL``), read-only from the start like every file of a store
        entry (the descriptor that creates it may still write: no second pass over 30,000 files to chmod them);
        parent folders made once each."""
        if self.cancelled is not None and self.cancelled.is_set():
            raise BuildError("the store build was abandoned")
        parent = os.path.dirname(target)
        if parent not in self.made:
            os.makedirs(parent, exist_ok=True)
            with self.made_lock:
                self.made.add(parent)
        try:
            return os.open(target, _NEW_FILE, 0o555 if executable else 0o444)
        except FileExistsError:
            raise BuildError(f"{self.staged.wheel.filename} installs {self._rel(target)} twice",
                             hint="the wheel is unsound; re-lock to another release or report it upstream") from None

    def _create_and_write(self, target: str, data: bytes, executable: bool) -> None:
        fd = self._create(target, executable)
        try:
            _write_all(fd, data)
            _set_entry_mtime(fd, target)
        except OSError as exc:  # a full disk: say which file
            raise OSError(exc.errno, exc.strerror, target) from None
        finally:
            os.close(fd)

    def _place(self, scheme: str, path: str, data: bytes, executable: bool, digest: str) -> Any:
        """Write ``data`` (now, or with the next batch on the writer pool) and record it; returns the RECORD
        entry."""
        from installer.records import Hash, RecordEntry

        target = self._target(scheme, path)
        rel = self._rel(target)
        self.staged.files.append([rel, digest, len(data)])
        if executable:
            self.staged.executables.add(rel)
        source = scheme in ("purelib", "platlib") and rel.endswith(".py")
        if self.writers is not None and len(data) <= ASYNC_LIMIT:
            self.batch.append((target, data, executable, source))
            self.batch_bytes += len(data)
            if len(self.batch) >= WRITE_BATCH or self.batch_bytes >= ASYNC_LIMIT:
                self._submit_batch()
        else:
            self._write_then_announce([(target, data, executable, source)])
        return RecordEntry(path, Hash("sha256", digest.split("=", 1)[1]), len(data))

    def _submit_batch(self) -> None:
        if self.batch and self.writers is not None:
            self.pending_writes.append(self.writers.submit(self._write_then_announce, self.batch))
        self.batch, self.batch_bytes = [], 0

    def _write_then_announce(self, batch: list[tuple[str, bytes, bool, bool]]) -> None:
        for target, data, executable, source in batch:
            self._create_and_write(target, data, executable)
            if source and self.on_source is not None:
                self.on_source(target)

    def wait_for_writes(self) -> None:
        """Every queued write done; the first error raised."""
        self._submit_batch()
        for future in self.pending_writes:
            future.result()
        self.pending_writes = []

    # the WheelDestination protocol -------------------------------------------------------------------
    def write_file(self, scheme: str, path: str | os.PathLike[str], stream: BinaryIO, is_executable: bool) -> Any:
        path = os.fspath(path)
        if scheme == "scripts" and _wrapper_of(os.path.basename(path)) in self.entry_points:
            return None  # pip skips setuptools' own wrappers of entry points: it generates them itself
        archive = path if scheme == self.root_scheme else f"{self.data_dir}/{scheme}/{path}"
        expected = self.wheel_record.get(archive, "")
        data = stream.read(ASYNC_LIMIT + 1)
        if len(data) > ASYNC_LIMIT and scheme != "scripts":
            return self._stream(scheme, path, archive, expected, data, stream, is_executable)
        data += stream.read()
        digest = record_digest(data)
        self._check(archive, expected, digest, data)
        if scheme == "scripts" and data.startswith(b"#!python"):  # pip's fix_script
            header = fixed_shebang(self.python)
            data = header + data.partition(b"\n")[2]
            digest = record_digest(data)
            self.staged.scripts[self._rel(self._target(scheme, path))] = {"kind": "fixed", "header": len(header)}
        return self._place(scheme, path, data, is_executable, digest)

    def _stream(self, scheme: str, path: str, archive: str, expected: str, head: bytes, stream: BinaryIO,
                executable: bool) -> Any:
        """A large member (a CUDA library is hundreds of MB): written in chunks as it is decompressed, hashed on
        the way, never whole in memory."""
        from installer.records import Hash, RecordEntry

        target = self._target(scheme, path)
        digest, size = hashlib.sha256(), 0
        algorithm = expected.partition("=")[0]
        other = hashlib.new(algorithm) if algorithm in ALLOWED_HASHES and algorithm != "sha256" else None
        fd = self._create(target, executable)
        try:
            chunk = head
            while chunk:
                digest.update(chunk)
                if other is not None:
                    other.update(chunk)
                _write_all(fd, chunk)
                size += len(chunk)
                chunk = stream.read(CHUNK)
            _set_entry_mtime(fd, target)
        except OSError as exc:  # a full disk: say which file
            raise OSError(exc.errno, exc.strerror, target) from None
        finally:
            os.close(fd)
        got = record_form(digest.digest())
        self._check(archive, expected, got, other=None if other is None else
                    f"{algorithm}=" + base64.urlsafe_b64encode(other.digest()).rstrip(b"=").decode())
        self.staged.files.append([self._rel(target), got, size])
        if executable:
            self.staged.executables.add(self._rel(target))
        return RecordEntry(path, Hash("sha256", got.split("=", 1)[1]), size)

    def _check(self, archive: str, expected: str, got: str, data: bytes | None = None,
               other: str | None = None) -> None:
        """The member against its RECORD row, whatever allowed algorithm the row names (``got`` is its sha256;
        another algorithm is computed from ``data``, or given as ``other`` for a streamed member). The scan
        refused rows with no hash or a weak one before anything was unpacked."""
        if archive not in self.members:
            return  # a file the installer adds (INSTALLER, REQUESTED), not a member of the wheel
        algorithm = expected.partition("=")[0]
        if not expected or algorithm not in ALLOWED_HASHES:
            raise UnsoundWheelError(f"{self.staged.wheel.filename}: {archive} has no sound hash in the wheel's "
                                    "RECORD")
        actual = got if algorithm == "sha256" else other if other is not None else digest_of(algorithm, data or b"")
        if actual != expected:
            raise UnsoundWheelError(f"{self.staged.wheel.filename}: {archive} does not match its hash in the wheel's "
                                    "RECORD", hint="the wheel was altered after it was built; do not install it")

    def write_script(self, name: str, module: str, attr: str, section: str) -> Any:
        entry = None
        body = (SCRIPT_TEMPLATE % {"module": module, "import_name": attr.split(".")[0], "func": attr}).encode()
        for script in _pip_script_names(name, self.python_version):
            info: dict[str, Any]
            if self.windows:  # <name>.exe: the launcher, its #! line, the zipped script
                data, info = windows_launcher(self.python, body, gui=section == "gui")
                script += ".exe"
            else:
                header = console_shebang(self.python)
                data, info = header + body, {"kind": "console", "header": len(header)}
            entry = self._place("scripts", script, data, True, record_digest(data))
            self.staged.scripts[self._rel(self._target("scripts", script))] = info
        return entry

    def finalize_installation(self, scheme: str, record_file_path: str, records: Iterable[tuple[str, Any]]) -> None:
        rows = []
        for file_scheme, record in records:
            if record is None:
                continue
            target = self._target(file_scheme, record.path)
            inside = target.startswith(self.site + os.sep)  # most rows: relpath's cost (0.3 s for a stack) spared
            rel = (target[len(self.site) + 1:] if inside else os.path.relpath(target, self.site)).replace(os.sep, "/")
            digest = f"{record.hash_.name}={record.hash_.value}" if record.hash_ else ""
            rows.append((rel, digest, "" if record.size is None else str(record.size)))
        buf = io.StringIO()
        csv.writer(buf).writerows(sorted(rows))  # pip: sorted rows, csv's default "\r\n"
        data = buf.getvalue().encode("utf-8")
        target = self._target(scheme, record_file_path)
        self._create_and_write(target, data, False)
        self.staged.files.append([self._rel(target), record_digest(data), len(data)])
        self.staged.record = self._rel(target)
        self.wait_for_writes()


class EntryBuilder:
    """Unpacks wheels into staged entries on a thread pool while a compile pool turns their sources into
    bytecode. Each entry is finished as soon as its last batch is compiled (its ``entry.json`` written beside it
    under ``tmp/``) and handed to ``on_ready``, so that a generation can link it while the others still compile;
    the caller renames the finished entries into the store only once the whole set passed its checks."""

    def __init__(self, runner: Runner, tmp: Path, python: str, interp: str, python_version: str,
                 processes: int | None = None, on_ready: Callable[[Staged], None] | None = None) -> None:
        self.tmp = tmp
        self.python = python
        self.interp = interp
        self.python_version = python_version
        self.on_ready = on_ready
        self.cores = processes or max(1, os.cpu_count() or 1)
        self.compiler = CompilePool(runner, python, self.cores)
        self.unpackers = ThreadPoolExecutor(max_workers=2)  # one reads the zip while the other waits on disk
        self.writers = ThreadPoolExecutor(max_workers=2)  # file creation overlaps decompression (more contend)
        self.lock = threading.Lock()
        self.pending: dict[str, int] = {}
        self.bytecode: dict[str, list[list[Any]]] = {}
        self.changed = threading.Condition(self.lock)
        self.staged: dict[str, Staged] = {}
        self.finished: set[str] = set()
        self.errors: list[BaseException] = []
        self.futures: list[Future[Staged]] = []
        self.slots = threading.BoundedSemaphore(self.cores + 1)  # wheels held in memory at once
        self.cancelled = threading.Event()

    def add(self, key: str, name: str, wheel: WheelBytes, expected_sha256: str) -> Future[Staged]:
        """Unpack ``wheel`` (already read) into a staged entry in the background."""
        if wheel.info.sha256 != expected_sha256:
            raise WheelhouseError(f"sha256 mismatch: {wheel.info.filename} (expected {expected_sha256[:16]}..., "
                                  f"found {wheel.info.sha256[:16]}...)",
                                  hint="run `immutable-installer download` to fetch it again")
        self.slots.acquire()
        future = self.unpackers.submit(self._unpack, key, name, wheel)
        self.futures.append(future)
        return future

    def _unpack(self, key: str, name: str, wheel: WheelBytes) -> Staged:
        """Unpack one wheel; its modules go to the compile pool in batches while the rest is still written.
        ``pending[key]`` counts the unpacking itself plus every batch not yet compiled: 0 means done."""
        root = self.tmp / key / "root"
        batch: list[str] = []
        batch_lock = threading.Lock()  # the writer threads announce modules concurrently
        with self.lock:
            self.pending[key] = 1
            self.bytecode[key] = []

        def flush() -> None:
            with batch_lock:
                files = list(batch)
                batch.clear()
            if files:
                with self.lock:
                    self.pending[key] += 1
                self.compiler.submit(files, lambda written: self._batch_done(key, written))

        def on_source(path: str) -> None:
            named = os.path.relpath(path, root).replace(os.sep, "/")  # what the bytecode calls it: no store path
            with batch_lock:
                batch.append(f"{path}\t{named}")
                full = len(batch) >= self.compiler.batch
            if full:
                flush()

        try:
            staged = unpack(wheel, name, root, self.python_version, SCRIPT_PLACEHOLDER, self.cancelled, on_source,
                            self.writers)
        finally:
            self.slots.release()  # after an error pending[key] never reaches 0: wait() raises it
        flush()
        staged.key = key
        with self.lock:
            self.staged[key] = staged
        self._batch_done(key, [])  # the unpacking is done
        return staged

    def _batch_done(self, key: str, written: list[list[Any]]) -> None:
        with self.lock:
            self.bytecode[key].extend(written)
            self.pending[key] -= 1
            last = self.pending[key] == 0
        if last:
            self._finish(key)

    def _finish(self, key: str) -> None:
        """The entry's ``entry.json`` beside its files, then ``on_ready``; an error is kept for ``wait``."""
        try:
            staged = self.staged[key]
            staged.compiled = self.bytecode[key]
            staged.meta = finish(staged, self.interp, self.python)
            write_entry_json(staged.root.parent, staged.meta)
            if self.on_ready is not None and not self.cancelled.is_set():
                self.on_ready(staged)
        except BaseException as exc:  # a compile feeder or an unpacker runs this: it must not die of it
            self.errors.append(exc)
        finally:
            with self.lock:
                self.finished.add(key)
                self.changed.notify_all()

    def wait(self, on_progress: Callable[[int, int], None] | None = None) -> list[Staged]:
        """Every staged entry unpacked, compiled and finished; the first error is raised."""
        for future in self.futures:
            future.result()
        total = len(self.futures)
        with self.lock:
            while len(self.finished) < total and not self.errors:
                self.changed.wait(timeout=1.0)
                if on_progress is not None:
                    on_progress(len(self.finished), total)
        if self.errors:
            raise self.errors[0]
        if self.compiler.errors:
            raise BuildError(self.compiler.errors[0])
        return list(self.staged.values())

    def close(self) -> None:
        self.unpackers.shutdown(wait=True, cancel_futures=True)
        self.writers.shutdown(wait=True)
        self.compiler.close()

    def kill(self) -> None:
        """Stop everything and return only when nothing writes into the staging folder any more."""
        self.cancelled.set()
        self.compiler.kill()
        self.unpackers.shutdown(wait=True, cancel_futures=True)
        self.writers.shutdown(wait=True, cancel_futures=True)


def finish(staged: Staged, interp: str, build_python: str) -> dict[str, Any]:
    """The entry's ``entry.json`` contents: every file the unpacking wrote and every bytecode file the compile
    pool wrote, each with the hash taken while it was written, and the entry's content digest computed from
    them; and what the scan read from the wheel's bytes (``wheel_facts``), so that a later install scans the
    wheel without reading it again."""
    files = list(staged.files)
    files += [[os.path.relpath(pyc, staged.root).replace(os.sep, "/"), digest, size]
              for pyc, digest, size in staged.compiled]
    files.sort()
    executables = sorted(staged.executables)
    return {
        "format": ENTRY_FORMAT, "key": staged.key, "interpreter": interp, "name": staged.wheel.name,
        "version": staged.wheel.version, "wheel": staged.wheel.filename, "sha256": staged.wheel.sha256,
        "build_python": build_python, "record": staged.record, "files": files, "executables": executables,
        "content_digest": entry_digest(files, executables), "scripts": staged.scripts,
        "wheel_facts": staged.wheel.facts(), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def entry_digest(files: Iterable[Sequence[Any]], executables: Iterable[str]) -> str:
    """An entry's content digest: ``sha256:`` of its canonical listing, one line per file, sorted by path:
    ``path<TAB>x|-<TAB>size<TAB>sha256=...`` (``x``: written executable). Every file's bytes, name and mode are
    in it, nothing of the machine (owner, times, the umask, the store's path); it is computed from the hashes
    taken while the files were written, so the cold fill pays nothing for it (a digest of the entry as a tar
    would read every byte again: docs/decisions.md)."""
    marked = set(executables)
    lines = [f"{rel}\t{'x' if rel in marked else '-'}\t{size}\t{digest}\n"
             for rel, digest, size in sorted((str(f[0]), str(f[1]), int(f[2])) for f in files)]
    return "sha256:" + hashlib.sha256(("immutable-installer entry 1\n" + "".join(lines)).encode()).hexdigest()


def write_entry_json(staging: Path, meta: dict[str, Any]) -> None:
    """Read-only, like the entry's files."""
    fd = os.open(staging / "entry.json", _NEW_FILE, 0o444)
    try:
        _write_all(fd, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    finally:
        os.close(fd)
