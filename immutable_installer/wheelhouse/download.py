"""The wheelhouse: audit what is there, fetch what is missing, never leave a partial file behind.

A wheel's identity is its filename + sha256, not where it came from: a file found in a ``--find-links``
folder, in the user's configured find-links, at its pinned URL, or fetched by ``pip download`` from its
pinned index (or, if that is unreachable, from the user's configured indexes) is the same file once its
hash matches. Files only ever appear by an atomic rename after the hash matched; concurrent downloaders
are serialised by a file lock on the wheelhouse.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from immutable_installer import net_settings
from immutable_installer.core.errors import LockHeldError, WheelhouseError
from immutable_installer.core.events import Message, Phase, PhaseDone, Progress, Reporter, null_reporter
from immutable_installer.core.model import Manifest, Platform
from immutable_installer.core.selection import Needed, Selection
from immutable_installer.core.tags import expand_platform_tags
from immutable_installer.core.urls import mask_text, mask_url
from immutable_installer.dists.hashing import hash_files, sha256_file
from immutable_installer.net import (
    CA_HINT,
    UntrustedSource,
    credentials_for,
    fetch,
    index_env_prefix,
    probe_index,
    remember,
    with_credentials,
)
from immutable_installer.runner import Runner, clean_env

LOCK_NAME = ".immutable-installer.lock.locker"


@dataclass
class Audit:
    """State of the wheelhouse against what is needed."""

    present: list[Needed] = field(default_factory=list)
    missing: list[Needed] = field(default_factory=list)
    bad_hash: list[tuple[Needed, str]] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.bad_hash

    def problems(self) -> list[str]:
        lines = [f"missing: {n.wheel.filename} ({n.package.name} {n.package.version})" for n in self.missing]
        lines += [f"sha256 mismatch: {n.wheel.filename} (expected {n.wheel.sha256[:16]}..., found {got[:16]}...)"
                  for n, got in self.bad_hash]
        return lines


def audit(wheelhouse: Path, needed: Sequence[Needed], checked: Mapping[str, str] | None = None) -> Audit:
    """Which needed files are present with the right hash, missing or wrong; which files are strays.

    ``checked`` (filename -> sha256) names files this process hashed itself a moment ago (while placing
    them under the wheelhouse lock): they are not read a second time."""
    result = Audit()
    checked = checked or {}
    paths = [wheelhouse / n.wheel.filename for n in needed]
    exists = [p.is_file() for p in paths]
    todo = [p for p, e in zip(paths, exists, strict=True) if e and p.name not in checked]
    fresh = dict(zip([p.name for p in todo], hash_files(todo), strict=True))
    hashes = [checked.get(p.name) or fresh.get(p.name) for p, e in zip(paths, exists, strict=True) if e]
    it = iter(hashes)
    for item, there in zip(needed, exists, strict=True):
        if not there:
            result.missing.append(item)
            continue
        digest = next(it)
        if digest is None:
            result.missing.append(item)
        elif digest != item.wheel.sha256:
            result.bad_hash.append((item, digest))
        else:
            result.present.append(item)
    wanted = {n.wheel.filename for n in needed}
    if wheelhouse.is_dir():
        result.strays = sorted(p.name for p in wheelhouse.iterdir() if p.suffix == ".whl" and p.name not in wanted)
    return result


def wheelhouse_lock(wheelhouse: Path, wait: bool, reporter: Reporter = null_reporter) -> FileLock:
    """Acquire the wheelhouse lock (the OS drops it when its holder dies, so a killed run never blocks)."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(wheelhouse / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise LockHeldError(f"another installer is using the wheelhouse {wheelhouse}") from None
        reporter(Message("info", f"waiting for another installer to release {wheelhouse} ..."))
        lock.acquire()
    return lock


def configured_find_links() -> list[str]:
    """Local find-links folders of the user's pip configuration."""
    found = net_settings.current().pip.get("find-links", "").split()
    out = []
    for item in found:
        local = item[7:] if item.startswith("file://") else item
        if "://" not in local and os.path.isdir(local) and local not in out:
            out.append(local)
    return out


