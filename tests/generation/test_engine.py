"""The atomic engine on the synthetic stack: generations, switch, rollback, prune, failures, leaks, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Synthetic, make_wheel, write_json
from immutable_installer.core.errors import (
    BuildError,
    InterpreterNotFound,
    LockHeldError,
    UnsoundWheelError,
    UsageError,
    VerificationFailed,
)
from immutable_installer.generation.generations import Generations


def test_install_switch_up_to_date_force_prune_rollback(synthetic: Synthetic) -> None:
    first = synthetic.install()
    assert first.changed and first.generation == "g0001" and first.report.ok
    assert os.readlink(synthetic.target) == ".venv.generations/g0001"
    gen = synthetic.target.resolve()
    receipt = json.loads((gen / "installer-receipt.json").read_text())
    assert receipt["fingerprint"] == first.fingerprint and receipt["variant"] == "cpu"
    assert json.loads((gen / ".torch_lock").read_text())["locked"] is True
    # no pip in this stack: none of pip's configuration either (the reference stack, which pins pip, has both)
    assert not (gen / "constraints.txt").exists() and not (gen / "pip.conf").exists()

    again = synthetic.install()
    assert not again.changed and again.generation == "g0001"

    assert synthetic.install(force=True).generation == "g0002"
    third = synthetic.install(force=True, keep=1)
    assert third.generation == "g0003" and third.pruned == ["g0001"]
    gens = Generations(synthetic.target)
    assert [g.name for g in gens.complete()] == ["g0002", "g0003"]

    synthetic.engine().rollback()
    assert gens.current().name == "g0002"
    synthetic.engine().rollback(to="g0003")
    assert gens.current().name == "g0003"
    with pytest.raises(UsageError):
        synthetic.engine().rollback(to="g0001")


def test_failing_verification_keeps_the_old_environment(synthetic: Synthetic) -> None:
    synthetic.install()
    data = dict(synthetic.data)
    data["verify"] = {**data["verify"], "imports": ["tiny_a", "no_such_module"]}
    write_json(synthetic.manifest_path, data)
    with pytest.raises(VerificationFailed, match="no_such_module"):
        synthetic.install()
    assert Generations(synthetic.target).current().name == "g0001"
    assert sorted(p.name for p in Generations(synthetic.target).root.iterdir() if not p.name.startswith(".")) == ["g0001"]


def test_a_wheel_that_cannot_be_unpacked_keeps_the_old_environment(synthetic: Synthetic) -> None:
    """A wheel whose file matches its pin but whose RECORD lies about a member: the store refuses it while
    unpacking (pip and uv would install it), nothing reaches the store, the old generation stays current."""
    synthetic.install()
    lying = make_wheel(synthetic.root / "lying", "tiny-a", "2.0", requires=["tiny-b>=1.0"])
    import zipfile

    with zipfile.ZipFile(lying) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["tiny_a/__init__.py"] = b"print('changed after the RECORD was written')\n"
    with zipfile.ZipFile(synthetic.wheels["tiny-a"], "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    data = json.loads(synthetic.manifest_path.read_text())
    for package in data["packages"]:
        if package["name"] == "tiny-a":
            package["files"][0]["sha256"] = hashlib.sha256(synthetic.wheels["tiny-a"].read_bytes()).hexdigest()
            package["files"][0]["size"] = synthetic.wheels["tiny-a"].stat().st_size
    synthetic.manifest_path.write_text(json.dumps(data))
    empty = synthetic.root / "empty-store"
    with pytest.raises(UnsoundWheelError, match="tiny_a/__init__.py does not match its hash in the wheel's RECORD"):
        synthetic.install(force=True, store=empty)
    assert not list((empty / "entries").iterdir()), "nothing of the refused build reached the store"
    assert Generations(synthetic.target).current().name == "g0001"
    assert not (Generations(synthetic.target).root / "g0002").exists()


def test_same_manifest_same_fingerprint_in_two_directories(tmp_path: Path) -> None:
    one = Synthetic(tmp_path / "one")
    two = Synthetic(tmp_path / "elsewhere" / "two")
    assert one.install().fingerprint == two.install().fingerprint


def test_user_pip_configuration_does_not_leak(synthetic: Synthetic, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = synthetic.root / "bad-constraints.txt"
    bad.write_text("tiny-a<0\ntiny-b<0\n")
    conf = synthetic.root / "pip.conf"
    conf.write_text(f"[global]\nconstraint = {bad}\nindex-url = http://127.0.0.1:9/simple\nno-binary = :all:\n")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("PIP_CONSTRAINT", str(bad))
    monkeypatch.setenv("PIP_NO_BINARY", ":all:")
    assert synthetic.install().report.ok


def test_real_directory_at_target_is_never_replaced(synthetic: Synthetic) -> None:
    synthetic.target.mkdir()
    with pytest.raises(UsageError, match="not a link"):
        synthetic.install()


def test_lock_held_gives_exit_5_with_no_wait(synthetic: Synthetic) -> None:
    lock = Generations(synthetic.target).lock()
    try:
        with pytest.raises(LockHeldError) as info:
            synthetic.install(wait=False)
        assert info.value.exit_code == 5
    finally:
        lock.release()


def _cli(stack: Synthetic, *args: str) -> list[str]:
    return [sys.executable, "-m", "immutable_installer", "install", "--manifest", str(stack.manifest_path), "--venv",
            str(stack.target), "--wheelhouse", str(stack.house), "--skip-wheelhouse", "--variant", "cpu", *args]


def _healthy(stack: Synthetic, at_least: str) -> str:
    """The target points at a complete generation, ``at_least`` or a newer one, and it verifies."""
    current = Generations(stack.target).current()
    assert current is not None, "the target link is missing or points at an incomplete generation"
    assert current.number >= int(at_least.lstrip("g")), f"{current.name} is older than {at_least}"
    report = stack.verify()
    assert report.ok, report.failures()
    return current.name


@pytest.mark.slow
def test_sigkill_at_random_instants_never_breaks_the_target(synthetic: Synthetic) -> None:
    synthetic.install()
    started = time.monotonic()
    subprocess.run(_cli(synthetic, "--force", "--keep", "50"), check=True, capture_output=True)
    duration = time.monotonic() - started
    rng = random.Random(1234)
    for _ in range(30):
        before = Generations(synthetic.target).current().name
        proc = subprocess.Popen(_cli(synthetic, "--force", "--keep", "50"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _healthy(synthetic, before)
    final = subprocess.run(_cli(synthetic, "--force", "--keep", "2"), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    assert not list(Generations(synthetic.target).root.glob("*.incomplete"))


@pytest.mark.slow
def test_four_installers_on_one_target(synthetic: Synthetic) -> None:
    synthetic.install()
    procs = [subprocess.Popen(_cli(synthetic, "--force", "--keep", "10"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate() + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0, 0], results
    names = [g.name for g in Generations(synthetic.target).complete()]
    assert names == ["g0001", "g0002", "g0003", "g0004", "g0005"]
    assert _healthy(synthetic, "g0005") == "g0005"


def test_no_wait_cli_exit_code_5(synthetic: Synthetic) -> None:
    synthetic.install()
    lock = Generations(synthetic.target).lock()
    try:
        proc = subprocess.run(_cli(synthetic, "--force", "--no-wait"), capture_output=True, text=True)
    finally:
        lock.release()
    assert proc.returncode == 5 and "another installer" in proc.stderr


def test_missing_interpreter_is_exit_2(synthetic: Synthetic) -> None:
    data = dict(synthetic.data)
    data["python"] = {"version": "3.99", "implementation": "cpython"}
    write_json(synthetic.manifest_path, data)
    from immutable_installer.core.errors import InterpreterNotFound

    with pytest.raises(InterpreterNotFound, match="3.99"):
        synthetic.install()
    assert not synthetic.target.exists()


def test_result_lists_package_changes(synthetic: Synthetic) -> None:
    first = synthetic.install()
    assert first.changes == ["first generation: 6 packages"]
    newer = make_wheel(synthetic.house, "tiny-b", "1.1")
    data = json.loads(json.dumps(synthetic.data))
    entry = next(p for p in data["packages"] if p["name"] == "tiny-b")
    import hashlib

    entry["version"] = "1.1"
    entry["files"][0].update(filename=newer.name, sha256=hashlib.sha256(newer.read_bytes()).hexdigest(),
                             size=newer.stat().st_size)
    write_json(synthetic.manifest_path, data)
    second = synthetic.install()
    assert second.changes == ["tiny-b 1.0 -> 1.1"]


def test_interpreter_lookup_skips_a_shim_that_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `python3.X` first on PATH that exits 127 (pyenv's shim for a version it does not have active) is
    never returned: the interpreter found really runs and really is 3.X."""
    from immutable_installer.interpreters import find_interpreter

    other = next((v for v in ("3.12", "3.10", "3.13") if v != f"{sys.version_info[0]}.{sys.version_info[1]}"), "")
    shims = tmp_path / "shims"
    shims.mkdir()
    fake = shims / f"python{other}"
    fake.write_text("#!/bin/sh\necho 'pyenv: command not found' >&2\nexit 127\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    try:
        found = find_interpreter(other)
    except InterpreterNotFound as exc:  # nothing else is installed: the shim was not taken for one, which holds
        assert "pyenv: command not found" not in exc.message and str(fake) != exc.message
        return
    assert found != str(fake)
    out = subprocess.run([found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == other


def test_linking_reports_each_package_placed(synthetic: Synthetic) -> None:
    from immutable_installer.core.events import Progress

    events: list[object] = []
    synthetic.install(reporter=events.append)
    ticks = [(e.done, e.total) for e in events if isinstance(e, Progress) and e.phase == "link"]
    assert ticks == [(k, 6) for k in range(1, 7)]


def test_the_virtualenv_made_beside_the_linking_leaves_no_trace_of_its_folder(synthetic: Synthetic) -> None:
    """virtualenv makes the bare environment in ``.virtualenv`` while entries are linked; its files move up and
    no file names that folder afterwards."""
    synthetic.install()
    gen = synthetic.target.resolve()
    assert not (gen / ".virtualenv").exists()
    for path in [gen / "pyvenv.cfg", *(gen / "bin").iterdir()]:
        if path.is_file() and not path.is_symlink():
            assert str(gen / ".virtualenv").encode() not in path.read_bytes(), path
    cfg = (gen / "pyvenv.cfg").read_text()
    assert f" {gen}" in cfg and "include-system-site-packages = false" in cfg
    assert synthetic.run_py("import sys; assert sys.prefix != sys.base_prefix").returncode == 0


def test_a_linked_file_where_virtualenv_puts_one_is_a_clash(synthetic: Synthetic, tmp_path: Path) -> None:
    from immutable_installer.generation.engine import Engine

    engine = Engine(tmp_path / "target")
    gen = tmp_path / "gen"
    (gen / "bin").mkdir(parents=True)
    (gen / "bin" / "activate").write_text("from a wheel\n")
    virtualenv = engine.start_venv(gen, sys.executable)
    with pytest.raises(BuildError, match=r"bin/activate would be installed twice .*store entry cp311-abc.* and the "
                                         r"virtualenv itself"):
        engine.adopt_venv(gen, virtualenv, {"bin/activate": ("cp311-abc", "sha256=x")})
    assert (gen / "bin" / "activate").read_text() == "from a wheel\n"
