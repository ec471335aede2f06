"""Secrets never touch the disk: a lock against an index that demands a password works with the password in
`--index-url`, writes it into no file (manifest, pylock, receipt, manifest copy, exported index), shows it in no
output (`--debug` included; a quote in the password does not end the masking), and a later download gets it
from the index's variables or ~/.netrc instead."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

from conftest import Index, make_wheel
from immutable_installer.core.urls import credentials_in, mask_text, strip_credentials

USER, SECRET = "lab", "s3cr3t'pa$$word"
FORMS = [SECRET, urllib.parse.quote(SECRET, safe=""), urllib.parse.quote(SECRET)]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "immutable_installer", *args], cwd=cwd, env=env or dict(os.environ),
                          capture_output=True, text=True, timeout=900)


def secret_free(text: str) -> bool:
    return not any(form in text for form in FORMS)


def files_holding_the_secret(root: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(form.encode() in data for form in FORMS):
                found.append(str(path.relative_to(root)))
    return found


def test_the_secret_is_used_and_written_nowhere(tmp_path: Path, index: Index) -> None:
    index.auth.append(f"{USER}:{SECRET}")
    make_wheel(index.root, "helper", "1.0")
    make_wheel(index.root, "app", "1.0", requires=["helper>=1"])
    host = index.url.split("://", 1)[1]
    authed = f"http://{USER}:{urllib.parse.quote(SECRET, safe='')}@{host}"
    work = tmp_path / "work"
    work.mkdir()
    outputs: list[str] = []

    def step(*args: str, env: dict[str, str] | None = None, code: int = 0) -> subprocess.CompletedProcess[str]:
        proc = run(*args, cwd=work, env=env)
        outputs.append(proc.stdout + proc.stderr)
        assert proc.returncode == code, (args, proc.stderr[-3000:])
        return proc

    step("--debug", "lock", "app", "--index-url", authed, "--platform", "manylinux_2_17_x86_64", "-o", "m.json",
         "--pylock", "pylock.toml", "--json")
    manifest = (work / "m.json").read_text()
    assert f"http://{host}" in manifest and not credentials_in(manifest.split('"default": "')[1].split('"')[0])
    # later, on another day: the manifest holds no credentials; without any the index says 401 (exit 4) ...
    denied = step("download", "--manifest", "m.json", "--variant", "cpu", code=4)
    assert "401" in denied.stderr
    # ... with the index's variables they are supplied at run time
    env = {**os.environ, "IMMUTABLE_INSTALLER_INDEX_DEFAULT_USERNAME": USER,
           "IMMUTABLE_INSTALLER_INDEX_DEFAULT_PASSWORD": SECRET}
    step("--debug", "download", "--manifest", "m.json", "--variant", "cpu", env=env)
    step("install", "--manifest", "m.json", "--variant", "cpu", "--skip-wheelhouse", "--store", str(work / "store"))
    step("export-pylock", "--manifest", "m.json", "-o", "exported.toml")
    step("export-index", str(work / "index"), "--manifest", "m.json")
    assert (work / ".venv").is_symlink() and (work / "index").is_dir()
    assert files_holding_the_secret(work) == []  # manifest, pylocks, wheelhouse, store, generation, index
    assert all(secret_free(text) for text in outputs), next(t for t in outputs if not secret_free(t))[-2000:]


def test_netrc_supplies_the_credentials(tmp_path: Path, index: Index) -> None:
    make_wheel(index.root, "app", "1.0")
    work = tmp_path / "work"
    work.mkdir()
    assert run("lock", "app", "--index-url", index.url, "--platform", "manylinux_2_17_x86_64", "-o", "m.json",
               cwd=work).returncode == 0
    index.auth.append(f"{USER}:pass-word")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password pass-word\n")
    netrc.chmod(0o600)
    assert run("download", "--manifest", "m.json", "--variant", "cpu", cwd=work).returncode == 4
    ok = run("download", "--manifest", "m.json", "--variant", "cpu", cwd=work, env={**os.environ, "NETRC": str(netrc)})
    assert ok.returncode == 0, ok.stderr
    assert list((work / "wheelhouse").glob("app-1.0-*.whl"))


def test_a_manifest_holding_credentials_is_refused_without_showing_them(tmp_path: Path, index: Index) -> None:
    make_wheel(index.root, "app", "1.0")
    assert run("lock", "app", "--index-url", index.url, "--platform", "manylinux_2_17_x86_64", "-o", "m.json",
               cwd=tmp_path).returncode == 0
    text = (tmp_path / "m.json").read_text().replace("http://127.0.0.1", f"http://{USER}:{SECRET}@127.0.0.1")
    (tmp_path / "m.json").write_text(text)
    proc = run("install", "--dry-run", "--manifest", "m.json", cwd=tmp_path)
    assert proc.returncode == 2 and "holds credentials" in proc.stderr and "netrc" in proc.stderr
    assert secret_free(proc.stdout + proc.stderr)


def test_masking_and_stripping_cover_quotes_and_tokens() -> None:
    text = f"pip: GET https://{USER}:{SECRET}@host/simple/app/ failed; https://host/simple?private_token=abc&x=1"
    masked = mask_text(text)
    assert secret_free(masked) and "abc" not in masked and "x=1" in masked and "host/simple/app/" in masked
    assert strip_credentials(f"https://{USER}:{SECRET}@host:8080/simple?token=abc&x=1") == "https://host:8080/simple?x=1"
    assert credentials_in("https://host/simple?api_key=1") and not credentials_in("https://host/simple")