class Downloader:
    """Fills the wheelhouse with exactly the needed files."""

    def __init__(self, wheelhouse: Path, reporter: Reporter = null_reporter,
                 find_links: Iterable[str] = (), use_configured_sources: bool = True,
                 index_url: str | None = None) -> None:
        """``index_url`` replaces every index of the manifest (a mirror, an exported static index): the
        pinned files are then taken from it alone (and explicit ``find_links``), with the node's certificate,
        proxy and credential settings kept."""
        self.wheelhouse = wheelhouse
        self.runner = Runner()
        self.report = reporter
        self.find_links = [str(p) for p in find_links]
        self.use_configured = use_configured_sources and index_url is None
        self.index_url = index_url
        self._done_bytes = 0.0
        self._total: float | None = None
        self._files_seen: set[str] = set()
        self._files_total = 0
        self._checked: dict[str, str] = {}  # files placed (and hashed) by this run

    def download(self, selection: Selection, wait: bool = True) -> Audit:
        started = time.monotonic()
        self.report(Phase("download", f"wheelhouse {self.wheelhouse}"))
        manifest, platform, needed = selection.manifest, selection.platform, selection.wheels
        lock = wheelhouse_lock(self.wheelhouse, wait, self.report)
        try:
            self._remove_partials()
            state = audit(self.wheelhouse, needed)
            for item, got in state.bad_hash:
                self.report(Message("warn", f"{item.wheel.filename}: sha256 mismatch ({got[:12]}...), re-fetching"))
                (self.wheelhouse / item.wheel.filename).unlink()
            todo = state.missing + [n for n, _ in state.bad_hash]
            total = sum(n.wheel.size or 0 for n in todo)
            self.report(Message("info", f"{len(state.present)} of {len(needed)} wheels already present, "
                                        f"{len(todo)} to fetch"))
            self._done_bytes = 0.0
            self._checked = {}
            self._total = float(total) if total else None
            self._files_seen, self._files_total = set(), len(todo)
            todo = self._from_local(todo)
            todo = self._from_paths(todo)
            todo = self._from_builds(todo, manifest)
            if self.index_url is None:
                todo = self._from_urls(todo)
            if todo:
                self._with_pip(manifest, platform, todo)
            final = audit(self.wheelhouse, needed, self._checked)
            if not final.ok:
                raise WheelhouseError(f"{len(final.problems())} wheel(s) could not be fetched: {final.problems()[0]}",
                                      details=final.problems())
            self.report(PhaseDone("download", time.monotonic() - started))
            return final
        finally:
            lock.release()

    # -- sources, cheapest first
    def _progress(self, nbytes: int, item: str = "") -> None:
        if nbytes <= 0:
            return
        self._done_bytes += nbytes
        if item and item not in self._files_seen:
            self._files_seen.add(item)
        label = f"{len(self._files_seen)}/{self._files_total} {item}" if item else ""
        self.report(Progress("download", self._done_bytes, self._total, "bytes", label))

    def _place(self, source: Path, item: Needed, count: bool = True, move: bool = False) -> bool:
        """Copy (or ``move``, for a file we downloaded into the wheelhouse's own temporary folder) a candidate
        in under a temporary name; rename it into place only if its hash matches."""
        dest = self.wheelhouse / item.wheel.filename
        tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        try:
            if move:
                os.replace(source, tmp)
            else:
                shutil.copyfile(source, tmp)
            digest = sha256_file(tmp)
            if digest != item.wheel.sha256:
                tmp.unlink()
                return False
            os.replace(tmp, dest)
            self._checked[dest.name] = digest
        except OSError:
            tmp.unlink(missing_ok=True)
            return False
        if count:
            self._progress(dest.stat().st_size, item.wheel.filename)
        return True

    def _from_local(self, todo: list[Needed]) -> list[Needed]:
        folders = self.find_links + (configured_find_links() if self.use_configured else [])
        left = []
        for item in todo:
            for folder in folders:
                candidate = Path(folder) / item.wheel.filename
                if candidate.is_file() and self._place(candidate, item):
                    self.report(Message("info", f"{item.wheel.filename}: from {folder}"))
                    break
            else:
                left.append(item)
        return left

    def _from_paths(self, todo: list[Needed]) -> list[Needed]:
        """Local wheels the requirements named by path (relative to the current folder), read, never written."""
        left = []
        for item in todo:
            source = Path(item.wheel.path) if item.wheel.path else None
            if source is None or not source.is_file():
                if source is not None:
                    self.report(Message("warn", f"{item.wheel.filename}: {item.wheel.path} is not there"))
                left.append(item)
            elif self._place(source, item):
                self.report(Message("info", f"{item.wheel.filename}: from {item.wheel.path}"))
            else:
                raise WheelhouseError(f"{item.wheel.path} is not the pinned file (sha256 {item.wheel.sha256[:16]}...)",
                                      hint="the local wheel changed since the lock: re-lock, or restore it")
        return left

    def _from_builds(self, todo: list[Needed], manifest: Manifest) -> list[Needed]:
        """Wheels `lock --build` built from sdists: from the cache of built wheels, else built again from the
        recorded sdist and build requirements, and taken only if the bytes are the pinned ones."""
        left = []
        for item in todo:
            if item.wheel.build is None:
                left.append(item)
                continue
            from immutable_installer.wheelhouse.built import BuiltWheels

            cached = BuiltWheels().get(item.wheel.sha256)
            if cached is not None and self._place(cached.path, item):
                self.report(Message("info", f"{item.wheel.filename}: built from {item.wheel.build.sdist} before"))
                continue
            if self.index_url is not None:
                left.append(item)  # an exported index serves the built wheel like any other
                continue
            self._rebuild(item, manifest)
        return left

    def _rebuild(self, item: Needed, manifest: Manifest) -> None:
        from immutable_installer.interpreters import find_interpreter
        from immutable_installer.wheelhouse.sdist_build import SdistBuilder, read_build_system

        built = item.wheel.build
        assert built is not None
        if not built.sdist_url:
            raise WheelhouseError(f"{item.wheel.filename} was built from {built.sdist}, which has no public URL to "
                                  "build it from again", hint="copy the wheelhouse of the machine that locked it")
        self.report(Message("warn", f"{item.wheel.filename}: building it again from {built.sdist} (its code runs in "
                                    "the build sandbox)"))
        with tempfile.TemporaryDirectory(prefix=".build-", dir=self.wheelhouse) as tmp:
            sdist = Path(tmp) / built.sdist
            fetch(built.sdist_url, sdist, built.sdist_sha256)
            work = Path(tmp) / "build"
            work.mkdir()
            builder = SdistBuilder(work, find_interpreter(manifest.python.minor, manifest.python.implementation),
                                   reporter=self.report)
            system = read_build_system(sdist)
            if system.backend != built.backend:
                raise WheelhouseError(f"{built.sdist} names the build backend {system.backend}, not the recorded "
                                      f"{built.backend}")
            wheel, _ = builder.build(sdist, built.requires, system)
            got = sha256_file(wheel)
            if got != item.wheel.sha256:
                raise WheelhouseError(f"{item.wheel.filename} built again from {built.sdist} has sha256 {got[:16]}..., "
                                      f"not the pinned {item.wheel.sha256[:16]}...: the build is not reproducible "
                                      "here, and other bytes are never used",
                                      hint="copy the wheel built at lock time (the locking machine's wheelhouse, a "
                                           "bundle or an exported index) into the wheelhouse")
            if not self._place(wheel, item, move=True):
                raise WheelhouseError(f"{item.wheel.filename} could not be placed in the wheelhouse")

    def _from_urls(self, todo: list[Needed]) -> list[Needed]:
        left = []
        for item in todo:
            if not item.wheel.url:
                left.append(item)
                continue
            try:
                fetch(item.wheel.url, self.wheelhouse / item.wheel.filename, item.wheel.sha256,
                      size=item.wheel.size, on_bytes=functools.partial(self._progress, item=item.wheel.filename))
                self.report(Message("info", f"{item.wheel.filename}: from {mask_url(item.wheel.url)}"))
            except UntrustedSource:
                raise
            except WheelhouseError as exc:
                self.report(Message("warn", f"{exc.message}; trying the package index"))
                left.append(item)
        return left

    def _with_pip(self, manifest: Manifest, platform: Platform, todo: list[Needed]) -> None:
        """``pip download --no-deps --only-binary :all: --require-hashes``, one call per pinned index.

        pip saves nothing when one file of a call fails, so a failed call is followed by one call per file
        still missing: every file that can be fetched is kept, and the next run fetches only the rest.
        """
        by_index: dict[str, list[Needed]] = {}
        for item in todo:
            if item.package.index is None and not self.index_url:
                source = item.wheel.url or item.wheel.path
                raise WheelhouseError(f"{item.wheel.filename} could not be fetched from {mask_url(str(source))}",
                                      hint="it comes from no index: make the URL or the file reachable, or put the "
                                           "wheel into the wheelhouse (or a --find-links folder)")
            by_index.setdefault("--index-url" if self.index_url else str(item.package.index), []).append(item)
        for index_name, items in sorted(by_index.items()):
            url = remember(self.index_url) if self.index_url else remember(manifest.index(index_name).url,
                                                                            index_name)
            status, failure = probe_index(url)
            if status is None and "certificate" in failure:
                raise WheelhouseError(f"index {index_name} ({mask_url(url)}) cannot be used: {failure}", hint=CA_HINT)
            if status is not None and status >= 500:
                raise WheelhouseError(f"index {index_name} ({mask_url(url)}) answers HTTP {status}: a server error",
                                      hint="the index itself is failing; try again later, or use a mirror "
                                           "(download --index-url)")
            if status in (401, 403):
                variables = index_env_prefix(index_name if not self.index_url else "default")
                raise WheelhouseError(f"index {index_name} ({mask_url(url)}) asks for credentials (HTTP {status})"
                                      + (" and refused the ones given" if credentials_for(url) else ""),
                                      hint=f"supply them at run time: {variables}USERNAME and {variables}PASSWORD, "
                                           "~/.netrc (or $NETRC), or keyring; they are never written to a file")
            use_index = self.index_url is not None or status is not None
            if not use_index:
                self.report(Message("warn", f"index {index_name} ({mask_url(url)}) is unreachable; looking for the "
                                            "same files in your configured pip sources"))
            self.report(Message("info", f"pip download: {len(items)} wheel(s) from {index_name}"))
            error = self._pip_download(manifest, platform, items, url if use_index else None)
            missing = [n for n in items if not (self.wheelhouse / n.wheel.filename).is_file()]
            if error and len(items) > 1 and missing:
                errors = [e for n in missing if (e := self._pip_download(manifest, platform, [n],
                                                                           url if use_index else None))]
                error = errors[0] if errors else error
                missing = [n for n in items if not (self.wheelhouse / n.wheel.filename).is_file()]
            if missing:
                names = [n.wheel.filename for n in missing]
                raise WheelhouseError(f"{names[0]}: pip download from {mask_url(url)} failed: {error}",
                                      details=names, hint=_download_hint(error))

    def _pip_download(self, manifest: Manifest, platform: Platform, items: list[Needed], url: str | None) -> str:
        """One pip call for ``items``; every file it fetched is placed. Returns pip's error ("" if none): its
        cause when pip names one (an untrusted certificate, a server error) rather than its last line."""
        with tempfile.TemporaryDirectory(prefix=".download-", dir=self.wheelhouse) as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text("".join(f"{n.package.name}=={n.package.version} --hash=sha256:{n.wheel.sha256}\n"
                                    for n in items), encoding="utf-8")
            out = Path(tmp) / "out"
            args = [self.runner.python(), "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                    "--require-hashes", "--disable-pip-version-check", "--progress-bar", "off", "--no-input",
                    "-d", str(out), "-r", str(reqs),
                    "--python-version", manifest.python.version,
                    "--implementation", "cp" if manifest.python.implementation == "cpython" else "pp"]
            for tag in expand_platform_tags(platform.tags):
                args += ["--platform", tag]
            if url is not None:  # the credentials remembered for its host (a variable, the command line)
                args += ["--index-url", with_credentials(url)]
            # how to reach the index (trust, client certificate, proxy) is the one decision every request and
            # child shares (net_settings.py), given on the command line so that it holds in every mode below
            network = net_settings.current()
            args += network.pip_args()
            env = clean_env(network.pip_env(), keep_pip=self.use_configured)
            if self.index_url is not None:  # no other index or find-links of the node's configuration
                env = clean_env({**network.pip_env(), "PIP_CONFIG_FILE": os.devnull})
            elif not self.use_configured:
                args.append("--isolated")
            for folder in self.find_links:
                args += ["--find-links", folder]
            if _pip_at_least(24, 1):
                args += ["--progress-bar", "raw"]  # byte progress we can parse
            if _pip_at_least(25, 1):
                args += ["--resume-retries", "5"]  # an interrupted body is resumed with a Range request
            tracker = _PipProgress(self._progress, {n.wheel.filename: n.wheel.size or 0 for n in items})
            result = self.runner.stream(args, on_line=tracker.line, env=env, timeout=3600)
            for item in items:
                got = out / item.wheel.filename
                if got.is_file():
                    self._place(got, item, count=False, move=True)  # pip's progress already counted it
        return "" if result.ok else mask_text(_pip_cause(result.stderr) or _last_error(result.stderr))

    def _remove_partials(self) -> None:
        """Part files left by a killed downloader (we hold the lock, so none is being written)."""
        for path in self.wheelhouse.glob(".*.part-*"):
            path.unlink(missing_ok=True)
        for path in self.wheelhouse.glob(".download-*"):
            shutil.rmtree(path, ignore_errors=True)


