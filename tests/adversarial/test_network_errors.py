"""Errors that name the cause: an index behind an untrusted TLS certificate, or one answering HTTP 500, is named
as that (with how to trust a CA), never as pip's unrelated "Could not find a version" and "run it again"."""

from __future__ import annotations

import http.server
import os
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO, Index, Synthetic, manifest_data, write_json


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_index(tmp_path: Path) -> Iterator[tuple[Index, Path]]:
    """The tests' index, served over HTTPS with a certificate no CA store trusts."""
    cert, key = _self_signed(tmp_path)
    index = Index(tmp_path / "tls-index")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    index.server.socket = context.wrap_socket(index.server.socket, server_side=True)
    index.url = index.url.replace("http://", "https://")
    index.base = index.base.replace("http://", "https://")
    yield index, cert
    index.close()


@pytest.fixture
def failing_index() -> Iterator[str]:
    class Failing(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_error(500)

        do_HEAD = do_GET

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()
    server.server_close()


def _download(stack: Synthetic, tmp_path: Path, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    data = manifest_data([(stack.wheels["tiny-b"], {})], index_url=url)
    manifest = write_json(tmp_path / "deps.json", data)
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")}, "PYTHONPATH": str(REPO),
            "PIP_CONFIG_FILE": os.devnull, **env}
    return subprocess.run([__import__("sys").executable, "-m", "immutable_installer", "download", "--manifest",
                           str(manifest), "--wheelhouse", str(tmp_path / "house"), "--variant", "cpu"], cwd=tmp_path,
                          env=full, capture_output=True, text=True, check=False, timeout=600)


def test_an_untrusted_certificate_is_named_with_how_to_trust_it(tls_index: tuple[Index, Path],
                                                                tmp_path: Path) -> None:
    index, cert = tls_index
    stack = Synthetic(tmp_path / "stack")
    (index.root / stack.wheels["tiny-b"].name).write_bytes(stack.wheels["tiny-b"].read_bytes())
    proc = _download(stack, tmp_path, index.url)
    flat = " ".join(proc.stderr.split())
    assert proc.returncode == 4 and "certificate" in flat and "PIP_CERT" in flat, proc.stderr
    assert "Could not find a version" not in flat and "run the same command again" not in flat
    trusted = _download(stack, tmp_path, index.url, PIP_CERT=str(cert), SSL_CERT_FILE=str(cert))
    assert trusted.returncode == 0, trusted.stderr
    assert (tmp_path / "house" / stack.wheels["tiny-b"].name).is_file()


def test_a_server_error_is_named(failing_index: str, tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "stack")
    proc = _download(stack, tmp_path, failing_index)
    flat = " ".join(proc.stderr.split())
    assert proc.returncode == 4 and "HTTP 500" in flat and "server error" in flat, proc.stderr
    assert "Could not find a version" not in flat
