"""export-index served by real servers (python -m http.server, nginx, pypiserver); real pip and uv read it;
download --index-url fills an identical wheelhouse, survives server faults and never shows credentials."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Index, Synthetic, cli, free_port, wait_for
from immutable_installer.wheelhouse.index_export import file_href


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.whl")}


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Synthetic, Path]:
    stack = Synthetic(tmp_path / "stack")
    out = tmp_path / "export"
    proc = cli("export-index", str(out), "--manifest", str(stack.manifest_path), "--wheelhouse", str(stack.house),
               "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["files"] == len(stack.wheels) and result["projects"] == len(stack.wheels)
    return stack, out


@pytest.fixture
def http_server(exported: tuple[Synthetic, Path]) -> Iterator[str]:
    _, out = exported
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/simple/", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def node_download(stack: Synthetic, base: str, tmp: Path, name: str) -> subprocess.CompletedProcess[str]:
    """A fleet node: fetch the manifest from the server, then the wheels from its index, nothing else."""
    node = tmp / name
    node.mkdir()
    with urllib.request.urlopen(f"{base}/dependencies.json") as response:
        (node / "dependencies.json").write_bytes(response.read())
    return cli("download", "--manifest", str(node / "dependencies.json"), "--wheelhouse", str(node / "wheelhouse"),
               "--variant", "cpu", "--index-url", f"{base}/simple", cwd=node)


def test_export_layout_json_and_encoding(exported: tuple[Synthetic, Path]) -> None:
    stack, out = exported
    torch = stack.wheels["torch"].name
    assert "+" in torch
    page = (out / "simple" / "torch" / "index.html").read_text()
    assert file_href(torch, hashlib.sha256(stack.wheels["torch"].read_bytes()).hexdigest()) in page
    assert "%2B" in page and "+cpu" not in page.split(">", 1)[1].split("</a>")[0].split('"')[1]
    data = json.loads((out / "simple" / "torch" / "index.json").read_text())
    assert data["meta"]["api-version"].startswith("1.") and data["files"][0]["hashes"]["sha256"]
    assert (out / "files" / torch).read_bytes() == stack.wheels["torch"].read_bytes()
    assert (out / "dependencies.json").read_bytes() == stack.manifest_path.read_bytes()


def test_http_server_fills_an_identical_wheelhouse_and_pip_and_uv_install(
        exported: tuple[Synthetic, Path], http_server: str, tmp_path: Path) -> None:
    stack, _ = exported
    proc = node_download(stack, http_server, tmp_path, "node")
    assert proc.returncode == 0, proc.stderr
    assert digests(tmp_path / "node" / "wheelhouse") == digests(stack.house)
    # real clients read the export as any index
    venv = tmp_path / "pip-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install", "--isolated",
                          "--no-deps", "--index-url", f"{http_server}/simple", "tiny-a==2.0", "torch==1.0+cpu"],
                         capture_output=True, text=True, check=False)
    assert pip.returncode == 0, pip.stderr
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    venv = tmp_path / "uv-venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    uvi = subprocess.run([uv, "pip", "install", "--no-config", "--no-deps", "--python", str(venv / "bin/python"),
                          "--index-url", f"{http_server}/simple", "--cache-dir", str(tmp_path / "uv-cache"),
                          "tiny-a==2.0", "torch==1.0+cpu"], capture_output=True, text=True, check=False)
    assert uvi.returncode == 0, uvi.stderr
    for v in ("pip-venv", "uv-venv"):
        assert list((tmp_path / v / "lib").glob("python*/site-packages/torch-1.0+cpu.dist-info"))


def test_nginx_serves_the_export_unchanged(exported: tuple[Synthetic, Path], tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        pytest.skip("nginx is not installed here (.ci/run installs it from Debian)")
    stack, out = exported
    port = free_port()
    conf = tmp_path / "nginx.conf"
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
    types {{ text/html html; application/json json; application/octet-stream whl; }}
    server {{ listen 127.0.0.1:{port}; root {out}; index index.html; }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/simple/", proc)
        result = node_download(stack, f"http://127.0.0.1:{port}", tmp_path, "node")
        assert result.returncode == 0, result.stderr
        assert digests(tmp_path / "node" / "wheelhouse") == digests(stack.house)
    finally:
        proc.kill()
        proc.wait()


def test_pypiserver_as_an_organisations_index(exported: tuple[Synthetic, Path], tmp_path: Path) -> None:
    server = shutil.which("pypi-server") or str(Path(sys.executable).with_name("pypi-server"))
    if not Path(server).exists():
        pytest.skip("pypiserver is not installed (it is a dev dependency)")
    stack, out = exported
    port = free_port()
    proc = subprocess.Popen([server, "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", ".",
                             "--disable-fallback", "--hash-algo", "sha256", str(out / "files")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/simple/", proc)
        node = tmp_path / "node"
        node.mkdir()
        shutil.copy(out / "dependencies.json", node / "dependencies.json")
        result = cli("download", "--manifest", str(node / "dependencies.json"), "--wheelhouse",
                     str(node / "wheelhouse"), "--variant", "cpu", "--index-url", f"http://127.0.0.1:{port}/simple/",
                     cwd=node)
        assert result.returncode == 0, result.stderr
        assert digests(node / "wheelhouse") == digests(stack.house)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("fault", ["500", "truncate"])
def test_server_faults_exit_4_without_partial_files_and_the_next_run_resumes(tmp_path: Path, fault: str) -> None:
    stack = Synthetic(tmp_path / "stack")
    index = Index(tmp_path / "served")
    try:
        for wheel in stack.wheels.values():
            shutil.copy(wheel, index.root / wheel.name)
        broken = stack.wheels["tiny-a"].name
        index.faults[broken] = fault
        house = tmp_path / "node-house"
        secret_url = index.url.replace("http://", "http://fleet:s3cr3t-token@")
        args = ("download", "--manifest", str(stack.manifest_path), "--wheelhouse", str(house), "--variant", "cpu",
                "--index-url", secret_url)
        first = cli(*args, cwd=tmp_path)
        assert first.returncode == 4, first.stderr
        assert "tiny_a-2.0" in first.stderr and "Traceback" not in first.stderr
        assert "s3cr3t-token" not in first.stderr + first.stdout and index.url in first.stderr  # named, without them
        names = sorted(p.name for p in house.iterdir())
        assert broken not in names and not [n for n in names if ".part" in n or n.startswith(".download-")]
        assert len([n for n in names if n.endswith(".whl")]) == len(stack.wheels) - 1  # the rest is kept
        index.faults.clear()
        second = cli(*args, "--json", cwd=tmp_path)
        assert second.returncode == 0, second.stderr
        assert "s3cr3t-token" not in second.stderr + second.stdout
        messages = [json.loads(line) for line in second.stdout.splitlines()]
        count = len(stack.wheels)
        assert any(f"{count - 1} of {count} wheels already present, 1 to fetch" in m.get("text", "") for m in messages)
        assert digests(house) == digests(stack.house)
    finally:
        index.close()


def test_credentials_never_reach_receipts_or_events(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    index = Index(tmp_path / "served")
    try:
        for wheel in stack.wheels.values():
            shutil.copy(wheel, index.root / wheel.name)
        secret_url = index.url.replace("http://", "http://fleet:s3cr3t-token@")
        house = tmp_path / "node-house"
        got = cli("download", "--manifest", str(stack.manifest_path), "--wheelhouse", str(house), "--variant", "cpu",
                  "--index-url", secret_url, "--json", cwd=tmp_path)
        assert got.returncode == 0, got.stderr
        installed = cli("install", "--skip-wheelhouse", "--manifest", str(stack.manifest_path), "--wheelhouse",
                        str(house), "--venv", str(tmp_path / ".venv"), "--variant", "cpu", "--json", cwd=tmp_path)
        assert installed.returncode == 0, installed.stderr
        seen = got.stdout + got.stderr + installed.stdout + installed.stderr
        seen += (tmp_path / ".venv" / "installer-receipt.json").read_text()
        assert "s3cr3t-token" not in seen
    finally:
        index.close()
