"""URLs in messages: credentials are never shown (an index URL may carry ``user:token@``)."""

from __future__ import annotations

import re
import urllib.parse

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def mask_url(url: str) -> str:
    """``https://user:****@host/simple`` for ``https://user:secret@host/simple``; a user-only (token) part
    becomes ``****``; a URL without credentials is returned unchanged."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, _password = userinfo.partition(":")
    masked = f"{user}:****" if sep else "****"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{masked}@{host}"))


def mask_text(text: str) -> str:
    """Every URL inside a free-form text (pip's stderr, an exception message) with its credentials masked."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)
