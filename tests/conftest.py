"""Shared fixtures: real tiny wheels, a real PEP 503 index on 127.0.0.1, synthetic manifests.

Nothing here is a mock: wheels are real zip files with METADATA, WHEEL and RECORD; the index is a real
HTTP server; environments are real virtualenvs built by the engine.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import os
import shutil
import socketserver
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from immutable_installer.core.names import canonical

REPO = Path(__file__).resolve().parent.parent
# the window's tests (tests/gui) drive real Qt widgets with no display
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _private_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tests never touch the user's real store or caches: one temporary store and cache for the session (tests
    that need their own pass ``--store`` / ``Store(root)``), set in the environment so CLI subprocesses see
    them too."""
    store = tmp_path_factory.mktemp("store")
    private = {"IMMUTABLE_INSTALLER_STORE": str(store), "UV_CACHE_DIR": str(tmp_path_factory.mktemp("uv-cache")),
               "IMMUTABLE_INSTALLER_CACHE": str(tmp_path_factory.mktemp("cache"))}
    old = {k: os.environ.get(k) for k in private}
    os.environ.update(private)  # uv's cache too: the resolver's, never the user's
    yield store
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, name: str, version: str, requires: list[str] | None = None,
               files: dict[str, str] | None = None, extras: list[str] | None = None,
               tag: str = "py3-none-any", requires_python: str | None = None) -> Path:
    """Build a real wheel: a module named after the distribution unless ``files`` says otherwise."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    module = canonical(name).replace("-", "_")
    files = files if files is not None else {f"{module}/__init__.py": f"__version__ = {version!r}\n"}
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Python: {requires_python}"] if requires_python else []
    meta += [f"Provides-Extra: {e}" for e in extras or []]
    meta += [f"Requires-Dist: {r}" for r in requires or []]
    contents: dict[str, bytes] = {k: v.encode() for k, v in files.items()}
    contents[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    contents[f"{info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()
    record = "".join(f"{p},{_record_hash(d)},{len(d)}\n" for p, d in contents.items()) + f"{info}/RECORD,,\n"
    contents[f"{info}/RECORD"] = record.encode()
    path = directory / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(contents):
            zi = zipfile.ZipInfo(p, date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(zi, contents[p])
    return path


BACKEND = r'''"""A PEP 517 backend in the sdist itself (backend-path): builds the wheel with the standard library only."""
import base64, hashlib, io, os, zipfile

NAME, VERSION, REQUIRES, FILES = {name!r}, {version!r}, {requires!r}, {files!r}


def get_requires_for_build_wheel(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
{extra}
    dist = NAME.replace("-", "_")
    info = f"{{dist}}-{{VERSION}}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {{NAME}}\nVersion: {{VERSION}}\n" + "".join(
        f"Requires-Dist: {{r}}\n" for r in REQUIRES)
    contents = {{**{{k: v.encode() for k, v in FILES.items()}}, f"{{info}}/METADATA": meta.encode(),
                f"{{info}}/WHEEL": b"Wheel-Version: 1.0\nGenerator: backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}}
    record = "".join(f"{{p}},sha256={{base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()}},"
                     f"{{len(d)}}\n" for p, d in contents.items()) + f"{{info}}/RECORD,,\n"
    contents[f"{{info}}/RECORD"] = record.encode()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    import time
    stamp = time.gmtime(max(epoch, 315532800))[:6]
    name = f"{{dist}}-{{VERSION}}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(contents):
            zf.writestr(zipfile.ZipInfo(path, date_time=stamp), contents[path])
    return name
'''


def make_sdist(directory: Path, name: str, version: str, requires: list[str] | None = None,
               files: dict[str, str] | None = None, extra_build_code: str = "") -> Path:
    """A real sdist whose build backend is in the sdist itself (PEP 517 ``backend-path``: needs no build
    requirement, so it builds offline); ``extra_build_code`` runs inside ``build_wheel`` (hostile tests)."""
    import tarfile

    directory.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    module = canonical(name).replace("-", "_")
    files = files if files is not None else {f"{module}/__init__.py": f"__version__ = {version!r}\n"}
    extra = "\n".join("    " + line for line in extra_build_code.strip().splitlines()) or "    pass"
    members = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n',
        "backend.py": BACKEND.format(name=name, version=version, requires=requires or [], files=files, extra=extra),
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    path = directory / f"{dist}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member, text in sorted(members.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{dist}-{version}/{member}")
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class IndexHandler(http.server.SimpleHTTPRequestHandler):
    """PEP 503 pages generated from a folder of wheels; ``faults`` makes files fail on purpose."""

    root: Path
    faults: dict[str, str]
    requests: list[tuple[str, str | None]]
    dropped: set[str]
    auth: list[str]  # "user:password" when every request must carry it (HTTP basic auth)
    yanked: dict[str, str]  # filename -> reason (PEP 592)
    uploaded: dict[str, str]  # filename -> upload time; when set, the index also speaks PEP 691 JSON (PEP 700)

    def log_message(self, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:  # type: ignore[override]
        if self.auth:
            expected = "Basic " + base64.b64encode(self.auth[0].encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="index"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
        path = self.path.split("?", 1)[0]
        served = [*self.root.glob("*.whl"), *self.root.glob("*.tar.gz")]  # wheels and sdists
        if path.rstrip("/") in ("", "/simple"):
            names = sorted({canonical(p.name.split("-")[0]) for p in served})
            return self._send("<html><body>" + "".join(f'<a href="/simple/{n}/">{n}</a>' for n in names)
                              + "</body></html>", head=head)
        if path.startswith("/simple/"):
            project = canonical(path.split("/")[2])
            files = [p for p in sorted(served) if canonical(p.name.split("-")[0]) == project]
            if not files:
                self.send_error(404)
                return None
            if self.uploaded and "application/vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
                return self._send_json(project, files, head)  # PEP 691, with PEP 700 upload times
            links = [f'<a href="/files/{p.name}#sha256={sha256(p)}"{self._yank(p.name)}>{p.name}</a>' for p in files]
            return self._send("<html><body>" + "".join(links) + "</body></html>", head=head)
        if path.startswith("/files/"):
            name = path.split("/", 2)[2].replace("%2B", "+")
            fault = self.faults.get(name)
            self.requests.append((name, self.headers.get("Range")))
            if fault in ("404", "500"):
                self.send_error(int(fault))
                return None
            if fault in ("huge", "huge-unannounced"):  # far more bytes than any pin: until the client hangs up
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if fault == "huge":
                    self.send_header("Content-Length", str(200 * 1024 * 1024))
                self.end_headers()
                try:
                    for _ in range(200 * 16):
                        self.wfile.write(b"\0" * 65536)
                except OSError:
                    pass
                self.close_connection = True
                return None
            file = self.root / name
            if not file.is_file():
                self.send_error(404)
                return None
            data = file.read_bytes()
            if fault in ("drop-once", "drop-once-ignoring-range") and not head and name not in self.dropped:
                self.dropped.add(name)  # the whole length announced, half the body sent, then the line drops
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return None
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes=") and fault not in ("drop-once-ignoring-range", "truncate"):
                start = int(wanted[6:].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if not head:
                    self.wfile.write(data[start:])
                return None
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if head:
                return None
            if fault == "truncate":
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return None
            if fault == "tamper":
                data = data[:-1] + bytes([data[-1] ^ 1])
            self.wfile.write(data)
            return None
        self.send_error(404)
        return None

    def _send_json(self, project: str, files: list[Path], head: bool) -> None:
        entries = [{"filename": p.name, "url": f"/files/{p.name}", "hashes": {"sha256": sha256(p)},
                    "upload-time": self.uploaded.get(p.name, "2020-01-01T00:00:00Z"),
                    **({"yanked": self.yanked[p.name]} if p.name in self.yanked else {})} for p in files]
        body = json.dumps({"meta": {"api-version": "1.1"}, "name": project, "files": entries,
                           "versions": sorted({p.name.split("-")[1] for p in files})}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _yank(self, filename: str) -> str:
        """PEP 592: a yanked file's anchor carries data-yanked (with the reason)."""
        reason = self.yanked.get(filename)
        return "" if reason is None else f' data-yanked="{reason}"'

    def _send(self, html: str, head: bool = False) -> None:
        body = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class Index:
    """A running index; ``url`` is its simple root."""

    def __init__(self, root: Path, tls: Any = None, host: str = "127.0.0.1") -> None:
        """``tls``: an ``ssl.SSLContext`` to serve HTTPS with; ``host``: the name in its URLs (one that resolves
        nowhere, e.g. ``index.invalid``, is reachable only through a proxy that knows it)."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.faults: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []  # (file, its Range header) of every file request
        self.auth: list[str] = []  # append "user:password" to demand basic auth
        self.yanked: dict[str, str] = {}  # filename -> reason: served as yanked (PEP 592)
        self.uploaded: dict[str, str] = {}  # filename -> RFC 3339 upload time: turns on the JSON API (PEP 700)
        handler = type("Handler", (IndexHandler,), {"root": root, "faults": self.faults, "requests": self.requests,
                                                      "dropped": set(), "auth": self.auth, "yanked": self.yanked,
                                                      "uploaded": self.uploaded})
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        if tls is not None:  # the handshake runs in the handler's thread, so a stalled client blocks no other
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
            self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # refused TLS
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"{'https' if tls is not None else 'http'}://{host}:{self.server.server_address[1]}"
        self.url = f"{self.base}/simple"

    def file_url(self, filename: str) -> str:
        return f"{self.base}/files/{filename}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    idx = Index(tmp_path / "index")
    yield idx
    idx.close()


@pytest.fixture
def cuda_index(tmp_path: Path) -> Iterator[Index]:
    idx = Index(tmp_path / "cuda-index")
    yield idx
    idx.close()


# ----------------------------------------------------------------------------------- the window's tests
# They run or the run fails, never a green run that tested no window: Qt needs system libraries a minimal machine
# lacks, and the command-line window test an X server and two tools. When one is missing the run stops with one
# line naming the Debian packages (.ci/run installs them), unless the window's tests are deselected (-m "not gui").
# what Qt's offscreen and xcb plugins load (the same list as .ci/run's)
QT_DEBS = ("libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 "
           "libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xkb1 "
           "libxcb-xinerama0 fonts-dejavu-core")
X_TOOLS = {"Xvfb": "xvfb", "xdotool": "xdotool", "import": "imagemagick"}  # command -> its Debian package


def qt_problem() -> str | None:
    """Why PySide6's widgets cannot be loaded here (None when they can)."""
    try:
        import PySide6.QtWidgets  # noqa: F401
    except ImportError as exc:
        if "PySide6" in str(exc) and "No module named" in str(exc):
            return "PySide6 is not installed: pip install -e '.[dev]' (the [gui] extra)"
        return f"Qt cannot load ({exc}): apt-get install {QT_DEBS}"
    return None