class _PipProgress:
    """Turns pip's ``--progress-bar raw`` output into byte progress, per file and capped at its size.

    pip prints ``Downloading <file>`` / ``Processing <path>``, then ``Progress N of M`` lines for network
    downloads only, then ``Saved <path>``; a file copied from a local mirror counts whole when saved.
    """

    _PROGRESS = re.compile(r"^Progress (\d+) of (\d+)")
    _SAVED = re.compile(r"Saved (.+\.whl)$")
    _STARTED = re.compile(r"^(?:Downloading|Processing|File was already downloaded) (\S+)")

    def __init__(self, report: Callable[[int, str], None], sizes: dict[str, int]) -> None:
        self.report = report
        self.sizes = sizes
        self.counted: dict[str, int] = {}
        self.current = ""

    def _advance(self, name: str, upto: int) -> None:
        cap = self.sizes.get(name) or upto
        target = min(upto, cap)
        delta = target - self.counted.get(name, 0)
        if delta > 0:
            self.counted[name] = target
            self.report(delta, name)

    def line(self, text: str) -> None:
        text = text.strip()
        match = self._PROGRESS.match(text)
        if match and self.current:
            done, total = int(match.group(1)), int(match.group(2))
            pinned = self.sizes.get(self.current)
            if pinned and max(done, total) > pinned:  # raised inside the runner's loop: pip is killed at once
                raise UntrustedSource(f"{self.current}: the index sends {max(done, total)} bytes, but the pinned "
                                      f"file has {pinned}; cut off",
                                      hint="the index serves a different file than the manifest pins; do not "
                                           "trust it")
            self._advance(self.current, done)
            return
        started = self._STARTED.match(text)
        if started:
            self.current = os.path.basename(started.group(1))
            return
        saved = self._SAVED.search(text)
        if saved:
            name = os.path.basename(saved.group(1))
            self._advance(name, self.sizes.get(name, 0))
            self.current = ""


