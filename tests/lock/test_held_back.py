"""Nothing held back silently: the resolver's explanation read right, and real locks against a local index that
hold a requested package back (an sdist-only dependency, a Python patch level, a pre-release)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PY, Index, make_sdist, make_wheel
from immutable_installer.core.events import HeldBack
from immutable_installer.core.spec import spec_from_requirements, with_command_line
from immutable_installer.lock.held_back import explain
from immutable_installer.lock.locker import Locker, LockOptions

# uv 0.13's output, as printed for `uv pip compile` of these requirements with --only-binary :all:
UV_NO_WHEELS = """error: No solution found when resolving dependencies
  cause: Because antlr4-python3-runtime>=4.9,<=4.9.3 has no usable wheels and only the following versions of antlr4-python3-runtime are available:
             antlr4-python3-runtime<4.9.dev0
             antlr4-python3-runtime>=4.9,<=4.9.3
             antlr4-python3-runtime>4.10.dev0
         we can conclude that antlr4-python3-runtime==4.9.* cannot be used.
         And because hydra-core==1.3.2 depends on antlr4-python3-runtime==4.9.* and you require hydra-core==1.3.2, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `antlr4-python3-runtime` because building from source is disabled for all packages (i.e., with `--no-build`)
"""
UV_PYTHON = """error: No solution found when resolving dependencies
  cause: Because the requested Python version (>=3.11) does not satisfy Python>=3.11.5 and soupsieve==4.1.4 depends on Python>=3.11.5, we can conclude that soupsieve==4.1.4 cannot be used.
         And because only soupsieve<=4.1.4 is available and you require soupsieve==4.1.4, we can conclude that your requirements are unsatisfiable.

hint: The `--python-version` value (>=3.11) includes Python versions that are not supported by your dependencies (e.g., soupsieve==4.1.4 only supports >=3.11.5). Consider using a higher `--python-version` value.
"""
UV_SINGLE = """error: No solution found when resolving dependencies
  cause: Because numpy==1.21.0 has no usable wheels and you require numpy==1.21.0, we can conclude that your requirements are unsatisfiable.

hint: Wheels are required for `numpy` because building from source is disabled for all packages (i.e., with `--no-build`)
"""


def test_explain_names_the_package_without_wheels_and_its_range() -> None:
    found = explain(UV_NO_WHEELS)
    assert found.wheel_less == (("antlr4-python3-runtime", ">=4.9,<=4.9.3"),)
    assert "hydra-core==1.3.2 depends on antlr4-python3-runtime==4.9.*" in found.text and "\n" not in found.text
    assert explain(UV_SINGLE).wheel_less == (("numpy", "==1.21.0"),)


def test_explain_names_the_python_a_release_needs() -> None:
    found = explain(UV_PYTHON)
    assert found.python == ">=3.11.5" and found.wheel_less == ()


@pytest.fixture
def stack(index: Index) -> Index:
    """app 2.0 needs dep 1.0, published as an sdist only; app 1.0 needs nothing."""
    make_wheel(index.root, "app", "1.0")
    make_wheel(index.root, "app", "2.0", requires=["dep==1.0"])
    make_sdist(index.root, "dep", "1.0")
    make_wheel(index.root, "dep", "0.9")
    return index


def _lock(index: Index, reqs: list[str], tmp: Path, **spec_flags: object) -> tuple[object, list[object]]:
    events: list[object] = []
    spec = with_command_line(spec_from_requirements(reqs, PY, [], index.url, []), **spec_flags)  # type: ignore[arg-type]
    manifest = Locker(reporter=events.append).lock(spec, LockOptions())
    return manifest, events


def test_a_requested_package_held_back_is_said_with_the_reason_and_the_fix(stack: Index, tmp_path: Path) -> None:
    manifest, events = _lock(stack, ["app"], tmp_path)
    assert {p.name: p.version for p in manifest.packages} == {"app": "1.0"}  # type: ignore[attr-defined]
    held = [e for e in events if isinstance(e, HeldBack)]
    assert len(held) == 1 and held[0].package == "app" and held[0].pinned == "1.0" and held[0].newest == "2.0"
    assert "dep" in held[0].reason and "no wheel" in held[0].reason and held[0].hint.startswith("--build dep")
    assert held[0].requested and held[0].to_json()["event"] == "held_back"


def test_strict_makes_a_held_back_requested_package_exit_1(stack: Index, tmp_path: Path) -> None:
    from immutable_installer.core.errors import ExitCode, ResolutionError

    with pytest.raises(ResolutionError) as caught:
        _lock(stack, ["app"], tmp_path, strict=True)
    assert caught.value.exit_code == ExitCode.FAILED and "app" in caught.value.message
    assert "--build dep" in caught.value.hint


def test_an_exact_pin_that_needs_an_sdist_fails_naming_the_build_option(stack: Index, tmp_path: Path) -> None:
    from immutable_installer.core.errors import ResolutionError

    with pytest.raises(ResolutionError) as caught:
        _lock(stack, ["app==2.0"], tmp_path)
    assert "dep" in caught.value.message and "--build dep" in caught.value.hint


def test_a_chosen_pre_release_is_said(index: Index, tmp_path: Path) -> None:
    make_wheel(index.root, "pre", "1.0", requires=["dep==1.0"])
    make_sdist(index.root, "dep", "1.0")
    make_wheel(index.root, "pre", "2.0rc1")
    manifest, events = _lock(index, ["pre>=1.0"], tmp_path)
    # uv's default mode takes a pre-release when no stable release resolves: said, with why the stable one did not
    assert {p.name: p.version for p in manifest.packages} == {"pre": "2.0rc1"}  # type: ignore[attr-defined]
    held = [e for e in events if isinstance(e, HeldBack)]
    assert len(held) == 1 and held[0].prerelease and held[0].newest == "1.0" and "dep==1.0" in held[0].reason
    assert held[0].text.startswith("pre 2.0rc1 is a pre-release, chosen over its newest stable release 1.0")


def test_nothing_is_said_when_the_newest_release_is_pinned(index: Index, tmp_path: Path) -> None:
    make_wheel(index.root, "fresh", "1.0")
    make_wheel(index.root, "fresh", "2.0")
    _, events = _lock(index, ["fresh"], tmp_path)
    assert not [e for e in events if isinstance(e, HeldBack)]


def test_what_was_held_back_is_kept_and_named_when_the_environment_fails(stack: Index, tmp_path: Path) -> None:
    """hydra-core 0.11's case: the lock pinned an old release (said so), which then fails verify; the failure
    names the held-back package and the option that moves it."""
    from conftest import cli
    from immutable_installer.core.manifest import load_manifest

    lock = cli("lock", "app", "--index-url", stack.url, "--verify-import", "app_new_module", "-o", "deps.json",
               cwd=tmp_path)
    assert lock.returncode == 0, lock.stderr
    notes = load_manifest(tmp_path / "deps.json").held_back
    assert [(n.package, n.pinned, n.newest) for n in notes] == [("app", "1.0", "2.0")]
    install = cli("install", "--manifest", "deps.json", "--venv", ".venv", "--variant", "cpu", "--find-links",
                  str(stack.root), cwd=tmp_path)
    assert install.returncode == 1 and "held back app" in install.stderr and "--build dep" in install.stderr
