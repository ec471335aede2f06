"""The registry client against a small registry of our own that misbehaves on purpose: an upload cut off in
flight is started again from its first byte, a blob served with other bytes is never taken, a bearer challenge
is answered with a token fetched with the user's credentials."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from immutable_installer.core.errors import ImageError
from immutable_installer.oci.client import Registry, checked_manifest
from immutable_installer.oci.reference import Reference


class FlakyRegistry(http.server.BaseHTTPRequestHandler):
    """Just enough of the distribution API: uploads (the first PUT of each blob is cut off), blobs, manifests;
    with ``token`` set, a bearer challenge and a token endpoint that wants basic credentials."""

    blobs: dict[str, bytes]
    puts: list[str]
    token: str | None
    seen_auth: list[str]

    def log_message(self, *args: Any) -> None:
        pass

    def _auth(self) -> bool:
        header = self.headers.get("Authorization", "")
        self.seen_auth.append(header)
        if self.token is None or header == f"Bearer {self.token}":
            return True
        realm = f"http://{self.headers['Host']}/token"
        self.send_response(401)
        self.send_header("WWW-Authenticate", f'Bearer realm="{realm}",service="test"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self) -> None:
        if self.path.startswith("/token"):
            ok = self.headers.get("Authorization") == "Basic " + base64.b64encode(b"u:p").decode()
            body = json.dumps({"token": self.token}).encode() if ok else b"{}"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if not self._auth():
            return
        digest = self.path.rsplit("/", 1)[1]
        data = self.blobs.get(digest)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        if not self._auth():
            return
        self.send_response(200 if self.path.rsplit("/", 1)[1] in self.blobs else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        if not self._auth():
            return
        self.send_response(202)
        self.send_header("Location", f"/v2/ml/stack/blobs/uploads/{len(self.puts)}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:
        if not self._auth():
            return
        digest = self.path.split("digest=")[1].replace("%3A", ":")
        length = int(self.headers["Content-Length"])
        self.puts.append(digest)
        if self.puts.count(digest) == 1:  # the first try: read a little, then the line drops
            self.rfile.read(min(length, 1000))
            self.connection.close()
            return
        data = self.rfile.read(length)
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        self.blobs[digest] = data
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def flaky() -> Iterator[tuple[str, Any]]:
    handler = type("Handler", (FlakyRegistry,), {"blobs": {}, "puts": [], "token": None, "seen_auth": []})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_an_upload_cut_off_in_flight_is_started_again(flaky: tuple[str, Any]) -> None:
    host, handler = flaky
    data = b"layer bytes " * 50_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    registry = Registry(Reference(host, "ml/stack", "cpu"), scope="pull,push")
    registry.put_blob(digest, len(data), lambda: [data[i:i + 65536] for i in range(0, len(data), 65536)])
    assert handler.puts == [digest, digest] and handler.blobs[digest] == data
    assert registry.has_blob(digest) and not registry.has_blob("sha256:" + "0" * 64)


def test_a_manifest_that_is_not_its_digest_is_refused(flaky: tuple[str, Any]) -> None:
    host, handler = flaky
    wanted = "sha256:" + hashlib.sha256(b'{"schemaVersion":2}').hexdigest()
    handler.blobs[wanted] = b'{"schemaVersion":2,"other":1}'  # the registry serves other bytes under the name
    with pytest.raises(ImageError, match="hashes to"):
        checked_manifest(Registry(Reference(host, "ml/stack", "cpu")), wanted)


def test_a_bearer_challenge_is_answered_with_a_token(flaky: tuple[str, Any], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    host, handler = flaky
    handler.token = "t0k3n"
    handler.blobs["sha256:" + "1" * 64] = b""
    monkeypatch.setenv("IMMUTABLE_INSTALLER_REGISTRY_USERNAME", "u")
    monkeypatch.setenv("IMMUTABLE_INSTALLER_REGISTRY_PASSWORD", "p")
    registry = Registry(Reference(host, "ml/stack", "cpu"))
    assert registry.has_blob("sha256:" + "1" * 64)
    assert handler.seen_auth[-1] == "Bearer t0k3n" and registry.auth == "Bearer t0k3n"
