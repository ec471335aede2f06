"""The window's model without Qt: progress from the CLI's real event stream, outcomes in plain words, the plan
at a glance, the argument lists of each action."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Synthetic, cli
from immutable_installer.core.errors import ExitCode
from immutable_installer.gui.model import (
    Options,
    ProgressTracker,
    expected_phases,
    generation_rows,
    hardware_text,
    human_bytes,
    log_line,
    outcome,
    plan_view,
)


def events_of(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_progress_follows_a_real_install_and_never_goes_back(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    run = cli("install", "--manifest", str(stack.manifest_path), "--venv", str(stack.target), "--wheelhouse",
              str(stack.house), "--skip-wheelhouse", "--variant", "cpu", "--json", "--store", str(stack.store),
              cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    events = events_of(run.stdout)
    plan = {"to_fetch": [], "to_store": ["x"]}
    tracker = ProgressTracker(expected_phases(plan, offline=True))
    seen, phases = [], set()
    for event in events:
        tracker.feed(event)
        seen.append(tracker.overall())
        phases.add(tracker.current)
    assert seen == sorted(seen), "the overall bar never moves backwards"
    assert any(0 < v < 1 for v in seen), "it moves in steps, not from empty to full"
    assert seen[-1] == pytest.approx(1.0)
    assert {"scan", "store", "link", "shims", "verify", "switch", "prune"} <= phases
    assert "download" not in tracker.expected


def test_expected_phases_follow_the_plan() -> None:
    cold = {"to_fetch": ["a.whl"], "to_store": ["a.whl"]}
    warm = {"to_fetch": [], "to_store": []}
    assert expected_phases(cold, offline=False)[:3] == ["download", "scan", "store"]
    assert "download" not in expected_phases(cold, offline=True)
    assert expected_phases(warm, offline=False) == ["scan", "link", "shims", "verify", "switch", "prune"]


def test_a_phase_the_plan_did_not_expect_is_added_in_pipeline_order() -> None:
    tracker = ProgressTracker(["scan", "link"])
    tracker.feed({"event": "phase", "name": "store", "message": ""})
    assert tracker.expected == ["scan", "store", "link"]
    assert tracker.fractions.get("scan", 0.0) == 0.0, "the store fills while the scan still reads: scan is not over"
    tracker.feed({"event": "progress", "phase": "scan", "done": 1, "total": 2, "unit": "wheels", "item": "a"})
    assert tracker.phase_fraction() == 0.5 and tracker.detail == "1 of 2 wheels: a"


@pytest.mark.parametrize("code", [ExitCode.FAILED, ExitCode.USAGE, ExitCode.BLACKLISTED, ExitCode.WHEELHOUSE,
                                  ExitCode.LOCKED, ExitCode.FILE_CLASH, ExitCode.STARTUP_CODE])
def test_every_documented_failure_has_its_own_plain_words(code: int) -> None:
    error = {"event": "error", "kind": "x", "exit_code": code, "message": "the message", "hint": "the hint",
             "details": ["the message", "a -> b"]}
    told = outcome("install", code, error)
    assert not told.ok and told.exit_code == code
    assert "the message" in told.meaning and told.hint == "the hint"
    assert told.details == ("a -> b",), "the message is not repeated among the details"
    assert told.title != "Something went wrong"


def test_cancel_and_success_and_up_to_date_are_told_apart() -> None:
    assert outcome("install", 130).title == "Cancelled"
    assert "untouched" in outcome("install", 130).meaning
    assert outcome("install", 0, result={"changed": True, "generation": "g0002"}).title == "Installed and verified"
    assert outcome("install", 0, result={"changed": False, "generation": "g0002"}).title == "Already up to date"
    assert outcome("verify", 1).title == "Not healthy"
    assert outcome("rollback", 0, result={"generation": "g0001"}).meaning.startswith("The environment now uses g0001")


def test_plan_view_of_a_real_dry_run(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path)
    size = stack.wheels["tiny-a"].stat().st_size
    stack.wheels["tiny-a"].unlink()
    run = cli("install", "--dry-run", "--json", "--manifest", str(stack.manifest_path), "--wheelhouse",
              str(stack.house), "--variant", "cpu", "--store", str(stack.store), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    view = plan_view(json.loads(run.stdout))
    assert view.manifest == "synthetic" and view.variant == "cpu" and view.variants == ("cpu",)
    assert [r.name for r in view.rows if r.group == "app"] == ["tiny-a"]
    assert view.missing == 1 and view.stored == 0
    assert view.download_bytes == size
    assert view.store_new is None, "the missing wheel cannot be measured before it is downloaded"
    assert not view.scan_ok and "tiny_a" in view.scan_message
    assert "1 missing" in view.summary


def test_hardware_and_generations_and_log_lines() -> None:
    assert hardware_text({"driver": None, "variant": "cpu"}) == "no NVIDIA driver found; auto picks cpu"
    assert hardware_text({"driver": "580.82", "gpus": ["Sim GPU"], "variant": "cu130"}) == \
        "NVIDIA driver 580.82 (Sim GPU); auto picks cu130"
    v100 = {"driver": "580.82", "gpus": ["Tesla V100"], "compute_capability": ["7.0"], "variant": "cpu",
            "variants": [{"name": "cpu", "ok": True, "why": "runs anywhere"},
                         {"name": "cu130", "ok": False, "why": "compute capability 7.0 is older than the 7.5"}]}
    assert hardware_text(v100) == ("NVIDIA driver 580.82 (Tesla V100, compute capability 7.0); auto picks cpu "
                                   "(not cu130: compute capability 7.0 is older than the 7.5)")
    rows = generation_rows({"generations": [{"generation": "g0001", "current": False},
                                            {"generation": "g0002", "current": True, "fingerprint": "f" * 64}]})
    assert [r[0] for r in rows] == ["g0002", "g0001"] and rows[0][4] and rows[0][2] == "f" * 16
    assert log_line({"event": "progress", "phase": "scan", "done": 1}) is None
    assert log_line({"event": "message", "level": "warn", "text": "t"}) == "    warning: t"
    assert human_bytes(1_500_000) == "1.5 MB" and human_bytes(None) == "unknown"


def test_options_build_the_cli_arguments_of_each_action(tmp_path: Path) -> None:
    options = Options(Path("m.json"), Path(".venv"), Path("wh"), store=tmp_path)
    assert options.install_args("cpu", offline=True, force=True) == [
        "install", "--json", "--manifest", "m.json", "--venv", ".venv", "--wheelhouse", "wh", "--variant", "cpu",
        "--store", str(tmp_path), "--skip-wheelhouse", "--force"]
    assert "--skip-wheelhouse" not in options.install_args("cpu", offline=False)
    assert options.rollback_args("g0001")[-2:] == ["--to", "g0001"]
    assert options.plan_args("auto")[:3] == ["install", "--dry-run", "--json"]
