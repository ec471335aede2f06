"""The command line: exit codes of the contract, --json, seed-style flags, help, stale docs, lazy imports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import REPO, SLOW_TO_COMPILE, Synthetic, make_wheel, manifest_data, store_files, write_json
from immutable_installer.cli.app import app


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "immutable_installer", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_help_and_version_through_clirunner() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "--skip-wheelhouse" in result.output and "--verify" in result.output
    for command in ("install", "verify", "download", "scan", "lock", "rollback", "status", "detect", "gui"):
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Example: immutable-installer" in sub.output, command


def test_console_script_version() -> None:
    script = Path(sys.executable).with_name("immutable-installer")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("immutable-installer ")


def test_exit_2_for_a_bad_manifest_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text('{"schema_version": 1, "name": ')
    proc = run("scan", "--manifest", str(bad), "--variant", "cpu")
    assert proc.returncode == 2
    assert "invalid JSON" in proc.stderr and "Traceback" not in proc.stderr and "hint:" in proc.stderr
    debug = run("--debug", "scan", "--manifest", str(bad), "--variant", "cpu")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_exit_2_for_an_unknown_variant_and_a_bad_flag(synthetic: Synthetic) -> None:
    proc = run("scan", "--manifest", str(synthetic.manifest_path), "--variant", "cu999")
    assert proc.returncode == 2 and "cu999" in proc.stderr
    assert run("install", "--keep", "-1").returncode == 2


def test_exit_3_for_a_blacklisted_pin(tmp_path: Path) -> None:
    ao = make_wheel(tmp_path, "torchao", "0.6")
    path = write_json(tmp_path / "m.json", manifest_data([(ao, {})], blacklist=[{"name": "torchao", "reason": "r"}]))
    proc = run("scan", "--manifest", str(path), "--variant", "cpu")
    assert proc.returncode == 3 and "torchao 0.6 (pinned) is blacklisted" in proc.stderr


def test_exit_4_skip_wheelhouse_with_a_missing_file(synthetic: Synthetic) -> None:
    """The store does not hold the wheel either (an empty one): nothing to install it from."""
    synthetic.wheels["tiny-a"].unlink()
    proc = run("install", "--manifest", str(synthetic.manifest_path), "--venv", str(synthetic.target),
               "--wheelhouse", str(synthetic.house), "--skip-wheelhouse", "--variant", "cpu",
               "--store", str(synthetic.store))
    assert proc.returncode == 4 and "tiny_a-2.0-py3-none-any.whl" in proc.stderr
    assert not synthetic.target.exists()


def test_skip_wheelhouse_installs_a_missing_file_the_store_holds(synthetic: Synthetic) -> None:
    """The store holds every entry: a wheel file gone from the wheelhouse is not needed, and the dry run's
    verdict says so too (while its plan still shows the file missing from the wheelhouse)."""
    args = ["--manifest", str(synthetic.manifest_path), "--venv", str(synthetic.target), "--wheelhouse",
            str(synthetic.house), "--variant", "cpu", "--store", str(synthetic.store)]
    assert run("install", "--skip-wheelhouse", *args).returncode == 0
    synthetic.wheels["tiny-a"].unlink()
    proc = run("install", "--dry-run", "--json", *args)
    plan = json.loads(proc.stdout)
    tiny_a = next(w for s in plan["steps"] for w in s["wheels"] if w["name"] == "tiny-a")
    assert plan["scan"]["ok"] is True and (tiny_a["state"], tiny_a["store"]) == ("missing", "stored"), plan
    proc = run("install", "--skip-wheelhouse", "--force", *args)
    assert proc.returncode == 0, proc.stderr
    assert "g0002" in os.readlink(synthetic.target)


def test_json_events_and_seed_style_flags(synthetic: Synthetic) -> None:
    shutil.copy(synthetic.manifest_path, synthetic.root / "metadata.json")
    (synthetic.root / "metadata").mkdir()
    shutil.copy(synthetic.manifest_path, synthetic.root / "metadata" / "dependencies.json")
    own_store = {**os.environ, "IMMUTABLE_INSTALLER_STORE": str(synthetic.store)}  # empty: the store phase runs
    proc = run("install", "--skip-wheelhouse", "--variant", "cpu", "--json", cwd=synthetic.root, env=own_store)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"phase", "phase_done", "result"} <= kinds
    names = [e["name"] for e in events if e["event"] == "phase"]
    assert names[:4] == ["scan", "store", "link", "shims"], names  # one pass over the wheels fills the store
    planned = next(e["plan"] for e in events if e["event"] == "plan")
    shutil.rmtree(synthetic.store)  # the dry run must see what the install saw: an empty store
    dry = json.loads(run("install", "--dry-run", "--json", "--variant", "cpu", cwd=synthetic.root, env=own_store).stdout)
    def wheels(plan: dict) -> list[dict]:  # type: ignore[type-arg]
        # `unpacked` is measured by reading a wheel: the dry run reads them all, the install after it plans
        return [{**w, "unpacked": None} for step in plan["steps"] for w in step["wheels"]]

    assert wheels(planned) == wheels(dry) and planned["entries"] == dry["entries"], "one plan, printed twice"
    assert [s["group"] for s in planned["steps"]] == [s["group"] for s in dry["steps"]] == ["base", "app"]
    assert planned["to_store"] == dry["to_store"] and len(planned["to_store"]) == 6
    synthetic.install()  # the store back, for the seed forms below
    seed = run("--skip-wheelhouse", cwd=synthetic.root, env=own_store)  # the original installer's interface
    assert seed.returncode == 0 and "up to date" in seed.stdout + seed.stderr
    healthy = run("--verify", cwd=synthetic.root)
    assert healthy.returncode == 0 and "healthy" in healthy.stdout
    (synthetic.target.resolve() / "lib").rename(synthetic.target.resolve() / "lib-moved")
    assert run("--verify", cwd=synthetic.root).returncode == 2  # not a venv any more: invalid input


def test_verify_exit_1_when_unhealthy(synthetic: Synthetic) -> None:
    synthetic.install()
    from immutable_installer.dists.installed import site_packages

    module = site_packages(synthetic.target.resolve()) / "tiny_a" / "__init__.py"
    module.chmod(0o644)  # linked read-only from the store
    module.write_text("broken = True\n")
    proc = run("verify", "--venv", str(synthetic.target), "--manifest", str(synthetic.manifest_path))
    assert proc.returncode == 1 and "integrity" in proc.stdout


def console_script(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``immutable-installer`` command (cli/entry.py: cached help, then the typer app)."""
    script = Path(sys.executable).with_name("immutable-installer")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=600)


