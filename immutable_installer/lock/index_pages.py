"""A project's files on an index (PEP 691 JSON, or PEP 503 HTML) or in a find-links folder.

The resolver says which version it pinned; only the index says which versions exist. `lock` reads the pages of
the packages it reports on (a requested package held back below its newest release, an sdist it may build),
never to choose a version itself.
"""

from __future__ import annotations

import html.parser
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@dataclass(frozen=True)
class IndexFile:
    """One file of a project as an index lists it."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: bool
    upload_time: str | None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")

    @property
    def version(self) -> Version | None:
        try:
            if self.is_wheel:
                return parse_wheel_filename(self.filename)[1]
            return parse_sdist_filename(self.filename)[1]
        except (InvalidWheelFilename, InvalidSdistFilename):
            return None


def project_files(name: str, index_urls: Sequence[str], find_links: Sequence[str] = ()) -> list[IndexFile]:
    """Every file of project ``name`` on the indexes and in the find-links folders; an index that does not
    answer (or has no such project) adds nothing."""
    project = canonicalize_name(name)
    out: list[IndexFile] = []
    for index in index_urls:
        out += _index_page(index.rstrip("/") + f"/{project}/")
    for folder in find_links:
        out += _folder(folder, project)
    return out


def _index_page(url: str) -> list[IndexFile]:
    from immutable_installer.net import open_url

    parsed = urllib.parse.urlparse(url)
    try:
        if parsed.scheme == "file":
            path = urllib.request.url2pathname(parsed.path)
            page = os.path.join(path, "index.html") if os.path.isdir(path) else path
            with open(page, "rb") as fh:
                return _parse_html(fh.read().decode("utf-8", errors="replace"), url)
        with open_url(url, timeout=30, headers={"Accept": _ACCEPT}) as response:
            body = response.read(64 * 1024 * 1024)
            kind = response.headers.get("Content-Type", "")
            final = response.geturl() if hasattr(response, "geturl") else url
    except (urllib.error.URLError, OSError, ValueError):
        return []
    if "json" in kind:
        try:
            return _parse_json(json.loads(body), final)
        except (ValueError, KeyError, TypeError):
            return []
    return _parse_html(body.decode("utf-8", errors="replace"), final)


def _parse_json(data: Any, base: str) -> list[IndexFile]:
    out = []
    for item in data["files"]:
        hashes = item.get("hashes") or {}
        yanked = item.get("yanked", False)
        out.append(IndexFile(str(item["filename"]), urllib.parse.urljoin(base, str(item["url"])),
                             hashes.get("sha256"), item.get("requires-python"), bool(yanked),
                             item.get("upload-time")))
    return out


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))
            self.text.append("")
            self._open = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.text[-1] += data


def _parse_html(text: str, base: str) -> list[IndexFile]:
    parser = _Anchors()
    parser.feed(text)
    out = []
    for attrs, label in zip(parser.links, parser.text, strict=True):
        href = attrs.get("href")
        if not href:
            continue
        url, _, fragment = urllib.parse.urljoin(base, href).partition("#")
        filename = urllib.parse.unquote(url.rsplit("/", 1)[-1]) or label.strip()
        sha = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
        out.append(IndexFile(filename, url, sha, attrs.get("data-requires-python"), "data-yanked" in attrs, None))
    return out


def _folder(folder: str, project: str) -> list[IndexFile]:
    path = folder[7:] if folder.startswith("file://") else folder
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return []
    out = []
    for name in names:
        candidate = IndexFile(name, os.path.join(path, name), None, None, False, None)
        try:
            owner = parse_wheel_filename(name)[0] if name.endswith(".whl") else parse_sdist_filename(name)[0]
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if owner == project:
            out.append(candidate)
    return out
