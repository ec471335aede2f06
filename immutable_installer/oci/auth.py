"""Registry credentials as the container tools keep them, read at run time and written nowhere.

In order: ``IMMUTABLE_INSTALLER_REGISTRY_USERNAME`` / ``_PASSWORD`` (CI), then the first auth file that names the
registry: ``REGISTRY_AUTH_FILE`` (podman, skopeo, buildah), ``$XDG_RUNTIME_DIR/containers/auth.json``,
``~/.config/containers/auth.json``, ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json`` (docker). An
entry's inline ``auth`` (base64 of ``user:password``) is used; credential helpers (``credHelpers``,
``credsStore``) are external programs and are not run: a file that names only a helper is said so in the error
a refused request gets.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: str  # where they came from, for messages (never the values)


def auth_files() -> list[Path]:
    """The auth files that are read, in order."""
    out = []
    if os.environ.get("REGISTRY_AUTH_FILE"):
        out.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        out.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    home = Path(os.path.expanduser("~"))
    out.append(Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "containers" / "auth.json")
    out.append(Path(os.environ.get("DOCKER_CONFIG") or home / ".docker") / "config.json")
    return out


def _keys(registry: str) -> list[str]:
    keys = [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]
    return [*keys, *HUB_KEYS] if registry == "registry-1.docker.io" else keys


def credentials_for(registry: str) -> Credentials | None:
    """Credentials for ``registry`` (``host[:port]``), or None."""
    user, password = (os.environ.get(f"IMMUTABLE_INSTALLER_REGISTRY_{k}") for k in ("USERNAME", "PASSWORD"))
    if user or password:
        return Credentials(user or "", password or "", "IMMUTABLE_INSTALLER_REGISTRY_USERNAME/_PASSWORD")
    for path in auth_files():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auths = data.get("auths") if isinstance(data, dict) else None
        if not isinstance(auths, dict):
            continue
        for key in _keys(registry):
            entry = auths.get(key)
            if not isinstance(entry, dict) or not isinstance(entry.get("auth"), str):
                continue
            try:
                decoded = base64.b64decode(entry["auth"], validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
            name, sep, secret = decoded.partition(":")
            if sep:
                return Credentials(name, secret, str(path))
    return None


def helper_named(registry: str) -> str | None:
    """The credential helper an auth file names for ``registry`` (which this tool does not run), if any."""
    for path in auth_files():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        helpers = data.get("credHelpers")
        if isinstance(helpers, dict):
            for key in _keys(registry):
                if isinstance(helpers.get(key), str):
                    return f"docker-credential-{helpers[key]} ({path})"
        if isinstance(data.get("credsStore"), str):
            return f"docker-credential-{data['credsStore']} ({path})"
    return None