def test_seed_forms_take_every_option_and_debug_goes_anywhere(synthetic: Synthetic) -> None:
    files = ["--manifest", str(synthetic.manifest_path), "--venv", str(synthetic.target), "--wheelhouse",
             str(synthetic.house)]
    seed = console_script("--skip-wheelhouse", *files, "--variant", "cpu", "--store", str(synthetic.store), "--debug")
    assert seed.returncode == 0, seed.stderr
    assert "$ " in seed.stderr and " -m virtualenv " in seed.stderr, "--debug shows the commands run and their output"
    checked = console_script("--verify", "--venv", str(synthetic.target), "--manifest", str(synthetic.manifest_path),
                             "--json")
    assert checked.returncode == 0 and json.loads(checked.stdout)["ok"]
    assert console_script("--verify", "--no-such-flag").returncode == 2
    again = console_script("--json", "--skip-wheelhouse", *files, "--variant", "cpu", "--store", str(synthetic.store))
    assert again.returncode == 0 and json.loads(again.stdout.splitlines()[-1])["changed"] is False


def test_rollback_status_and_verify_need_no_manifest_file(synthetic: Synthetic) -> None:
    """A broken or missing manifest is exactly when people roll back: generations carry their own."""
    synthetic.install()
    synthetic.install(force=True)
    elsewhere = synthetic.root / "no-manifest-here"
    elsewhere.mkdir()
    venv = str(synthetic.target)
    healthy = run("verify", "--venv", venv, "--json", cwd=elsewhere)
    assert healthy.returncode == 0, healthy.stdout[-2000:] + healthy.stderr
    back = run("rollback", "--venv", venv, cwd=elsewhere)
    assert back.returncode == 0, back.stderr
    status = json.loads(run("status", "--venv", venv, "--json", cwd=elsewhere).stdout)
    assert status["current"] == "g0001"
    synthetic.manifest_path.write_text("{ broken")  # the user's manifest is damaged: rollback still works
    assert run("rollback", "--venv", venv, "--to", "g0002", cwd=synthetic.root).returncode == 0


