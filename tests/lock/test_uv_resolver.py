"""Choosing the target's wheel and reading its metadata where an index serves no PEP 658 file."""

from __future__ import annotations

import http.server
import random
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.tags import Tag

from conftest import make_wheel
from immutable_installer.core.targets import platform_for, uv_platform
from immutable_installer.lock import uv_resolver


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with byte ranges (no ``.metadata``), and counts the bytes it sent."""

    root: Path
    sent: list[int]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        if wanted:
            start, end = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
            body = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.sent.append(len(body))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[int]]]:
    sent: list[int] = []
    handler = type("H", (RangeHandler,), {"root": tmp_path, "sent": sent})
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", sent
    httpd.shutdown()
    httpd.server_close()


def test_large_wheel_metadata_and_listing_by_range_requests(tmp_path: Path, server: tuple[str, list[int]],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    base, sent = server
    rng = random.Random(7)  # incompressible padding: the wheel is ~1 MB
    padding = {f"big/data_{i}.bin": "".join(rng.choice("0123456789abcdef") for _ in range(4096)) for i in range(300)}
    wheel = make_wheel(tmp_path, "big", "1.0", requires=["dep>=2"], files={"big/__init__.py": "", **padding})
    size = wheel.stat().st_size
    monkeypatch.setattr(uv_resolver, "WHOLE_WHEEL_LIMIT", 1024)  # force the range path
    entry = {"url": f"{base}/{wheel.name}", "size": size, "hashes": {"sha256": "0" * 64}}
    assert uv_resolver.wheel_requires(entry) == ("dep>=2",)
    assert "big/__init__.py" in uv_resolver.wheel_names(f"{base}/{wheel.name}", size)
    assert size > 500_000 and sum(sent) < size / 2, "only the zip directory and METADATA travel, not the wheel"


def test_small_wheel_without_pep658_is_read_whole(tmp_path: Path, server: tuple[str, list[int]]) -> None:
    base, _ = server
    wheel = make_wheel(tmp_path, "small", "1.0", requires=["other; sys_platform == 'win32'"])
    entry = {"url": f"{base}/{wheel.name}", "size": wheel.stat().st_size}
    assert uv_resolver.wheel_requires(entry) == ("other; sys_platform == 'win32'",)


def test_best_wheel_is_the_targets_best_tag() -> None:
    win = platform_for("windows")
    tags = uv_resolver.target_tags("3.11", win)
    wheels = [{"url": f"https://x/pkg-1.0-{t}.whl"} for t in
              ("cp311-cp311-manylinux_2_28_x86_64", "cp311-cp311-win_amd64", "py3-none-any", "cp311-abi3-win_amd64")]
    assert uv_resolver.best_wheel(wheels, tags) == wheels[1]
    assert Tag("cp311", "cp311", "win_amd64") in tags and uv_platform(win) == "x86_64-pc-windows-msvc"
    assert uv_resolver.best_wheel(wheels[:1], tags) is None  # a Linux-only pin has nothing for Windows


def test_wheel_metadata_is_cached_on_disk_by_sha256(tmp_path: Path, server: tuple[str, list[int]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-lock reads no metadata over the network: the second read of the same file (by sha256) comes from
    the cache, in a fresh process's memory as well; a cache file for another sha256 is never used."""
    import hashlib

    base, sent = server
    monkeypatch.setenv("IMMUTABLE_INSTALLER_CACHE", str(tmp_path / "cache"))
    wheel = make_wheel(tmp_path, "cached", "1.0", requires=["dep>=3"])
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    entry = {"url": f"{base}/{wheel.name}", "size": wheel.stat().st_size, "hashes": {"sha256": sha}}
    assert uv_resolver._cached_requires(entry) == ("dep>=3",)
    fetched = len(sent)
    assert fetched > 0
    monkeypatch.setattr(uv_resolver, "_REQUIRES", {})  # a new process: nothing in memory
    assert uv_resolver._cached_requires(entry) == ("dep>=3",)
    assert len(sent) == fetched, "served from the disk cache"
    cache_file = uv_resolver.metadata_cache_root() / sha[:2] / f"{sha}.json"
    assert cache_file.is_file()
    cache_file.write_text('{"sha256": "' + "1" * 64 + '", "requires_dist": ["evil"]}')  # not this file's entry
    monkeypatch.setattr(uv_resolver, "_REQUIRES", {})
    assert uv_resolver._cached_requires(entry) == ("dep>=3",)