PROBLEM = qt_problem()
if PROBLEM is not None:  # their imports would fail: the run stops below instead, with one line
    collect_ignore = ["gui/test_window.py", "gui/test_command.py"]


def _window_tests_deselected(config: pytest.Config) -> bool:
    return "not gui" in (config.option.markexpr or "")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-qt loads Qt (which would end the run in a page of INTERNALERROR): one line."""
    if PROBLEM is not None and not _window_tests_deselected(config):
        raise pytest.UsageError(f"the window's tests cannot run: {PROBLEM} (or leave them out: -m \"not gui\" "
                                "-p no:pytest-qt)")


def pytest_collection_finish(session: pytest.Session) -> None:
    if _window_tests_deselected(session.config):
        return
    if any(item.get_closest_marker("registry") for item in session.items):
        missing = sorted({deb for tool, deb in REGISTRY_DEBS.items() if shutil.which(tool) is None})
        if missing:
            raise pytest.UsageError(f"the registry tests cannot run: apt-get install {' '.join(missing)}")
    if any(item.path.name == "test_command.py" for item in session.items):
        missing = sorted({deb for tool, deb in X_TOOLS.items() if shutil.which(tool) is None})
        if missing:
            raise pytest.UsageError(f"the window's tests cannot run: no X server tools here: apt-get install "
                                    f"{' '.join(missing)}")


# ------------------------------------------------------------------------------------------ a registry
REGISTRY_DEBS = {"docker-registry": "docker-registry", "skopeo": "skopeo", "umoci": "umoci"}


class RegistryServer:
    """Debian's ``docker-registry`` (the distribution v2 server) on 127.0.0.1 with a config and a root of its own;
    with ``auth`` (user, password) it asks for HTTP basic credentials (htpasswd, bcrypt)."""

    def __init__(self, root: Path, auth: tuple[str, str] | None = None) -> None:
        import subprocess

        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true", "storage:",
                  "  filesystem:", f"    rootdirectory: {root / 'data'}", "  delete:", "    enabled: true",
                  "http:", f"  addr: {self.host}"]
        if auth is not None:
            import bcrypt

            hashed = bcrypt.hashpw(auth[1].encode(), bcrypt.gensalt(rounds=4)).decode()
            (root / "htpasswd").write_text(f"{auth[0]}:{hashed}\n")
            config += ["auth:", "  htpasswd:", "    realm: test", f"    path: {root / 'htpasswd'}"]
        (root / "config.yml").write_text("\n".join(config) + "\n")
        self.log = open(root / "registry.log", "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        import time
        import urllib.error
        import urllib.request

        for _ in range(200):
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(root / 'registry.log').read_text()[-500:]}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)

    def stored_bytes(self) -> int:
        """What the registry keeps: the bytes of every blob it stores."""
        blobs = self.root / "data" / "docker" / "registry" / "v2" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data")) if blobs.is_dir() else 0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path / "registry")
    yield server
    server.close()


# ------------------------------------------------------------------------------------ synthetic manifests
PLATFORM = {"name": "linux_x86_64", "tags": ["manylinux_2_17_x86_64"],
            "environment": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                            "platform_machine": "x86_64"}}
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


def manifest_data(wheels: list[tuple[Path, dict[str, Any]]], *, groups: list[str] | None = None,
                  blacklist: list[dict[str, Any]] | None = None, blocked: list[dict[str, Any]] | None = None,
                  index_url: str = "https://pypi.org/simple", imports: list[str] | None = None,
                  variants: dict[str, Any] | None = None, urls: dict[str, str] | None = None,
                  patcher: bool = False, cuda: str = "auto") -> dict[str, Any]:
    """A valid manifest for wheels built with make_wheel; per-wheel options: group, requires, extras, variants."""
    groups = groups or ["base", "app"]
    packages = []
    for order, (path, opts) in enumerate(wheels, 1):
        name, version = path.name.split("-")[:2]
        packages.append({
            "name": canonical(name), "version": version, "group": opts.get("group", groups[0]), "order": order,
            "index": opts.get("index", "default"), "variants": opts.get("variants", ["cpu"]),
            "requires_dist": opts.get("requires", []), "extras": opts.get("extras", []), "marker": None,
            "files": [{"filename": path.name, "sha256": sha256(path), "size": path.stat().st_size,
                       "url": (urls or {}).get(path.name), "platforms": ["linux_x86_64"]}],
        })
    return {
        "schema_version": 1, "name": "synthetic", "python": {"version": PY, "implementation": "cpython"},
        "platforms": [PLATFORM], "indexes": {"default": index_url}, "default_index": "default",
        "variants": variants or {"cpu": {"index": "default", "torch_packages": [], "cuda": None, "min_driver": None}},
        "default_variant": "cpu", "groups": groups, "blacklist": blacklist or [], "packages": packages,
        "verify": {"cuda": cuda, "imports": imports or [], "gpu_alloc_mb": 0, "model_smoke_test": False},
        "shims": {"blocked_modules": blocked or [], "transformers_patcher": patcher, "model_cache": None,
                  "local_files_only": False},
    }


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def target_env(**extra: str) -> dict[str, str]:
    """Environment for a process of a built environment, as a user's shell would start it: no pip, python,
    venv or Hugging Face variables of ours, and no CI (which turns the transformers patcher off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "HF_", "VIRTUAL_ENV"))}
    env.pop("CI", None)
    env.update(extra)
    return env


