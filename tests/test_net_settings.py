"""One network configuration: the tool's own requests and its pip and uv children trust the same CA, show the
same client certificate and go through the same proxy, all from the user's pip configuration given once.

The end-to-end tests run a real HTTPS index signed by a CA made here (openssl), reachable directly, or only
through a real CONNECT proxy under a name that resolves nowhere (``index.invalid``): a request that skipped the
proxy, or a child that was not told about the CA, fails the command.
"""

from __future__ import annotations

import json
import os
import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Index, make_wheel
from immutable_installer.net_settings import NetSettings, parse_pip_config

# --------------------------------------------------------------------------------------------- the decision


def test_pip_config_listing_takes_pips_precedence() -> None:
    listing = (":env:.cert='/env/ca.pem'\n"
               "download.proxy='proxy.corp:3128'\n"
               "global.cert='/file/ca.pem'\n"
               "global.proxy='other:8080'\n"
               "global.trusted-host='mirror.corp  mirror.corp:8443'\n"
               "install.user='true'\n")
    config = parse_pip_config(listing)
    assert config["cert"] == "/env/ca.pem", "a PIP_* variable beats every file, although it is listed first"
    assert config["proxy"] == "proxy.corp:3128", "the download section beats [global]"
    assert "user" not in config, "another command's section is not pip download's"
    settings = NetSettings.decide(config, {"SSL_CERT_FILE": "/ignored.pem"})
    assert settings.cert == "/env/ca.pem" and settings.trusted_hosts == ("mirror.corp", "mirror.corp:8443")


def test_trust_falls_back_to_the_standard_variables_then_the_system_store() -> None:
    assert NetSettings.decide({}, {"SSL_CERT_FILE": "/a.pem", "REQUESTS_CA_BUNDLE": "/b.pem"}).cert == "/a.pem"
    assert NetSettings.decide({}, {"REQUESTS_CA_BUNDLE": "/b.pem"}).cert == "/b.pem"
    system = NetSettings.decide({}, {})
    assert system.cert is None and system.uv_env()["UV_SYSTEM_CERTS"] == "1"
    assert type(system.context("https://example.org")).__module__.startswith("truststore"), \
        "no CA named: the system's trust store, as pip uses it"


def test_children_are_told_the_same_thing() -> None:
    settings = NetSettings.decide({"cert": "/ca.pem", "client-cert": "/me.pem", "proxy": "user:pw@proxy:3128",
                                   "trusted-host": "mirror.corp", "default-timeout": "60", "index-url": "x"}, {})
    assert settings.pip_args() == ["--cert", "/ca.pem", "--client-cert", "/me.pem", "--proxy", "user:pw@proxy:3128",
                                   "--trusted-host", "mirror.corp", "--timeout", "60"], "never which index, only how"
    assert settings.uv_env() == {"SSL_CERT_FILE": "/ca.pem", "SSL_CLIENT_CERT": "/me.pem",
                                 "HTTPS_PROXY": "http://user:pw@proxy:3128", "HTTP_PROXY": "http://user:pw@proxy:3128",
                                 "UV_INSECURE_HOST": "mirror.corp"}
    # requests lets these beat pip's --cert (a machine that sets them for curl would silently override ours)
    assert settings.pip_env() == {"REQUESTS_CA_BUNDLE": "/ca.pem", "CURL_CA_BUNDLE": "/ca.pem"}


def test_a_trusted_host_is_the_only_one_not_checked() -> None:
    settings = NetSettings.decide({"trusted-host": "mirror.corp:8443"}, {})
    assert settings.trusted("https://mirror.corp:8443/simple") and not settings.trusted("https://mirror.corp/simple")
    assert settings.context("https://mirror.corp:8443/x").verify_mode == ssl.CERT_NONE
    assert settings.context("https://pypi.org/simple").verify_mode == ssl.CERT_REQUIRED


# ------------------------------------------------------------------------------------- a CA and a proxy


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA of our own and a server certificate it signed for 127.0.0.1 and index.invalid."""
    d = tmp_path_factory.mktemp("ca")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=immutable-installer test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=index.invalid", cwd=d)
    (d / "san.ext").write_text("subjectAltName=DNS:index.invalid,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    return d


def server_context(ca: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ca / "server.pem", ca / "server.key")
    return context


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy that knows ``index.invalid`` is 127.0.0.1, and notes every tunnel asked for."""

    daemon_threads = True

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        super().__init__(("127.0.0.1", 0), _Tunnel)
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server_address[1]}"


