"""Credentials in URLs: never shown, never written. Pure.

An index URL may carry ``user:password@`` or a token query parameter (``?token=...``). ``mask_url`` and
``mask_text`` hide them in anything shown (messages, events, logs, ``--debug`` output); ``strip_credentials``
removes them from anything written (manifest, pylock, receipt, exported index, bundle); ``credentials_in``
tells whether a URL holds any (a manifest that does is refused: its secrets come at run time instead).
"""

from __future__ import annotations

import re
import urllib.parse

# a URL inside free text: its authority may hold any character but "/" and whitespace (a quote or "$" in a
# password must not end the match and leave the rest of the secret visible)
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/]*@[^\s\"<>]*|[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
# query parameters that carry a secret (GitLab, Artifactory, signed URLs ...)
_SECRET_PARAM = re.compile(r"(token|key|secret|password|passwd|auth|signature|sig|credential)", re.IGNORECASE)
MASK = "****"


def _split(url: str) -> urllib.parse.SplitResult | None:
    try:
        return urllib.parse.urlsplit(url)
    except ValueError:
        return None


def _clean_query(query: str, replacement: str | None) -> str:
    """The query with each secret parameter's value replaced (``replacement``) or the parameter dropped."""
    if not query:
        return query
    out = []
    for part in query.split("&"):
        name, sep, _value = part.partition("=")
        if sep and _SECRET_PARAM.search(name):
            if replacement is not None:
                out.append(f"{name}={replacement}")
            continue
        out.append(part)
    return "&".join(out)


def credentials_in(url: str) -> bool:
    """Whether ``url`` carries a user, a password or a secret query parameter."""
    parts = _split(url)
    if parts is None:
        return False
    return "@" in parts.netloc or _clean_query(parts.query, None) != parts.query


def strip_credentials(url: str) -> str:
    """``url`` with no userinfo and no secret query parameter: what may be written to a file."""
    parts = _split(url)
    if parts is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=_clean_query(parts.query, None)))


def mask_url(url: str) -> str:
    """``https://user:****@host/simple`` for ``https://user:secret@host/simple``; a user-only (token) part
    becomes ``****``, a secret query value ``****``; a URL without credentials is returned unchanged."""
    parts = _split(url)
    if parts is None:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if sep else f"{MASK}@{host}"
    query = _clean_query(parts.query, MASK)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_text(text: str) -> str:
    """Every URL inside a free-form text (pip's stderr, an exception message) with its credentials masked."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)
