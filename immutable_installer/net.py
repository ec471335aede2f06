"""HTTP(S) and file:// fetches of single files: hash while streaming, temp name, rename only when right.

Why not urllib's one-liners: a wheel is only ever renamed into the wheelhouse after its sha256 matched, a
truncated body or a wrong hash leaves nothing behind, and transient errors (timeouts, 5xx) are retried a
bounded number of times. Certificates, client certificate and proxy are net_settings.py's, the same the pip and
uv children get.
"""

from __future__ import annotations

import base64
import hashlib
import netrc
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from immutable_installer import net_settings
from immutable_installer.core.errors import WheelhouseError
from immutable_installer.core.urls import mask_url, strip_credentials

CHUNK = 1 << 20
TIMEOUT = 30.0


# ----------------------------------------------------------------------------------------- credentials
# host[:port] -> (user, password), for this process only: credentials given on the command line (in a URL) or
# by an index's variables. Never written anywhere; every URL shown is masked (core.urls).
_KNOWN: dict[str, tuple[str, str]] = {}


def index_env_prefix(name: str) -> str:
    """``IMMUTABLE_INSTALLER_INDEX_<NAME>_`` for an index name (``pytorch-cpu`` -> ``PYTORCH_CPU``)."""
    return "IMMUTABLE_INSTALLER_INDEX_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_"


def remember(url: str, index_name: str | None = None) -> str:
    """Note the credentials ``url`` carries, or those the variables of index ``index_name`` give
    (``IMMUTABLE_INSTALLER_INDEX_<NAME>_USERNAME`` / ``_PASSWORD``), for its host; returns the URL without them."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, _, password = userinfo.partition(":")
        _KNOWN[host] = (urllib.parse.unquote(user), urllib.parse.unquote(password))
    elif index_name is not None:
        prefix = index_env_prefix(index_name)
        env_user, env_password = os.environ.get(prefix + "USERNAME"), os.environ.get(prefix + "PASSWORD")
        if env_user or env_password:
            _KNOWN[host] = (env_user or "", env_password or "")
    return strip_credentials(url)


def credentials_for(url: str) -> tuple[str, str] | None:
    """Credentials for ``url``'s host: remembered this run, else ``~/.netrc`` (or ``$NETRC``), else keyring
    when it is installed; None when there are none."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if host in _KNOWN:
        return _KNOWN[host]
    try:
        found = netrc.netrc(os.environ.get("NETRC")).authenticators(parts.hostname or host)
    except (OSError, netrc.NetrcParseError):
        found = None
    if found:
        return found[0] or "", found[2] or ""
    try:
        import keyring  # optional: used when the user installed it, as pip and uv do
    except ImportError:
        return None
    try:
        credential = keyring.get_credential(strip_credentials(url), None)
    except Exception:  # a keyring backend failing is "no credentials", never a crash
        return None
    return (credential.username, credential.password) if credential else None