# ------------------------------------------------------------------------------------- synthetic stack
FAKE_TORCH = '''__version__ = "1.0+cpu"
class _Version:
    cuda = None
version = _Version()
class _Cuda:
    @staticmethod
    def is_available():
        return False
    @staticmethod
    def device_count():
        return 0
cuda = _Cuda()
'''


class Synthetic:
    """A small stack (tiny wheels) in a wheelhouse, a manifest file, and an engine for a target."""

    def __init__(self, root: Path, **manifest_opts: Any) -> None:
        self.root = root
        self.house = root / "wheelhouse"
        w = self.house
        self.wheels = {
            "tiny-b": make_wheel(w, "tiny-b", "1.0"),
            "tiny-a": make_wheel(w, "tiny-a", "2.0", requires=["tiny-b>=1.0"]),
            "torch": make_wheel(w, "torch", "1.0+cpu", files={"torch/__init__.py": FAKE_TORCH}),
            "triton": make_wheel(w, "triton", "3.0", files={"triton/__init__.py": "", "triton/language.py": ""}),
            "bitsandbytes": make_wheel(w, "bitsandbytes", "0.4"),
            "torchao": make_wheel(w, "torchao", "0.6"),
        }
        extra: dict[str, dict[str, str]] = manifest_opts.pop("extra", {})  # name -> files, version 1.0, group app
        for name, files in extra.items():
            self.wheels[name] = make_wheel(w, name, "1.0", files=files)
        blocked = manifest_opts.pop("blocked", [
            {"name": "torchao", "mode": "absent", "reason": "breaks transformers' PreTrainedModel import"},
            {"name": "triton", "mode": "absent", "reason": "torch.compile on CPU"},
            {"name": "bitsandbytes", "mode": "absent", "reason": "CUDA only"},
        ])
        opts = {"tiny-a": {"requires": ["tiny-b>=1.0"], "group": "app"}}
        order = ["tiny-b", "torch", "triton", "bitsandbytes", "torchao", "tiny-a", *extra]
        opts.update({name: {"group": "app"} for name in extra})
        self.data = manifest_data([(self.wheels[n], opts.get(n, {})) for n in order], blocked=blocked,
                                  imports=manifest_opts.pop("imports", ["tiny_a"]), **manifest_opts)
        self.manifest_path = write_json(root / "dependencies.json", self.data)
        self.target = root / ".venv"

    def manifest(self) -> Any:
        from immutable_installer.core.manifest import load_manifest

        return load_manifest(self.manifest_path)

    def engine(self, reporter: Any = None) -> Any:
        """The target's engine (rollback, generations)."""
        from immutable_installer.generation.engine import Engine

        return Engine(self.target, reporter=reporter or (lambda e: None))

    def pipeline(self, reporter: Any = None, store: Path | None = None, link_mode: str = "auto") -> Any:
        """The install pipeline for this stack; its store is the stack's own (``root/store``) unless given."""
        from immutable_installer.pipeline import Pipeline
        from immutable_installer.store.entries import Store

        report = reporter or (lambda e: None)
        return Pipeline(self.target, self.house, Store(store or self.store, report), reporter=report,
                        link_mode=link_mode)

    @property
    def store(self) -> Path:
        return self.root / "store"

    def install(self, store: Path | None = None, link_mode: str = "auto", reporter: Any = None,
                **kwargs: Any) -> Any:
        from immutable_installer.core.selection import select

        manifest = self.manifest()
        return self.pipeline(reporter=reporter, store=store, link_mode=link_mode).install(
            select(manifest, "cpu", manifest.platform("linux_x86_64")), **kwargs)

    def verify(self, venv: Path | None = None, manifest: Any = None) -> Any:
        """The verifier's report on ``venv`` (the target by default) for the cpu variant on linux_x86_64."""
        from immutable_installer.core.selection import select
        from immutable_installer.verify.verifier import Verifier

        manifest = manifest or self.manifest()
        return Verifier().verify(venv or self.target, select(manifest, "cpu", manifest.platform("linux_x86_64")))

    def python(self) -> Path:
        return self.target / "bin" / "python"

    def run_py(self, code: str, **env: str) -> Any:
        import subprocess

        return subprocess.run([str(self.python()), "-c", code], capture_output=True, text=True,
                              env=target_env(**env), check=False)