def test_ctrl_c_exits_130_and_leaves_the_target(tmp_path: Path) -> None:
    synthetic = Synthetic(tmp_path, extra={"big-pkg": {"big_pkg/__init__.py": SLOW_TO_COMPILE}})
    synthetic.install()
    # an empty store and a module that takes a second to compile: the build is still running when the signal
    # arrives, which goes in once the store is being filled (no race with a fast machine, no skip)
    proc = subprocess.Popen([sys.executable, "-m", "immutable_installer", "install", "--manifest", str(synthetic.manifest_path),
                             "--venv", str(synthetic.target), "--wheelhouse", str(synthetic.house),
                             "--skip-wheelhouse", "--variant", "cpu", "--force", "--json",
                             "--store", str(synthetic.root / "empty-store")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"name": "store"' in line:
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert not store_files(synthetic.root / "empty-store"), "no half-built entry and no build folder is left"
    assert os.readlink(synthetic.target) == ".venv.generations/g0001"
    assert not list((synthetic.root / ".venv.generations").glob("*.incomplete"))


def test_cli_reference_is_not_stale() -> None:
    from immutable_installer.cli.docs import render

    assert (REPO / "docs" / "reference" / "cli.md").read_text() == render(), \
        "regenerate with: python -m immutable_installer.cli.docs > docs/reference/cli.md"


HEAVY = ("rich.progress", "rich.markdown", "rich.table", "virtualenv", "pip", "immutable_installer.generation.engine", "immutable_installer.lock.locker",
         "immutable_installer.verify.verifier", "immutable_installer.wheelhouse.download", "immutable_installer.core.manifest", "packaging.requirements", "filelock",
         "PySide6", "immutable_installer.gui", "immutable_installer.gui.window")


@pytest.mark.parametrize("argv", [None, ["--help"], ["--version"]])
def test_start_up_imports_stay_light(argv: list[str] | None) -> None:
    code = ("import sys, atexit\n"
            "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
            "import immutable_installer.cli.app\n")
    if argv is not None:
        code += f"immutable_installer.cli.app.main({argv!r})\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(proc.stderr.split("MODULES ", 1)[1].split())
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_cached_help_is_not_stale() -> None:
    from immutable_installer.cli.docs import help_texts

    texts = help_texts()
    assert {"", "install", "verify", "store gc", "bundle verify"} <= set(texts)
    assert json.loads((REPO / "immutable_installer" / "cli" / "help.json").read_text()) == texts, \
        "regenerate with: python -m immutable_installer.cli.docs --help-cache"
    for command in ("", "install", "store gc"):
        proc = subprocess.run([sys.executable, "-m", "immutable_installer", *command.split(), "--help"],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout == texts[command]


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_fast_paths_do_not_import_typer(argv: list[str]) -> None:
    code = ("import sys, atexit\n"
            "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sorted(sys.modules)) + '\\n'))\n"
            f"from immutable_installer.cli.entry import main\nmain({argv!r})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(proc.stderr.split("MODULES ", 1)[1].split())
    assert "typer" not in loaded and "rich" not in loaded


def test_lock_command_with_plain_requirements(tmp_path: Path, index) -> None:  # type: ignore[no-untyped-def]
    make_wheel(index.root, "helper", "1.0")
    make_wheel(index.root, "app", "1.0", requires=["helper>=1"])
    make_wheel(index.root, "bad", "1.0", requires=["torchao"])
    make_wheel(index.root, "torchao", "0.6")
    out = tmp_path / "m.json"
    proc = run("lock", "app", "--index-url", index.url, "--isolated", "--platform", "manylinux_2_17_x86_64",
               "-o", str(out), "--pylock", str(tmp_path / "pylock.toml"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["packages"] == 2
    assert (tmp_path / "pylock.toml").read_text().startswith('lock-version = "1.0"')
    first = out.read_bytes()
    assert run("lock", "app", "--index-url", index.url, "--isolated", "--platform", "manylinux_2_17_x86_64",
               "-o", str(out)).returncode == 0
    assert out.read_bytes() == first
    blocked = run("lock", "bad", "--index-url", index.url, "--isolated", "--blacklist", "torchao", "-o",
                  str(tmp_path / "b.json"))
    assert blocked.returncode == 3 and "bad 1.0 -> torchao" in blocked.stderr
    assert not (tmp_path / "b.json").exists()


def test_command_line_blacklist_covers_the_import_name(tmp_path: Path, index) -> None:  # type: ignore[no-untyped-def]
    """`--blacklist torchao` also refuses a wheel of another name that ships `torchao/` (at lock already), and
    blocks the module."""
    make_wheel(index.root, "aofork", "1.0", files={"torchao/__init__.py": "", "aofork/__init__.py": ""})
    make_wheel(index.root, "plain", "1.0")
    out = tmp_path / "m.json"
    refused = run("lock", "aofork", "--index-url", index.url, "--isolated", "--platform", "manylinux_2_17_x86_64",
                  "--blacklist", "torchao", "-o", str(out))
    assert refused.returncode == 3 and "ships importable 'torchao/'" in refused.stderr and not out.exists()
    locked = run("lock", "plain", "--index-url", index.url, "--isolated", "--platform", "manylinux_2_17_x86_64",
                 "--blacklist", "torchao", "-o", str(out))
    assert locked.returncode == 0, locked.stderr
    data = json.loads(out.read_text())
    assert data["blacklist"] == [{"import_names": ["torchao"], "name": "torchao",
                                  "reason": "blacklisted on the command line"}]
    assert [b["name"] for b in data["shims"]["blocked_modules"]] == ["torchao"]


def test_install_dry_run_touches_nothing(synthetic: Synthetic) -> None:
    synthetic.wheels["tiny-b"].unlink()
    proc = run("install", "--dry-run", "--json", "--manifest", str(synthetic.manifest_path), "--venv",
               str(synthetic.target), "--wheelhouse", str(synthetic.house), "--variant", "cpu",
               "--store", str(synthetic.store))  # its own, empty: a store holding tiny-b would scan it as it kept it
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [s["group"] for s in plan["steps"]] == ["base", "app"]
    assert plan["to_fetch"] == [synthetic.wheels["tiny-b"].name]
    assert plan["scan"]["ok"] is False and plan["scan"]["kind"] == "wheelhouse"  # the scan would refuse: exit 4
    assert all(key.startswith("cp3") for key in plan["entries"].values())
    assert not synthetic.target.exists() and not (synthetic.root / ".venv.generations").exists()


def test_dry_run_shows_what_the_store_holds_and_what_the_scan_says(synthetic: Synthetic) -> None:
    synthetic.install()
    args = ["install", "--dry-run", "--json", "--manifest", str(synthetic.manifest_path), "--venv",
            str(synthetic.target), "--wheelhouse", str(synthetic.house), "--variant", "cpu", "--store",
            str(synthetic.store)]
    plan = json.loads(run(*args).stdout)
    assert plan["scan"]["ok"] and plan["to_fetch"] == [] and plan["to_store"] == []
    fresh = json.loads(run(*args[:-1], str(synthetic.root / "empty")).stdout)
    assert len(fresh["to_store"]) == 6 and not (synthetic.root / "empty").exists(), "a dry run creates no store"


def test_dry_run_says_what_the_window_shows(synthetic: Synthetic) -> None:
    """The window draws the plan from this document alone: manifest, variants, sizes, edges, disk."""
    plan = json.loads(run("install", "--dry-run", "--json", "--manifest", str(synthetic.manifest_path), "--wheelhouse",
                          str(synthetic.house), "--variant", "cpu", "--store", str(synthetic.store)).stdout)
    assert plan["manifest"]["name"] == "synthetic" and [v["name"] for v in plan["manifest"]["variants"]] == ["cpu"]
    wheels = {w["name"]: w for s in plan["steps"] for w in s["wheels"]}
    assert wheels["tiny-a"]["requires"] == ["tiny-b"] and wheels["tiny-a"]["size"] == synthetic.wheels["tiny-a"].stat().st_size
    assert all(w["unpacked"] > 0 for w in wheels.values())
    assert plan["disk"]["store_new"] == sum(w["unpacked"] for w in wheels.values()) and plan["disk"]["download"] == 0


def test_rollback_json_prints_events_and_a_result(synthetic: Synthetic) -> None:
    synthetic.install()
    synthetic.install(force=True)
    proc = run("rollback", "--venv", str(synthetic.target), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[-1]["event"] == "result" and lines[-1]["generation"] == "g0001" and lines[-1]["verify"]["ok"]
    assert {e["event"] for e in lines[:-1]} <= {"phase", "phase_done", "progress", "message"}


def test_gui_without_the_extra_exits_2_naming_the_install_command(tmp_path: Path) -> None:
    blocker = tmp_path / "no-qt"
    (blocker / "PySide6").mkdir(parents=True)
    (blocker / "PySide6" / "__init__.py").write_text("raise ImportError('PySide6 is not installed (test)')\n")
    proc = run("gui", cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(blocker)})
    assert proc.returncode == 2, proc.stderr
    assert "needs PySide6" in proc.stderr and "pip install 'immutable-installer[gui]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_json_errors_are_an_event_with_a_stable_kind(synthetic: Synthetic) -> None:
    synthetic.wheels["tiny-b"].unlink()
    proc = run("install", "--skip-wheelhouse", "--variant", "cpu", "--json", "--manifest", str(synthetic.manifest_path),
               "--wheelhouse", str(synthetic.house), "--venv", str(synthetic.target), "--store", str(synthetic.store))
    assert proc.returncode == 4, proc.stderr
    last = json.loads(proc.stdout.splitlines()[-1])
    assert last["event"] == "error" and last["kind"] == "wheelhouse" and last["exit_code"] == 4
    assert "tiny_b-1.0" in last["message"] and last["hint"]
    assert not synthetic.target.exists()
