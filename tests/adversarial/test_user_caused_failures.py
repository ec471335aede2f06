"""Conditions a user can cause get a one-line error with the path and a documented exit code, never "internal
error", and leave nothing half-built: a full disk, a file where a folder should be."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Synthetic, cli, store_files


def install(stack: Synthetic, cwd: Path, venv: Path, store: Path) -> object:
    return cli("install", "--skip-wheelhouse", "--variant", "cpu", "--manifest", str(stack.manifest_path),
               "--wheelhouse", str(stack.house), "--venv", str(venv), "--store", str(store), cwd=cwd)


def tmpfs(mount: Path, size: str) -> Path:
    """A small tmpfs of our own at ``mount`` (root; skipped where it cannot be made)."""
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.decode().strip()}")
    return mount


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB filesystem (tmpfs): what a full disk looks like to the tool."""
    mount = tmpfs(tmp_path / "tiny", "3m")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def big_stack(root: Path) -> Synthetic:
    """The synthetic stack plus a wheel whose files take 6 MB once unpacked (the wheel itself is small)."""
    return Synthetic(root, extra={"big-pkg": {"big_pkg/__init__.py": "", "big_pkg/data.txt": "0123456789" * 600_000}})


def test_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    for venv, store in ((blocker / ".venv", tmp_path / "store"), (tmp_path / ".venv", blocker / "store")):
        proc = install(stack, tmp_path, venv, store)
        assert proc.returncode == 2, proc.stderr
        assert str(blocker) in proc.stderr and "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert blocker.read_text() == "not a folder\n"


def test_a_full_disk_under_the_store(tmp_path: Path, tiny_disk: Path) -> None:
    stack = big_stack(tmp_path / "stack")
    proc = install(stack, tmp_path, tmp_path / ".venv", tiny_disk / "store")
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and str(tiny_disk) in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert not store_files(tiny_disk / "store"), "no half-built entry is left"
    assert not (tmp_path / ".venv").exists()


def test_a_full_disk_under_the_environment(tmp_path: Path, tiny_disk: Path) -> None:
    stack = big_stack(tmp_path / "stack")
    proc = install(stack, tmp_path, tiny_disk / ".venv", tmp_path / "store")  # another filesystem: files are copied
    assert proc.returncode == 1, proc.stderr
    assert "No space left on device" in proc.stderr and "internal error" not in proc.stderr
    assert not (tiny_disk / ".venv").exists()
    assert not list((tiny_disk / ".venv.generations").glob("g*")), "the half-built generation is gone"


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write to: a tmpfs remounted read-only for root (who ignores file modes), the folder's
    own modes for everyone else."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        for sub in ("store", "wheelhouse"):
            (folder / sub).mkdir(parents=True)
        for path in (folder / "store", folder / "wheelhouse", folder):
            path.chmod(0o555)
        try:
            yield folder
        finally:
            for path in (folder, folder / "store", folder / "wheelhouse"):
                path.chmod(0o755)
        return
    mount = tmpfs(tmp_path / "ro", "4m")
    (mount / "store").mkdir()
    (mount / "wheelhouse").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


Case = tuple[str, tuple[str, ...], set[int], str]  # name, command line, exit codes allowed, text the error names


def wrong_answers(cases: list[Case], cwd: Path) -> list[str]:
    """Each case must exit with a documented code naming the path or field, without "internal error" and
    without a traceback."""
    wrong = []
    for name, args, codes, named in cases:
        proc = cli(*args, cwd=cwd)
        text = proc.stdout + proc.stderr
        if proc.returncode not in codes or "internal error" in text or "Traceback" in text or named not in text:
            wrong.append(f"{name}: exit {proc.returncode}, {proc.stderr.strip()[-300:]!r}")
    return wrong