@pytest.fixture
def synthetic(tmp_path: Path) -> Synthetic:
    return Synthetic(tmp_path)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Synthetic:
    """One healthy synthetic environment shared by read-only tests of a module."""
    stack = Synthetic(tmp_path_factory.mktemp("built"))
    stack.install()
    return stack


# a module that takes about a second to compile: a store build that includes it is reliably still running a
# moment after it started, so tests can interrupt it at a known point instead of racing a fast machine
SLOW_TO_COMPILE = "".join(f"v{i} = [{i}, '{i}', {{{i}: {i}}}]\n" for i in range(60000))


def store_files(store: Path) -> list[str]:
    """Every file in a store's entries and builds: what a refused install must not have left there (the
    wheel pass stages entries under ``tmp/`` while it scans; a failed scan removes them)."""
    return sorted(str(p.relative_to(store)) for sub in ("entries", "tmp") for p in (store / sub).rglob("*")
                  if p.is_file()) if store.exists() else []


# ------------------------------------------------------------------------------------------ processes
def cli(*args: str, cwd: Path, timeout: float = 1200) -> Any:
    """The tool as a user runs it (``python -m immutable_installer``), in ``cwd``, output captured."""
    import subprocess

    return subprocess.run([sys.executable, "-m", "immutable_installer", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False, timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: Any) -> None:
    """Until a server process answers ``url`` (or dies)."""
    import time
    import urllib.request

    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def offline_env(home: Path) -> dict[str, str]:
    """A machine with no network for pip: no index, no find-links, no pip configuration, an unreachable proxy,
    a clean HOME; ``PYTHON`` is the base interpreter (what a bundle's bootstrap looks for)."""
    base = getattr(sys, "_base_executable", sys.executable)
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": f"{Path(base).parent}:/usr/bin:/bin", "PYTHON": base,
            "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "LANG": "C.UTF-8"}
