"""One error hierarchy, one exit code per kind of failure (the contract in DESIGN.md).

Services raise these; only ``cli`` turns them into an exit code and a red line with a hint (and, with
``--json``, an ``error`` event whose ``kind`` is stable: programs and the GUI branch on it, never on the text),
so a message is written once, where the cause is known, and every command reports it the same way.
"""

from __future__ import annotations


class ExitCode:
    """The documented exit codes (docs/reference/cli.md)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    BLACKLISTED = 3
    WHEELHOUSE = 4
    LOCKED = 5
    FILE_CLASH = 6
    STARTUP_CODE = 7
    INTERRUPTED = 130  # SIGINT; SIGTERM and SIGHUP exit 128 + their number (143, 129), as a shell reports them


class InstallerError(Exception):
    """Root of every expected failure: a one-line message, a hint, an exit code."""

    kind = "failed"

    exit_code: int = ExitCode.FAILED
    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details: list[str] = list(details or [])

    def __str__(self) -> str:
        return self.message

    def to_event(self) -> dict[str, object]:
        """The ``error`` event of ``--json`` output."""
        return {"event": "error", "kind": self.kind, "exit_code": self.exit_code, "message": self.message,
                "hint": self.hint, "details": self.details}


class UsageError(InstallerError):
    """Bad flags or arguments; nothing was touched."""

    kind = "usage"

    exit_code = ExitCode.USAGE
    default_hint = "run with --help to see the accepted options"


class ManifestError(InstallerError):
    """The manifest (or lock spec) is invalid; the message names the JSON path of the bad field."""

    kind = "manifest"

    exit_code = ExitCode.USAGE
    default_hint = "fix the field named above, or regenerate the manifest with `immutable-installer lock`"

    def __init__(self, path: str, message: str, *, file: str | None = None, hint: str | None = None) -> None:
        where = f"{file}: " if file else ""
        at = f"{path}: " if path else ""
        super().__init__(f"{where}{at}{message}", hint)
        self.path = path
        self.file = file


class SpecError(ManifestError):
    """The lock input (requirements.toml) is invalid."""

    kind = "spec"

    default_hint = "see docs/lock.md for the format of metadata/requirements.toml"


class BlacklistedPin(ManifestError):
    """The manifest pins a blacklisted package: invalid input, but reported with the blacklist's exit code."""

    kind = "blacklisted-pin"

    exit_code = ExitCode.BLACKLISTED
    default_hint = "remove it and re-lock; `immutable-installer lock` prints the chain that pulls it in"


class InterpreterNotFound(InstallerError):
    """The manifest's python is not installed on this machine."""

    kind = "interpreter-not-found"

    exit_code = ExitCode.USAGE


class ResolutionError(InstallerError):
    """The resolver could not resolve the requirements during `lock`."""

    kind = "resolution"

    exit_code = ExitCode.FAILED
    default_hint = "run again with --debug to see the resolver's full output"


class BlacklistError(InstallerError):
    """A blacklisted package would be installed; details hold one provenance chain per finding."""

    kind = "blacklisted"

    exit_code = ExitCode.BLACKLISTED
    default_hint = "pin a version of the parent package that does not need it, or drop the parent package"

    def __init__(self, message: str, hint: str | None = None, details: list[str] | None = None,
                 chains: list[list[str]] | None = None) -> None:
        super().__init__(message, hint, details)
        self.chains = [list(c) for c in chains or []]

    def to_event(self) -> dict[str, object]:
        """Also the chains as package names, from the pinned root to the blacklisted package."""
        return {**super().to_event(), "chains": self.chains}


class WheelhouseError(InstallerError):
    """A wheel is missing, does not match its sha256, or could not be downloaded."""

    kind = "wheelhouse"

    exit_code = ExitCode.WHEELHOUSE
    default_hint = "run `immutable-installer download` (with network) to fetch the missing wheels"


class UnsoundWheelError(WheelhouseError):
    """A wheel whose bytes match their pin but not themselves: a member that does not match its RECORD hash, a
    RECORD that leaves members out or hashes with md5/sha1, a metadata member too large to read, a console
    script that would land outside ``bin/``. Refused by `scan` and `install` alike, nothing installed."""

    kind = "unsound-wheel"
    default_hint = "the wheel is unsound (altered after it was built, or badly built): pin another release"


class ImageError(WheelhouseError):
    """An OCI image (a registry's or a layout's) that cannot be trusted or used: a blob or manifest that does not
    match its digest, a layer member outside the environment or of a kind no entry holds, an entry whose files
    do not give its content digest or whose wheel the manifest does not pin. Nothing of it enters the store."""

    kind = "image"
    default_hint = ("pull an image pushed from this manifest, pinned by its digest (`immutable-installer push` prints "
                    "it)")


class LockHeldError(InstallerError):
    """Another installer holds the lock (only raised with --no-wait)."""

    kind = "lock-held"

    exit_code = ExitCode.LOCKED
    default_hint = "wait for the other installer to finish, or run without --no-wait to queue behind it"


class FileClashError(InstallerError):
    """Two wheels of the environment would install the same path with different contents."""

    kind = "file-clash"

    exit_code = ExitCode.FILE_CLASH
    default_hint = ("pin only one of the two distributions (e.g. opencv-python or opencv-python-headless) and "
                    "re-lock")


class StartupCodeError(InstallerError):
    """A wheel ships a .pth file with an executable line: code run at every interpreter start."""

    kind = "startup-code"

    exit_code = ExitCode.STARTUP_CODE
    default_hint = ("executable .pth lines run at every Python start (a known supply-chain vector); if this one is "
                    "expected, allow it by name (lock --allow-pth NAME, or verify.allowed_pth in the spec) and "
                    "re-lock")


class BuildError(InstallerError):
    """Building a new generation failed; the previous environment is untouched."""

    kind = "build"

    exit_code = ExitCode.FAILED


class SdistBuildError(InstallerError):
    """A wheel could not be built from its sdist (``lock --build``), or a rebuild gave other bytes than the pin."""

    kind = "sdist-build"

    exit_code = ExitCode.FAILED
    default_hint = "run again with --debug to see the build's output"


class VerificationFailed(InstallerError):
    """The environment failed verification."""

    kind = "verification"

    exit_code = ExitCode.FAILED
    default_hint = "run `immutable-installer verify` for the full table of checks"


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds exactly like Ctrl-C (every cleanup that handles KeyboardInterrupt runs),
    then exits 128 + the signal's number. Windows' Ctrl-Break (SIGBREAK, what the window's Cancel sends there)
    is the user stopping the run like Ctrl-C: 130, not 128 + 21."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum = signum
        self.name = name

    @property
    def exit_code(self) -> int:
        return int(ExitCode.INTERRUPTED) if self.name == "SIGBREAK" else 128 + self.signum
