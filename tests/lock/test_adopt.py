"""Locks people already have: a PEP 751 lock written by uv or pip, and a requirements file that pins everything
with hashes, adopted without a second resolution; direct-URL and local wheels; ``--hash`` lines honoured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PY, Index, cli, make_wheel, sha256
from immutable_installer.core.errors import SpecError
from immutable_installer.core.manifest import load_manifest
from immutable_installer.runner import uv_binary


@pytest.fixture
def stack(index: Index) -> Index:
    make_wheel(index.root, "app", "1.0", requires=["lib>=1"])
    make_wheel(index.root, "app", "2.0", requires=["lib>=2"])
    make_wheel(index.root, "lib", "1.0")
    make_wheel(index.root, "lib", "2.0")
    return index


def _pins(path: Path) -> dict[str, str]:
    return {p.name: p.version for p in load_manifest(path).packages}


def test_a_pylock_written_by_uv_is_adopted_as_it_is(stack: Index, tmp_path: Path) -> None:
    (tmp_path / "req.in").write_text("app==1.0\n")
    subprocess.run([uv_binary(), "pip", "compile", str(tmp_path / "req.in"), "-o", str(tmp_path / "pylock.toml"),
                    "--format", "pylock.toml", "--index-url", stack.url, "--no-config", "--python-version", PY,
                    "--quiet"], check=True, env={**os.environ, "UV_NO_CONFIG": "1"})
    make_wheel(stack.root, "lib", "3.0")  # a newer release after the lock was written: not taken
    proc = cli("lock", "--from", str(tmp_path / "pylock.toml"), "-o", str(tmp_path / "deps.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _pins(tmp_path / "deps.json") == {"app": "1.0", "lib": "2.0"}
    manifest = load_manifest(tmp_path / "deps.json")
    app = next(p for p in manifest.packages if p.name == "app")
    assert app.files[0].sha256 == sha256(stack.root / "app-1.0-py3-none-any.whl")
    assert manifest.verify.imports == ("app",)  # the root of the graph is what was asked for


def test_a_pylock_written_by_pip_is_adopted(stack: Index, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "lock", "app==2.0", "--index-url", stack.url, "-o",
                           str(tmp_path / "pylock.toml"), "--isolated", "--quiet"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 and "No such command" in proc.stderr:
        pytest.skip("this pip has no `pip lock` (pip >= 25.1)")
    assert proc.returncode == 0, proc.stderr
    done = cli("lock", "--from", str(tmp_path / "pylock.toml"), "-o", str(tmp_path / "deps.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _pins(tmp_path / "deps.json") == {"app": "2.0", "lib": "2.0"}


def test_an_invalid_pylock_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "pylock.toml").write_text('lock-version = "9.0"\ncreated-by = "x"\n')
    proc = cli("lock", "--from", str(tmp_path / "pylock.toml"), "-o", str(tmp_path / "deps.json"), cwd=tmp_path)
    assert proc.returncode == 2 and "pylock.toml" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "deps.json").exists()


def _hashed(index: Index, *names: str) -> str:
    return "".join(f"{n.split('-')[0]}=={n.split('-')[1]} \\\n    --hash=sha256:{sha256(index.root / n)}\n"
                   for n in names)


def test_a_fully_hashed_requirements_file_is_adopted(stack: Index, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"--index-url {stack.url}\n" + _hashed(stack, "app-1.0-py3-none-any.whl",
                                                           "lib-1.0-py3-none-any.whl"))
    proc = cli("lock", "-r", str(reqs), "--adopt", "-o", str(tmp_path / "deps.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _pins(tmp_path / "deps.json") == {"app": "1.0", "lib": "1.0"}  # not re-resolved to lib 2.0


def test_adopt_refuses_a_file_that_does_not_pin_everything(stack: Index, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(_hashed(stack, "app-1.0-py3-none-any.whl") + "lib>=1\n")
    proc = cli("lock", "-r", str(reqs), "--adopt", "--index-url", stack.url, "-o", str(tmp_path / "deps.json"),
               cwd=tmp_path)
    assert proc.returncode == 2 and "1 of 2 lines have hashes" in proc.stderr
    reqs.write_text(_hashed(stack, "app-1.0-py3-none-any.whl"))  # lib is missing: not closed
    proc = cli("lock", "-r", str(reqs), "--adopt", "--index-url", stack.url, "-o", str(tmp_path / "deps.json"),
               cwd=tmp_path)
    assert proc.returncode == 2 and "lib" in proc.stderr and "not closed" in proc.stderr
    assert not (tmp_path / "deps.json").exists()


def test_hash_lines_choose_the_file_and_a_foreign_hash_is_refused(stack: Index, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"app==2.0 --hash=sha256:{sha256(stack.root / 'app-2.0-py3-none-any.whl')}\n")
    proc = cli("lock", "-r", str(reqs), "--index-url", stack.url, "-o", str(tmp_path / "deps.json"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    reqs.write_text(f"app==2.0 --hash=sha256:{'0' * 64}\n")
    proc = cli("lock", "-r", str(reqs), "--index-url", stack.url, "-o", str(tmp_path / "other.json"), cwd=tmp_path)
    assert proc.returncode == 1 and "no wheel for" in proc.stderr and "--hash" in proc.stderr
    assert not (tmp_path / "other.json").exists()


def test_a_local_wheel_is_pinned_by_path_as_given_and_never_written(stack: Index, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "wheels"
    mine = make_wheel(outside, "mine", "1.0", requires=["lib>=2"])
    before = (mine.read_bytes(), mine.stat().st_mtime_ns)
    project = tmp_path / "project"
    project.mkdir()
    given = os.path.relpath(mine, project)
    proc = cli("lock", given, "--index-url", stack.url, "-o", "deps.json", cwd=project)
    assert proc.returncode == 0, proc.stderr
    manifest = load_manifest(project / "deps.json")
    pin = next(p for p in manifest.packages if p.name == "mine")
    assert pin.index is None and pin.files[0].path == given and pin.files[0].sha256 == sha256(mine)
    proc = cli("download", "--manifest", "deps.json", "--variant", "cpu", "--index-url", stack.url, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert (project / "wheelhouse" / mine.name).read_bytes() == before[0]
    assert (mine.read_bytes(), mine.stat().st_mtime_ns) == before  # read, never written


def test_a_direct_url_wheel_is_pinned_and_changed_bytes_are_refused(stack: Index, tmp_path: Path) -> None:
    wheel = make_wheel(stack.root, "flashy", "1.0")
    url = stack.file_url(wheel.name)
    proc = cli("lock", f"flashy @ {url}", "--index-url", stack.url, "-o", "deps.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pin = next(p for p in load_manifest(tmp_path / "deps.json").packages if p.name == "flashy")
    assert pin.index is None and pin.files[0].url == url and pin.files[0].sha256 == sha256(wheel)
    make_wheel(stack.root, "flashy", "1.0", files={"flashy/__init__.py": "import os  # other bytes\n"})
    proc = cli("download", "--manifest", "deps.json", "--variant", "cpu", cwd=tmp_path)
    assert proc.returncode == 4 and "a different file than the manifest pins" in proc.stderr
    assert not (tmp_path / "wheelhouse" / wheel.name).exists()


def test_requirements_files_read_like_pip_and_refuse_what_they_cannot_honour(tmp_path: Path) -> None:
    from immutable_installer.core.requirements_file import read_requirements_file

    (tmp_path / "more.txt").write_text("extra-pkg==1.0  # a comment\n")
    good = "a" * 64
    (tmp_path / "req.txt").write_text(
        f"--index-url https://example.org/simple\n-f ./wheels\n# a comment\nfoo==1.0 \\\n  --hash=sha256:{good} \\\n"
        f"  --hash=sha256:{'b' * 64}\nbar>=2 ; python_version >= '3.8'\n-r more.txt\n")
    read = read_requirements_file(tmp_path / "req.txt")
    assert read.requirements == ["foo==1.0", "bar>=2 ; python_version >= '3.8'", "extra-pkg==1.0"]
    assert read.hashes == {"foo": {good, "b" * 64}} and read.index_url == "https://example.org/simple"
    assert read.find_links == [str(tmp_path / "wheels")] and not read.fully_hashed
    for line, word in (("-e .", "-e"), ("foo==1 --hash=md5:abc", "sha256"), ("--pre", "--pre"),
                       ("foo==1 --install-option=x", "--install-option")):
        (tmp_path / "bad.txt").write_text(line + "\n")
        with pytest.raises(SpecError) as caught:
            read_requirements_file(tmp_path / "bad.txt")
        assert "line 1" in caught.value.message and word in caught.value.message + caught.value.hint