@functools.cache
def _pip_version() -> tuple[int, int]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(p) for p in version("pip").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return (0, 0)
    return (major, minor)


def _pip_at_least(major: int, minor: int) -> bool:
    """``--progress-bar raw`` exists since pip 24.1, ``--resume-retries`` since 25.1."""
    return _pip_version() >= (major, minor)


def _pip_cause(stderr: str) -> str:
    """What pip's retries hide behind "Could not find a version": an untrusted certificate, a server error."""
    if "CERTIFICATE_VERIFY_FAILED" in stderr:
        found = re.search(r"certificate verify failed: ([^(')]+)", stderr)
        return f"the index's TLS certificate is not trusted here ({(found.group(1) if found else '').strip()})"
    found = re.search(r"(\d{3}) Server Error[^\n]*|HTTP error (5\d\d)[^\n]*", stderr)
    if found:
        return f"the index answers HTTP {found.group(1) or found.group(2)}: a server error"
    return ""


def _download_hint(error: str) -> str:
    if "certificate" in error:
        return CA_HINT
    if "server error" in error:
        return "the index itself is failing; try again later, or use a mirror (download --index-url)"
    return "run the same command again: files already fetched are kept and only the missing ones are downloaded"


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip().startswith("ERROR")]
    return (lines[0] if lines else (stderr.strip().splitlines() or ["no output"])[-1]).removeprefix("ERROR: ")


def require_complete(wheelhouse: Path, selection: Selection) -> Audit:
    """Offline mode: every needed file present with the right hash, else exit 4 listing all problems."""
    state = audit(wheelhouse, selection.wheels)
    if not state.ok:
        problems = state.problems()
        raise WheelhouseError(f"the wheelhouse {wheelhouse} is incomplete: {len(problems)} problem(s), first: "
                              f"{problems[0]}", details=problems,
                              hint="run `immutable-installer download` with network, then retry")
    return state
