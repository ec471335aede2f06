"""`lock` against a real local index: markers, extras, blacklist chains, determinism, pin keeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PY, Index, make_wheel
from immutable_installer.core.errors import BlacklistError, SpecError
from immutable_installer.core.manifest import load_manifest
from immutable_installer.core.serialize import dump_manifest, write_manifest
from immutable_installer.core.spec import load_spec
from immutable_installer.core.tags import expand_platform_tags
from immutable_installer.lock.locker import Locker, LockOptions, assign_groups, variant_requirements

SPEC = """
name = "tiny"
requirements = [{reqs}]
default_index = "local"
[python]
version = "{py}"
[[platforms]]
name = "linux_x86_64"
tags = ["manylinux_2_17_x86_64"]
[indexes]
local = "{url}"
[variants.cpu]
index = "local"
torch_packages = []
[[groups]]
name = "base"
packages = ["helper"]
[[groups]]
name = "app"
packages = ["app"]
[[blacklist]]
name = "torchao"
reason = "breaks transformers' PreTrainedModel import"
import_names = ["torchao"]
"""


def write_spec(path: Path, index: Index, reqs: list[str]) -> Path:
    path.write_text(SPEC.format(reqs=", ".join(f'"{r}"' for r in reqs), py=PY, url=index.url), encoding="utf-8")
    return path


def build_stack(index: Index) -> None:
    root = index.root
    make_wheel(root, "helper", "1.0")
    make_wheel(root, "speedup", "1.0")
    make_wheel(root, "winonly", "1.0")
    make_wheel(root, "featured", "1.0", extras=["fast"], requires=["speedup>=1; extra == 'fast'"])
    make_wheel(root, "app", "1.0", requires=["helper>=1", "winonly>=1; sys_platform == 'win32'", "featured[fast]>=1"])


def lock(spec: Path, existing: Path | None = None, **options: object) -> object:
    opts = LockOptions(isolated=True, **options)  # type: ignore[arg-type]
    current = load_manifest(existing) if existing and existing.exists() else None
    return Locker(size_lookup=lambda url: None).lock(load_spec(spec), opts, current)


def test_lock_follows_markers_and_extras(tmp_path: Path, index: Index) -> None:
    build_stack(index)
    manifest = lock(write_spec(tmp_path / "spec.toml", index, ["app"]))
    pins = {p.name: p for p in manifest.packages}  # type: ignore[attr-defined]
    assert set(pins) == {"app", "helper", "featured", "speedup"}  # winonly is win32-only
    assert pins["featured"].extras == ("fast",)
    assert pins["app"].group == "app" and pins["helper"].group == "base"
    assert pins["app"].order > pins["featured"].order > pins["speedup"].order
    assert all(len(f.sha256) == 64 for p in pins.values() for f in p.files)
    assert all(f.url is None for p in pins.values() for f in p.files)  # no machine-local paths


def test_blacklisted_three_levels_deep_names_the_chain(tmp_path: Path, index: Index) -> None:
    make_wheel(index.root, "torchao", "0.6")
    make_wheel(index.root, "deep", "1.0", requires=["torchao>=0.5"])
    make_wheel(index.root, "mid", "1.0", requires=["deep>=1"])
    make_wheel(index.root, "app", "1.0", requires=["mid>=1"])
    with pytest.raises(BlacklistError) as info:
        lock(write_spec(tmp_path / "spec.toml", index, ["app"]))
    assert info.value.exit_code == 3
    assert "app 1.0 -> mid 1.0 -> deep 1.0 -> torchao>=0.5" in info.value.message
    assert "PreTrainedModel" in info.value.message


def test_lock_twice_is_byte_identical_and_keeps_pins(tmp_path: Path, index: Index) -> None:
    build_stack(index)
    spec = write_spec(tmp_path / "spec.toml", index, ["app"])
    out = tmp_path / "m.json"
    first = write_manifest(lock(spec), out)  # type: ignore[arg-type]
    second = dump_manifest(lock(spec, existing=out))  # type: ignore[arg-type]
    assert first == second
    make_wheel(index.root, "helper", "1.1")  # a newer release appears
    kept = lock(spec, existing=out)
    assert dump_manifest(kept) == first  # type: ignore[arg-type]
    upgraded = lock(spec, existing=out, upgrade_packages=["helper"])
    assert {p.name: p.version for p in upgraded.packages}["helper"] == "1.1"  # type: ignore[attr-defined]


def test_lock_no_index_find_links(tmp_path: Path) -> None:
    links = tmp_path / "links"
    make_wheel(links, "helper", "1.0")
    make_wheel(links, "app", "1.0", requires=["helper"])
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(reqs='"app"', py=PY, url="https://example.invalid/simple"), encoding="utf-8")
    manifest = lock(spec, no_index=True, find_links=[str(links)])
    assert {p.name for p in manifest.packages} == {"app", "helper"}  # type: ignore[attr-defined]


def test_group_assignment_refuses_inverted_explicit_groups() -> None:
    deps = {"torch": {"numpy"}, "numpy": set(), "transformers": {"torch"}}
    placed = assign_groups([("base", []), ("torch", ["torch"]), ("hf", ["transformers"])], deps)
    assert placed["numpy"][0] == "base" and placed["transformers"][0] == "hf"
    with pytest.raises(SpecError, match="depends on 'torch'"):
        assign_groups([("base", ["transformers"]), ("torch", ["torch"])], deps)


def test_torch_pins_become_exact_per_variant(tmp_path: Path, index: Index) -> None:
    spec_path = write_spec(tmp_path / "s.toml", index, ["torch==2.13.0"])
    text = spec_path.read_text().replace('torch_packages = []', 'torch_packages = ["torch"]\nlocal_label = "cpu"')
    text += '\n[variants.cu124]\nindex = "local"\ntorch_packages = ["torch"]\ncuda = "12.4"\n'
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    cpu, cu = sorted(spec.variants, key=lambda v: v.variant.name)
    assert variant_requirements(spec, cpu) == ["torch==2.13.0+cpu"]
    assert variant_requirements(spec, cu) == ["torch===2.13.0"]


def test_expand_platform_tags_adds_older_glibc() -> None:
    tags = expand_platform_tags(["manylinux_2_28_x86_64"])
    assert "manylinux_2_17_x86_64" in tags and "manylinux2014_x86_64" in tags and "linux_x86_64" in tags


def test_cuda_and_cpu_builds_of_a_torch_like_package(tmp_path: Path, index: Index, cuda_index: Index) -> None:
    make_wheel(index.root, "torch", "2.0.0")  # what a default index would quietly hand out
    make_wheel(cuda_index.root, "torch", "2.0.0+cpu")
    make_wheel(cuda_index.root, "torch", "2.0.0+cu124")
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(SPEC.format(reqs='"torch==2.0.0"', py=PY, url=index.url).replace(
        'torch_packages = []', 'torch_packages = ["torch"]\nlocal_label = "cpu"').replace(
        '[variants.cpu]\nindex = "local"', '[variants.cpu]\nindex = "cuda"').replace(
        'local = "', f'cuda = "{cuda_index.url}"\nlocal = "') + (
        '\n[variants.cu124]\nindex = "cuda"\ntorch_packages = ["torch"]\ncuda = "12.4"\nlocal_label = "cu124"\n'))
    manifest = lock(spec_path)
    torches = {p.variants: (p.version, p.index) for p in manifest.packages if p.name == "torch"}  # type: ignore[attr-defined]
    assert torches == {("cpu",): ("2.0.0+cpu", "cuda"), ("cu124",): ("2.0.0+cu124", "cuda")}


@pytest.mark.parametrize(("torch_version", "requires", "variant", "cuda"), [
    ("2.0.0", ['cuda-toolkit[cudart]==13.0.3; platform_system == "Linux"'], "cu130", "13.0"),
    ("2.0.0", ['nvidia-cuda-runtime-cu12==12.4.127; platform_system == "Linux"'], "cu124", "12.4"),
    ("2.0.0+cpu", [], "cpu", None),
    ("2.0.0", ['cuda-toolkit==13.0.3; platform_system == "Windows"'], "cpu", None),
])
def test_plain_lock_names_the_variant_after_the_torch_build(tmp_path: Path, index: Index, torch_version: str,
                                                            requires: list[str], variant: str,
                                                            cuda: str | None) -> None:
    """A lock never calls a CUDA build of torch `cpu`."""
    import json
    import subprocess
    import sys

    make_wheel(index.root, "torch", torch_version, requires=requires)
    make_wheel(index.root, "cuda-toolkit", "13.0.3", extras=["cudart"])
    make_wheel(index.root, "nvidia-cuda-runtime-cu12", "12.4.127")
    out = tmp_path / "m.json"
    proc = subprocess.run([sys.executable, "-m", "immutable_installer", "lock", f"torch=={torch_version}", "--index-url",
                           index.url, "--isolated", "--platform", "manylinux_2_17_x86_64", "-o", str(out)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert list(data["variants"]) == [variant] and data["default_variant"] == variant
    assert data["variants"][variant]["cuda"] == cuda and data["variants"][variant]["torch_packages"] == ["torch"]


def test_pip_resolver_refuses_another_python_and_says_why(tmp_path: Path, index: Index) -> None:
    """pip evaluates markers for the running interpreter: with --resolver pip a lock for another Python is
    refused up front, with a hint that works (the default resolver), instead of 're-lock'."""
    import subprocess
    import sys

    other = "3.10" if sys.version_info[:2] != (3, 10) else "3.12"
    make_wheel(index.root, "app", "1.0", requires=[f'oldpy; python_version == "{other}"'])
    make_wheel(index.root, "oldpy", "1.0")
    out = tmp_path / "m.json"
    args = [sys.executable, "-m", "immutable_installer", "lock", "app", "--index-url", index.url, "--isolated",
            "--python-version", other, "-o", str(out)]
    proc = subprocess.run([*args, "--resolver", "pip"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and not out.exists()
    assert "evaluates markers for this interpreter only" in proc.stderr and "--resolver uv" in proc.stderr
    assert "re-lock to add the missing package" not in proc.stderr
    hinted = subprocess.run(args, capture_output=True, text=True, check=False)  # the command the hint names
    assert hinted.returncode == 0, hinted.stderr


def test_pure_python_stack_locks_installs_and_verifies(tmp_path: Path, index: Index) -> None:
    """No torch, no verify.imports given: the manifest imports what the requested wheels really install."""
    import json
    import subprocess
    import sys

    make_wheel(index.root, "py-app", "1.0", requires=["helper>=1"],
               files={"app_mod/__init__.py": "import helper\n", "_app_private.py": ""})
    make_wheel(index.root, "helper", "1.0")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "immutable_installer", *args], capture_output=True, text=True,
                              check=False, cwd=tmp_path, timeout=600)

    locked = run("lock", "py-app", "--index-url", index.url, "--isolated")
    assert locked.returncode == 0, locked.stderr
    data = json.loads((tmp_path / "metadata" / "dependencies.json").read_text())
    assert data["verify"]["imports"] == ["app_mod"]
    assert run("download", "--variant", "cpu").returncode == 0
    installed = run("install", "--skip-wheelhouse", "--variant", "cpu")
    assert installed.returncode == 0, installed.stderr
    verified = run("verify", "--json")
    assert verified.returncode == 0, verified.stdout
    checks = {c["name"]: c["status"] for c in json.loads(verified.stdout)["checks"]}
    assert checks["imports"] == "pass" and checks["torch"] == "skip" and checks["transformers"] == "skip"


def test_start_up_code_is_told_at_lock_time_and_allowed_from_the_command_line(index: Index, tmp_path: Path) -> None:
    """setuptools' case, through the real command line: the lock names the file and the option; allowed, the
    stack installs; not allowed, install refuses it (exit 7) with the same option in its hint."""
    import json

    from conftest import cli

    make_wheel(index.root, "tool", "1.0", requires=["hooky>=1"])
    make_wheel(index.root, "hooky", "1.0", files={"hooky/__init__.py": "", "hooky-startup.pth": "import hooky\n"})
    plain = cli("lock", "tool", "--index-url", index.url, "-o", "plain.json", "--json", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    events = [json.loads(line) for line in plain.stdout.splitlines()]
    told = [e["text"] for e in events if e["event"] == "message" and "hooky-startup.pth" in e["text"]]
    assert told and "lock --allow-pth hooky-startup.pth" in told[0] and "exit 7" in told[0]
    refused = cli("install", "--manifest", "plain.json", "--venv", "v1", "--variant", "cpu", "--find-links",
                  str(index.root), cwd=tmp_path)
    assert refused.returncode == 7 and "--allow-pth" in refused.stderr and not (tmp_path / "v1").exists()
    allowed = cli("lock", "tool", "--index-url", index.url, "-o", "allowed.json", "--allow-pth", "hooky-startup.pth",
                  "--verify-import", "tool", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    manifest = load_manifest(tmp_path / "allowed.json")
    assert manifest.verify.allowed_pth == ("hooky-startup.pth",) and manifest.verify.imports == ("tool",)
    done = cli("install", "--manifest", "allowed.json", "--venv", "v2", "--variant", "cpu", "--find-links",
               str(index.root), cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_the_held_back_event_is_in_the_json_output(index: Index, tmp_path: Path) -> None:
    import json

    from conftest import cli, make_sdist

    make_wheel(index.root, "app", "1.0")
    make_wheel(index.root, "app", "2.0", requires=["dep==1.0"])
    make_sdist(index.root, "dep", "1.0")
    proc = cli("lock", "app", "--index-url", index.url, "-o", "deps.json", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    held = [json.loads(line) for line in proc.stdout.splitlines() if '"held_back"' in line]
    assert len(held) == 1 and held[0]["package"] == "app" and held[0]["newest"] == "2.0"
    assert held[0]["hint"].startswith("--build dep")


def test_uv_and_pip_resolvers_write_the_same_lock_for_this_interpreter(tmp_path: Path, index: Index) -> None:
    """The lock's files, hashes, requirements and order are chosen and read by the tool, not by the resolver:
    for this interpreter, uv's and pip's answers give byte-identical manifests (markers, extras, a newer release
    on the index both must prefer)."""
    build_stack(index)
    make_wheel(index.root, "helper", "1.1")
    spec = write_spec(tmp_path / "spec.toml", index, ["app"])
    by_uv = dump_manifest(lock(spec, resolver="uv"))  # type: ignore[arg-type]
    by_pip = dump_manifest(lock(spec, resolver="pip"))  # type: ignore[arg-type]
    assert by_uv == by_pip
    assert b'"version": "1.1"' in by_uv