def test_every_user_caused_condition_is_one_line_never_an_internal_error(tmp_path: Path) -> None:
    """Walk the conditions a user can cause, command by command (those needing a read-only filesystem follow)."""
    from conftest import make_wheel, manifest_data, write_json

    stack = Synthetic(tmp_path / "stack")
    healthy = Synthetic(tmp_path / "healthy")
    healthy.install()
    a_file = tmp_path / "a-file"
    a_file.write_text("x\n")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    python_script = make_wheel(tmp_path / "scripts", "shadow", "1.0",
                               files={"shadow/__init__.py": "def main():\n    pass\n",
                                      "shadow-1.0.dist-info/entry_points.txt": "[console_scripts]\npython = shadow:main\n"})
    shadowing = write_json(tmp_path / "shadowing.json", manifest_data([(python_script, {})]))
    base = ("--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house), "--variant", "cpu")
    cases: list[Case] = [
        ("wheelhouse is a file", ("download", "--manifest", str(stack.manifest_path), "--wheelhouse", str(a_file),
                                  "--variant", "cpu"), {2}, str(a_file)),
        ("manifest is a folder", ("install", "--dry-run", "--manifest", str(a_folder)), {2}, str(a_folder)),
        ("manifest missing", ("scan", "--manifest", str(tmp_path / "nope.json")), {2}, "nope.json"),
        ("venv path too long", ("install", "--skip-wheelhouse", *base, "--venv", str(tmp_path / ("v" * 300)),
                                "--store", str(tmp_path / "store")), {2}, "File name too long"),
        ("a console script named python", ("install", "--skip-wheelhouse", "--manifest", str(shadowing),
                                           "--wheelhouse", str(python_script.parent), "--variant", "cpu", "--venv",
                                           str(tmp_path / "v2"), "--store", str(tmp_path / "store")), {6}, "python"),
        ("verify a file", ("verify", "--venv", str(a_file)), {2}, str(a_file)),
        ("rollback with nothing to go back to", ("rollback", "--venv", str(healthy.target)), {2},
         "no previous generation"),
        ("store status of a file", ("store", "status", "--store", str(a_file)), {2}, str(a_file)),
    ]
    wrong = wrong_answers(cases, tmp_path)
    assert not wrong, "\n".join(wrong)
    assert a_file.read_text() == "x\n" and not (tmp_path / "v2").exists()


def test_every_read_only_place_is_one_line_never_an_internal_error(tmp_path: Path, read_only: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    base = ("--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house), "--variant", "cpu")
    cases: list[Case] = [
        ("read-only store", ("install", "--skip-wheelhouse", *base, "--venv", str(tmp_path / "v1"), "--store",
                             str(read_only / "store")), {2}, str(read_only)),
        ("read-only target folder", ("install", "--skip-wheelhouse", *base, "--venv", str(read_only / ".venv"),
                                     "--store", str(tmp_path / "store")), {2}, str(read_only)),
        ("read-only wheelhouse", ("download", "--manifest", str(stack.manifest_path), "--wheelhouse",
                                  str(read_only / "wheelhouse"), "--variant", "cpu"), {2}, str(read_only)),
        ("export-index into a read-only folder", ("export-index", str(read_only / "index"), *base[:4]), {2},
         str(read_only)),
        ("export-pylock into a read-only folder", ("export-pylock", "--manifest", str(stack.manifest_path), "-o",
                                                   str(read_only / "pylock.toml")), {2}, str(read_only)),
        ("bundle into a read-only folder", ("bundle", "-o", str(read_only / "b.tar"), "--manifest",
                                            str(stack.manifest_path), "--wheelhouse", str(stack.house),
                                            "--tool-wheel", str(stack.wheels["tiny-a"])), {2}, str(read_only)),
    ]
    wrong = wrong_answers(cases, tmp_path)
    assert not wrong, "\n".join(wrong)
    assert not (tmp_path / "v1").exists()
    assert sorted(str(p.relative_to(read_only)) for p in read_only.rglob("*")) == ["store", "wheelhouse"]
