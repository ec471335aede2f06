"""Export the pins of one variant and platform as a PEP 751 ``pylock.toml``. Pure.

So other tools (uv, pip) can consume our lock. PEP 751 wants a ``url`` or a ``path`` for every wheel: every
wheel gets a ``path`` into the wheelhouse relative to the lock file (where `download` puts it), so pip and uv
install the export offline, and files with a known public URL get the ``url`` too. The result is checked with
``packaging.pylock`` before it is returned; tests install it with real pip and uv.
"""

from __future__ import annotations

import os
from typing import Any

from immutable_installer import __version__
from immutable_installer.core.model import Manifest


def pylock_data(manifest: Manifest, variant: str, platform: str, wheelhouse_rel: str) -> dict[str, Any]:
    """The pylock tree (plain dicts) for ``variant`` on ``platform``."""
    manifest.variant(variant)
    packages = []
    for pkg in manifest.packages_for(variant, platform):
        wheel = pkg.file_for(platform)
        assert wheel is not None
        entry: dict[str, Any] = {"name": wheel.filename}
        if wheel.url:
            entry["url"] = wheel.url
        entry["path"] = f"{wheelhouse_rel.rstrip('/')}/{wheel.filename}"
        if wheel.size is not None:
            entry["size"] = wheel.size
        entry["hashes"] = {"sha256": wheel.sha256}
        item: dict[str, Any] = {"name": pkg.name, "version": pkg.version, "wheels": [entry]}
        if pkg.index is not None:  # a direct URL or a local wheel comes from no index
            item["index"] = manifest.index(pkg.index).url
        if pkg.marker:
            item["marker"] = pkg.marker
        packages.append(item)
    plat = manifest.platform(platform)
    env_marker = " and ".join(f"{k} == '{v}'" for k, v in sorted(plat.environment.items()))
    return {
        "lock-version": "1.0",
        "environments": [env_marker],
        "requires-python": f"=={manifest.python.minor}.*",
        "created-by": "immutable-installer",
        "packages": packages,
        "tool": {"immutable-installer": {"version": __version__, "manifest": manifest.name, "variant": variant,
                                         "platform": platform}},
    }


def validate(data: dict[str, Any]) -> None:
    """Raise ``packaging.pylock.PylockValidationError`` if the tree is not a valid PEP 751 lock."""
    from packaging.pylock import Pylock

    Pylock.from_dict(data)


def dumps(data: dict[str, Any]) -> str:
    """TOML text of the lock (tomli-w: every string escaped as TOML requires, keys quoted where needed)."""
    import tomli_w

    return tomli_w.dumps(data)


def export(manifest: Manifest, variant: str, platform: str, output: str, wheelhouse: str) -> str:
    """Write ``output`` and return its text; the wheelhouse path is made relative to the lock file."""
    rel = os.path.relpath(os.path.abspath(wheelhouse), os.path.dirname(os.path.abspath(output)))
    data = pylock_data(manifest, variant, platform, rel.replace(os.sep, "/"))
    validate(data)
    text = dumps(data)
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return text