def with_credentials(url: str) -> str:
    """``url`` with its host's credentials in it (remembered, netrc or keyring): only for a child's command line
    (pip, uv), never for a file or a message."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    known = credentials_for(url) if parts.scheme in ("http", "https") and "@" not in parts.netloc else None
    if known is None:
        return url
    userinfo = urllib.parse.quote(known[0], safe="") + (":" + urllib.parse.quote(known[1], safe="") if known[1]
                                                        else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def open_url(url: str, method: str = "GET", timeout: float = TIMEOUT,
             headers: Mapping[str, str] | None = None) -> Any:
    """One HTTP(S) request with the settings every request and child shares (net_settings.py: trust, client
    certificate, proxy) and the credentials of its host (from the URL itself, remembered, netrc or keyring) as a
    Basic header."""
    plain = remember(url) if "@" in urllib.parse.urlsplit(url).netloc else url
    sent = {"User-Agent": "immutable-installer", **(headers or {})}
    credentials = credentials_for(plain) if urllib.parse.urlsplit(plain).scheme in ("http", "https") else None
    if credentials is not None and "Authorization" not in sent:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        sent["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(plain, method=method, headers=sent)
    if urllib.parse.urlsplit(plain).scheme not in ("http", "https"):
        return urllib.request.urlopen(request, timeout=timeout)
    return net_settings.current().opener(plain).open(request, timeout=timeout)


def remote_size(url: str, timeout: float = 15.0) -> int | None:
    """Size of the file behind a URL (stat for file://, HEAD for http); None if it cannot be told."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("file", "") or (len(parsed.scheme) == 1 and os.name == "nt"):  # a URL or a plain path
        path = urllib.request.url2pathname(parsed.path) if parsed.scheme == "file" else url
        try:
            return os.stat(path).st_size
        except OSError:
            return None
    try:
        with open_url(url, "HEAD", timeout) as response:
            length = response.headers.get("Content-Length")
            return int(length) if length and length.isdigit() else None
    except (OSError, ValueError):
        return None


class UntrustedSource(WheelhouseError):
    """A source served something other than the pinned file (wrong hash, more bytes than pinned): the file is
    not taken from anywhere else either, since that source cannot be trusted to serve the pin."""


def fetch(url: str, dest: Path, sha256: str, *, size: int | None = None, on_bytes: Callable[[int], None] | None = None,
          sleep: Callable[[float], None] = time.sleep) -> None:
    """Download ``url`` to ``dest``; raise WheelhouseError (exit 4) unless the bytes hash to ``sha256``.

    The body goes to ``.<name>.part-<pid>`` beside ``dest`` and is renamed into place only after the hash
    matched; on any failure the part file is removed. With the pinned ``size``, a response that announces or
    sends more bytes is cut off at once (UntrustedSource): a server cannot fill the disk. A body cut short
    (a dropped connection, a timeout) is resumed with a Range request on the next attempt, keeping the bytes
    and the running hash already received; a server that ignores Range starts the file over.
    """
    network = net_settings.current()  # how long a stall may last and how often to try: pip's settings, or ours
    retries, timeout = network.retries, network.timeout
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    last_error = ""
    digest = hashlib.sha256()
    received = 0
    try:
        for attempt in range(retries):
            try:
                headers = {"Range": f"bytes={received}-"} if received else {}
                with open_url(url, timeout=timeout, headers=headers) as response:
                    if received and not _resumes_at(response, received):
                        digest, received = hashlib.sha256(), 0  # the server sent the whole file again
                    length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
                    expected = received + int(length) if length and length.isdigit() else None
                    if size is not None and expected is not None and expected > size:
                        raise UntrustedSource(f"{dest.name}: {mask_url(url)} announces {expected} bytes, but the "
                                              f"pinned file has {size}; refused before reading it",
                                              hint="the source serves a different file than the manifest pins; "
                                                   "do not trust it")
                    with open(tmp, "ab" if received else "wb") as out:
                        while chunk := response.read(CHUNK):
                            received += len(chunk)
                            if size is not None and received > size:
                                raise UntrustedSource(f"{dest.name}: {mask_url(url)} sent more than the pinned "
                                                      f"{size} bytes; cut off",
                                                      hint="the source serves a different file than the manifest "
                                                           "pins; do not trust it")
                            digest.update(chunk)
                            out.write(chunk)
                            if on_bytes:
                                on_bytes(len(chunk))
                if expected is not None and received < expected:
                    last_error = f"the body was cut short ({received} of {expected} bytes)"
                else:
                    if digest.hexdigest() != sha256:
                        raise UntrustedSource(
                            f"{dest.name}: sha256 mismatch for the file from {mask_url(url)} "
                            f"(expected {sha256[:16]}..., got {digest.hexdigest()[:16]}...)",
                            hint="the source serves a different file than the manifest pins; do not trust it")
                    os.replace(tmp, dest)
                    return
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
                if exc.code == 416:  # the range we asked for does not exist: start over
                    digest, received = hashlib.sha256(), 0
                elif exc.code < 500 and exc.code != 429:
                    break
            except WheelhouseError:
                raise
            except (OSError, TimeoutError, ValueError) as exc:  # kept: the next attempt resumes from here
                reason = getattr(exc, "reason", None)
                last_error = str(reason) if reason else (str(exc) or type(exc).__name__)
            if attempt + 1 < retries:
                sleep(min(0.5 * 2**attempt, 4.0))
        raise WheelhouseError(f"{dest.name}: download from {mask_url(url)} failed: {last_error}")
    finally:
        tmp.unlink(missing_ok=True)  # renamed into place on success; on any failure nothing is left


def _resumes_at(response: Any, offset: int) -> bool:
    """Whether a response to ``Range: bytes=offset-`` is that range (206 starting at ``offset``)."""
    if getattr(response, "status", None) != 206:
        return False
    content_range = response.headers.get("Content-Range", "")
    return bool(content_range.startswith(f"bytes {offset}-"))


def index_status(url: str, timeout: float = 5.0) -> int | None:
    """The HTTP status an index root answers a HEAD with (credentials sent as for any request); None when it
    does not answer at all. A file:// index is 200 when it exists."""
    return probe_index(url, timeout)[0]


def probe_index(url: str, timeout: float = 5.0) -> tuple[int | None, str]:
    """(status, why it did not answer): an untrusted certificate is named as one, not as "unreachable"."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return (200 if os.path.exists(urllib.request.url2pathname(parsed.path)) else None), ""
    try:
        with open_url(url.rstrip("/") + "/", "HEAD", timeout) as response:
            return int(getattr(response, "status", 200) or 200), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""
    except (OSError, ValueError) as exc:
        return None, describe_failure(exc)


def describe_failure(exc: BaseException) -> str:
    """A network failure in words a person acts on: an untrusted certificate says so."""
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
        detail = getattr(reason, "verify_message", "") or str(reason)
        return f"its TLS certificate is not trusted here ({detail})"
    return str(reason) or type(exc).__name__


CA_HINT = ("trust the CA that signed it: add it to the system's trust store, or name it once with `pip config set "
           "global.cert /path/to/ca.pem` (or PIP_CERT / SSL_CERT_FILE); the tool, pip and uv all use it")


def reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether an index answers at all (any HTTP status counts); file:// URLs must exist.

    pip retries an unreachable index for every project page it needs, which turned a 20 s lock into
    six minutes here; asking once up front lets `lock` and `download` fall back to the user's configured
    sources instead.
    """
    return index_status(url, timeout) is not None