class _Tunnel(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if len(line) < 2 or line[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 CONNECT only\r\nContent-Length: 0\r\n\r\n")
            return
        assert isinstance(self.server, ConnectProxy)
        self.server.tunnels.append(line[1])
        host, _, port = line[1].rpartition(":")
        upstream = socket.create_connection(("127.0.0.1" if host == "index.invalid" else host, int(port)))
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        pair = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(pair, [], [], 30)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    yield server
    server.shutdown()
    server.server_close()


def env_with(tmp_path: Path, pip_conf: str) -> dict[str, str]:
    """This machine's environment without any CA or proxy of its own: the test's pip.conf says it all, once."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and k.upper() not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY",
                                                              "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")}
    # a machine that names its system bundle for curl and requests (this one does): requests would let it beat
    # the CA the pip.conf names, unless the tool hands its one decision to pip
    env["REQUESTS_CA_BUNDLE"] = env["CURL_CA_BUNDLE"] = ssl.get_default_verify_paths().openssl_cafile
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\n" + pip_conf)
    return {**env, "PIP_CONFIG_FILE": str(conf), "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
            "IMMUTABLE_INSTALLER_CACHE": str(tmp_path / "cache")}


def tool(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "immutable_installer", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def lock_then_download(tmp_path: Path, index: Index, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                                                   subprocess.CompletedProcess[str]]:
    """``lock`` (uv resolves; the tool reads each wheel's metadata itself), then ``download`` (the tool asks the
    index, pip fetches)."""
    locked = tool("lock", "app", "--index-url", index.url, "--platform", "manylinux_2_17_x86_64",
                  "-o", "m.json", cwd=tmp_path, env=env)
    if locked.returncode != 0:
        return locked, locked
    return locked, tool("download", "--manifest", "m.json", "--wheelhouse", "wh", "--variant", "cpu",
                        cwd=tmp_path, env=env)


def test_a_ca_named_once_in_pip_conf_is_trusted_by_every_request(tmp_path: Path, ca: Path) -> None:
    index = Index(tmp_path / "index", tls=server_context(ca))
    try:
        make_wheel(index.root, "app", "1.0", requires=["dep>=1"])
        make_wheel(index.root, "dep", "1.0")
        untrusted = lock_then_download(tmp_path, index, env_with(tmp_path, ""))[0]
        assert untrusted.returncode != 0 and "certificate" in (untrusted.stdout + untrusted.stderr).lower()
        locked, downloaded = lock_then_download(tmp_path, index, env_with(tmp_path, f"cert = {ca / 'ca.pem'}\n"))
        assert locked.returncode == 0, locked.stderr
        assert downloaded.returncode == 0, downloaded.stderr
        assert sorted(p.name for p in (tmp_path / "wh").glob("*.whl")) == ["app-1.0-py3-none-any.whl",
                                                                           "dep-1.0-py3-none-any.whl"]
        assert "ca.pem" not in (tmp_path / "m.json").read_text(), "how to reach an index is not the lock's"
    finally:
        index.close()


def test_a_proxy_named_once_carries_every_request(tmp_path: Path, ca: Path, proxy: ConnectProxy) -> None:
    index = Index(tmp_path / "index", tls=server_context(ca), host="index.invalid")
    try:
        make_wheel(index.root, "app", "1.0", requires=["dep>=1"])
        make_wheel(index.root, "dep", "1.0")
        direct = lock_then_download(tmp_path, index, env_with(tmp_path, f"cert = {ca / 'ca.pem'}\n"))[0]
        assert direct.returncode != 0, "index.invalid resolves nowhere: only the proxy reaches it"
        assert not proxy.tunnels
        env = env_with(tmp_path, f"cert = {ca / 'ca.pem'}\nproxy = {proxy.address}\n")
        locked, downloaded = lock_then_download(tmp_path, index, env)
        assert locked.returncode == 0, locked.stderr
        assert downloaded.returncode == 0, downloaded.stderr
        manifest = json.loads((tmp_path / "m.json").read_text())
        assert {p["name"] for p in manifest["packages"]} == {"app", "dep"}
        assert set(proxy.tunnels) == {index.base.split("//")[1]}
        assert len(list((tmp_path / "wh").glob("*.whl"))) == 2
    finally:
        index.close()
