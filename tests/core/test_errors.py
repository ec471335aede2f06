"""Exit codes of an interrupted run: a shell's 128 + signal, except Windows' Ctrl-Break, which is Ctrl-C's 130."""

from __future__ import annotations

from immutable_installer.core.errors import ExitCode, Interrupted


def test_interrupted_exit_codes() -> None:
    assert Interrupted(15, "SIGTERM").exit_code == 143
    assert Interrupted(1, "SIGHUP").exit_code == 129
    assert Interrupted(21, "SIGBREAK").exit_code == ExitCode.INTERRUPTED == 130
