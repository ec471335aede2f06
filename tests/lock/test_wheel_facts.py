"""What the lock reads of each pinned wheel: Requires-Dist, import names and start-up code, from the zip's
directory where the wheel lies (a large remote one by range requests), cached by sha256."""

from __future__ import annotations

import hashlib
import http.server
import random
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import make_wheel
from immutable_installer.lock import wheel_facts


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with byte ranges (or, with ``ignore_ranges``, always whole), and counts the bytes it sent."""

    root: Path
    sent: list[int]
    ignore_ranges: list[bool]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        if wanted and not self.ignore_ranges:
            start, end = (int(x) for x in wanted.removeprefix("bytes=").split("-"))
            body = data[start:end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.sent.append(len(body))  # counted before it is written: the client may return before this thread runs on
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, list[int], list[bool]]]:
    sent: list[int] = []
    ignore: list[bool] = []
    handler = type("H", (RangeHandler,), {"root": tmp_path, "sent": sent, "ignore_ranges": ignore})
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", sent, ignore
    httpd.shutdown()
    httpd.server_close()


def _big_wheel(tmp_path: Path) -> Path:
    rng = random.Random(7)  # incompressible padding: the wheel is ~1 MB
    padding = {f"big/data_{i}.bin": "".join(rng.choice("0123456789abcdef") for _ in range(4096)) for i in range(300)}
    return make_wheel(tmp_path, "big", "1.0", requires=["dep>=2"],
                      files={"big/__init__.py": "", "big.libs/libz.so": "", **padding})


def test_large_wheel_facts_by_range_requests(tmp_path: Path, server: tuple[str, list[int], list[bool]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base, sent, _ = server
    wheel = _big_wheel(tmp_path)
    size = wheel.stat().st_size
    monkeypatch.setattr(wheel_facts, "WHOLE_WHEEL_LIMIT", 1024)  # force the range path
    facts = wheel_facts.read_wheel_at(f"{base}/{wheel.name}", size,
                                      lambda zf: wheel_facts.facts_from_zip(zf, wheel.name, "big"))
    assert facts.requires_dist == ("dep>=2",)
    assert facts.imports.primary == ("big",) and facts.imports.secondary == ()  # never big.libs
    assert size > 500_000 and sum(sent) < size / 2, "only the zip directory and METADATA travel, not the wheel"


def test_a_server_that_ignores_ranges_is_read_whole(tmp_path: Path, server: tuple[str, list[int], list[bool]],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base, _, ignore = server
    ignore.append(True)
    wheel = _big_wheel(tmp_path)
    monkeypatch.setattr(wheel_facts, "WHOLE_WHEEL_LIMIT", 1024)
    facts = wheel_facts.read_wheel_at(f"{base}/{wheel.name}", wheel.stat().st_size,
                                      lambda zf: wheel_facts.facts_from_zip(zf, wheel.name, "big"))
    assert facts.requires_dist == ("dep>=2",)


def test_small_wheel_is_read_whole(tmp_path: Path, server: tuple[str, list[int], list[bool]]) -> None:
    base, _, _ = server
    wheel = make_wheel(tmp_path, "small", "1.0", requires=["other; sys_platform == 'win32'"])
    entry = {"url": f"{base}/{wheel.name}", "size": wheel.stat().st_size}
    assert wheel_facts.cached_facts(entry, "small").requires_dist == ("other; sys_platform == 'win32'",)


def test_startup_code_is_told_with_what_runs(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "setuptools", "80.0", files={
        "setuptools/__init__.py": "", "distutils-precedence.pth": "import os; os.environ.get('X')\n",
        "harmless.pth": "some/dir\n"})
    facts = wheel_facts.cached_facts({"path": str(wheel)}, "setuptools")
    assert list(facts.startup) == ["distutils-precedence.pth"] and "import os" in facts.startup[
        "distutils-precedence.pth"]


def test_facts_are_cached_on_disk_by_sha256(tmp_path: Path, server: tuple[str, list[int], list[bool]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-lock reads nothing over the network: the second read of the same file (by sha256) comes from the
    cache, in a fresh process's memory as well; a cache file for another sha256, or in an older format, is never
    used."""
    base, sent, _ = server
    monkeypatch.setenv("IMMUTABLE_INSTALLER_CACHE", str(tmp_path / "cache"))
    wheel = make_wheel(tmp_path, "cached", "1.0", requires=["dep>=3"])
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    entry = {"url": f"{base}/{wheel.name}", "size": wheel.stat().st_size, "hashes": {"sha256": sha}}
    assert wheel_facts.cached_facts(entry, "cached").requires_dist == ("dep>=3",)
    fetched = len(sent)
    assert fetched > 0
    wheel_facts.forget_memory()  # a new process: nothing in memory
    assert wheel_facts.cached_facts(entry, "cached").imports.primary == ("cached",)
    assert len(sent) == fetched, "served from the disk cache"
    cache_file = wheel_facts.metadata_cache_root() / sha[:2] / f"{sha}.json"
    for planted in ('{"format": 2, "sha256": "' + "1" * 64 + '", "requires_dist": ["evil"], "imports": {"primary": '
                    '[], "secondary": []}, "startup": {}}',  # another file's entry
                    '{"sha256": "' + sha + '", "requires_dist": ["evil"]}'):  # format 1: Requires-Dist only
        cache_file.write_text(planted)
        wheel_facts.forget_memory()
        assert wheel_facts.cached_facts(entry, "cached").requires_dist == ("dep>=3",)
