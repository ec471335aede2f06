"""How the tool reaches an index, decided once per process for every request it makes itself (net.py) and for
every pip and uv child it starts: which certificates it trusts, which client certificate it shows, which proxy
it goes through and which hosts the user exempted from TLS checks.

Behind a corporate CA or proxy the two paths must agree, or a lock succeeds (uv) and the download of the same
wheels fails (urllib). The source is the user's pip configuration as pip itself reads it (``pip config list``:
every file and ``PIP_*`` variable, in pip's precedence), plus the standard variables:

- trust: a CA bundle given (pip's ``cert``, else ``SSL_CERT_FILE``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``)
  replaces the defaults, as ``pip --cert`` does (and is handed to pip children in the variables requests lets
  beat ``--cert``); without one, the system trust store (``truststore``, as pip has done since 24.2; uv with
  ``UV_SYSTEM_CERTS``), so a CA the machine trusts is trusted here with nothing to configure;
- client certificate: pip's ``client-cert`` (one PEM file with the key);
- proxy: pip's ``proxy`` for both schemes, else ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as urllib, pip
  and uv read them;
- trusted hosts: pip's ``trusted-host`` (certificate not checked there; the sha256 pins still are).
"""

from __future__ import annotations

import functools
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field

# pip options about *how* to reach an index (never *which* index) passed on to pip children as they are:
# option -> the names pip's configuration may give it under
PASSED_THROUGH = {"timeout": ("timeout", "default-timeout"), "retries": ("retries",),
                  "keyring-provider": ("keyring-provider",)}


@dataclass(frozen=True)
class NetSettings:
    """One decision about TLS, proxy and trusted hosts; ``pip`` keeps the whole configuration it came from
    (the lock and the downloader also read its sources: ``extra-index-url``, ``find-links``)."""

    pip: Mapping[str, str] = field(default_factory=dict)
    cert: str | None = None
    client_cert: str | None = None
    proxy: str | None = None
    trusted_hosts: tuple[str, ...] = ()

    @classmethod
    def decide(cls, pip: Mapping[str, str], environ: Mapping[str, str]) -> NetSettings:
        cert = (pip.get("cert") or environ.get("SSL_CERT_FILE") or environ.get("REQUESTS_CA_BUNDLE")
                or environ.get("CURL_CA_BUNDLE") or None)
        return cls(dict(pip), cert, pip.get("client-cert") or None, pip.get("proxy") or None,
                   tuple(pip.get("trusted-host", "").split()))

    @property
    def timeout(self) -> float:
        """Seconds a download may stall: pip's ``timeout`` when the user set one, else 30."""
        value = self.pip.get("timeout") or self.pip.get("default-timeout")
        try:
            return float(value) if value else 30.0
        except ValueError:
            return 30.0

    @property
    def retries(self) -> int:
        """Attempts per download: pip's ``retries`` + 1 when set (pip counts retries, not attempts), else 3."""
        value = self.pip.get("retries", "")
        return int(value) + 1 if value.isdigit() else 3

    def trusted(self, url: str) -> bool:
        """Whether the user exempted ``url``'s host from certificate checks (pip's ``host`` or ``host:port``)."""
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        return any(entry.lower() in (host, f"{host}:{parts.port}") for entry in self.trusted_hosts)

    def context(self, url: str) -> ssl.SSLContext:
        """The TLS context for a request to ``url``."""
        return _context(self.cert, self.client_cert, self.trusted(url))

    def opener(self, url: str) -> urllib.request.OpenerDirector:
        """A urllib opener for ``url``: this TLS context and this proxy (``NO_PROXY`` still applies)."""
        proxy = _with_scheme(self.proxy) if self.proxy else None
        proxies = {"http": proxy, "https": proxy} if proxy else urllib.request.getproxies()
        return urllib.request.build_opener(urllib.request.ProxyHandler(proxies),
                                           urllib.request.HTTPSHandler(context=self.context(url)))

    def pip_args(self) -> list[str]:
        """pip options saying the same (on the command line, so that they hold under ``--isolated`` and with
        the user's configuration files switched off)."""
        args = ["--cert", self.cert] if self.cert else []
        if self.client_cert:
            args += ["--client-cert", self.client_cert]
        if self.proxy:
            args += ["--proxy", self.proxy]
        for host in self.trusted_hosts:
            args += ["--trusted-host", host]
        for option, names in PASSED_THROUGH.items():
            value = next((self.pip[n] for n in names if self.pip.get(n)), None)
            if value:
                args += [f"--{option}", value]
        return args

    def pip_env(self) -> dict[str, str]:
        """Variables a pip child needs besides ``pip_args``: requests lets ``REQUESTS_CA_BUNDLE`` and
        ``CURL_CA_BUNDLE`` beat ``--cert``, so they must name the same bundle (or none)."""
        return {"REQUESTS_CA_BUNDLE": self.cert, "CURL_CA_BUNDLE": self.cert} if self.cert else {}

    def uv_env(self) -> dict[str, str]:
        """uv's variables saying the same (uv reads no pip configuration)."""
        env = {"SSL_CERT_FILE": self.cert} if self.cert else {"UV_SYSTEM_CERTS": "1", "UV_NATIVE_TLS": "1"}
        if self.client_cert:
            env["SSL_CLIENT_CERT"] = self.client_cert
        if self.proxy:
            env["HTTPS_PROXY"] = env["HTTP_PROXY"] = _with_scheme(self.proxy)
        if self.trusted_hosts:
            env["UV_INSECURE_HOST"] = " ".join(self.trusted_hosts)
        return env


def _with_scheme(proxy: str) -> str:
    """pip accepts ``[user:pass@]host:port``; urllib and uv want a URL."""
    return proxy if "://" in proxy else f"http://{proxy}"


@functools.cache
def _context(cert: str | None, client_cert: str | None, unverified: bool) -> ssl.SSLContext:
    if unverified:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif cert:
        context = ssl.create_default_context(capath=cert) if os.path.isdir(cert) else \
            ssl.create_default_context(cafile=cert)
    else:
        try:
            import truststore
        except ImportError:  # pragma: no cover - a dependency; OpenSSL's default paths are the next best
            context = ssl.create_default_context()
        else:
            context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if client_cert:
        context.load_cert_chain(client_cert)
    return context


# pip's precedence for a `pip download`: a PIP_* variable, then the command's own section, then [global]
# (``pip config list`` prints every file already merged in pip's file order, but sorted by key)
SECTION_ORDER = (":env:", "download", "global")


def parse_pip_config(listing: str) -> dict[str, str]:
    """The effective value of every key in ``pip config list`` output (``section.key='value'`` lines)."""
    found: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        name, sep, value = line.partition("=")
        section, _, key = name.rpartition(".")
        if sep and key:
            found.setdefault(key, {})[section] = value.strip().strip("'\"")
    return {key: next(values[s] for s in SECTION_ORDER if s in values) for key, values in found.items()
            if any(s in values for s in SECTION_ORDER)}


def read_pip_config() -> dict[str, str]:
    """The user's pip configuration (files and ``PIP_*`` variables) as pip itself reads it: ``pip config list``
    knows every location and file order, so they are not re-implemented here."""
    import sys

    from immutable_installer.runner import Runner, clean_env

    result = Runner().run([sys.executable, "-m", "pip", "config", "list"], env=clean_env(keep_pip=True), timeout=60)
    return parse_pip_config(result.stdout) if result.ok else {}


@functools.lru_cache(maxsize=1)
def current() -> NetSettings:
    """This process's settings: pip is asked once, however many downloads, locks and requests follow."""
    return NetSettings.decide(read_pip_config(), os.environ)
