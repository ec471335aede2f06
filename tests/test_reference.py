"""The shipped reference stack end to end: real torch 2.13.0+cpu and transformers, built once per run.

Download (from the configured sources), install, verify, up to date, --skip-wheelhouse reinstall, rollback,
and the shims in a real environment: torchao blocked, torch.compile on CPU, the from_pretrained patcher.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, free_port, offline_env, target_env, wait_for

pytestmark = [pytest.mark.reference, pytest.mark.slow]


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "immutable_installer", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=1800)


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reference")
    shutil.copytree(REPO / "metadata", root / "metadata")
    proc = cli(root, "install", "--variant", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["event"] == "result" and result["changed"] and result["verify"]["ok"]
    return root


def py(ref: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ref / ".venv" / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          env=target_env(**env), timeout=900)


def test_verify_passes_and_second_install_is_up_to_date(ref: Path) -> None:
    proc = cli(ref, "verify", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:]
    report = json.loads(proc.stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["transformers"] == "pass" and statuses["torch"] == "pass"
    assert statuses["cuda"] == "skip"  # no GPU here: never reported as passing
    again = cli(ref, "install", "--variant", "cpu", "--json")
    assert again.returncode == 0
    assert json.loads(again.stdout.strip().splitlines()[-1])["changed"] is False


def test_pip_works_inside_and_cannot_move_the_pins(ref: Path) -> None:
    """The reference pins pip: `python -m pip list` and `check` work, and the environment's own pip.conf keeps a
    later `pip install` from swapping torch or pulling in torchao."""
    python = str(ref / ".venv" / "bin" / "python")
    env = target_env()
    listed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert listed.returncode == 0 and {"torch", "transformers", "pip"} <= {p["name"] for p in
                                                                         json.loads(listed.stdout)}
    checked = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, env=env, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for wish in ("torch==2.12.0", "torchao"):
        moved = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--no-deps", wish], capture_output=True,
                               text=True, env=env, timeout=300)
        assert moved.returncode != 0, wish


def test_torchao_blocked_and_transformers_agrees(ref: Path) -> None:
    proc = py(ref, "import importlib.util\n"
                   "from transformers.utils import is_torchao_available, is_bitsandbytes_available\n"
                   "print(is_torchao_available(), is_bitsandbytes_available(), importlib.util.find_spec('triton'))\n"
                   "from transformers import PreTrainedModel\nimport torchao")
    assert "False False None" in proc.stdout, proc.stderr[-2000:]
    assert "'torchao' is blocked in this environment by immutable-installer" in proc.stderr


def test_torch_compile_on_cpu_with_triton_absent(ref: Path) -> None:
    proc = py(ref, "import torch\nfrom torch.utils._triton import has_triton_package\n"
                   "assert not has_triton_package()\n"
                   "f = torch.compile(lambda x: torch.sin(x) + x * 2)\n"
                   "x = torch.arange(8.0)\nassert torch.allclose(f(x), torch.sin(x) + x * 2)\nprint('compiled ok')")
    assert "compiled ok" in proc.stdout, proc.stderr[-3000:]


PATCH_TEST = r'''
import os, json, sys
from pathlib import Path
cache = Path(os.environ["HOME"]) / ".cache/immutable-installer/hub"
snap = cache / "models--local--tiny-bert" / "snapshots" / ("0" * 40)
snap.mkdir(parents=True)
(cache / "models--local--tiny-bert" / "refs").mkdir()
(cache / "models--local--tiny-bert" / "refs" / "main").write_text("0" * 40)
from transformers import BertConfig, BertModel, BertTokenizerFast, AutoConfig, AutoModel, AutoTokenizer, pipeline
BertModel(BertConfig(vocab_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37)).save_pretrained(snap)
vocab = Path(os.environ["HOME"]) / "vocab.txt"
vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world"]))
BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(snap)
import _immutable_hf_patch as patch
print("STATUS", json.dumps(patch.status()))
AutoConfig.from_pretrained("local/tiny-bert")
AutoModel.from_pretrained("local/tiny-bert")
BertModel.from_pretrained("local/tiny-bert")
AutoTokenizer.from_pretrained("local/tiny-bert")
out = pipeline("feature-extraction", model="local/tiny-bert")("hello world")
print("LOADED", len(out[0]))
try:
    AutoModel.from_pretrained("local/tiny-bert", cache_dir=str(Path(os.environ["HOME"]) / "empty"))
except OSError:
    print("EXPLICIT WINS")
patch.restore()
try:
    AutoModel.from_pretrained("local/tiny-bert")
except OSError:
    print("RESTORED")
'''


def test_from_pretrained_patcher_routes_to_the_shared_cache(ref: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # HF_HOME points elsewhere, so only the patcher's injected cache_dir can find the model; no network
    proc = py(ref, PATCH_TEST, HOME=str(home), HF_HOME=str(tmp_path / "elsewhere"), HF_HUB_OFFLINE="1")
    assert "LOADED" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    status = json.loads(proc.stdout.split("STATUS ", 1)[1].splitlines()[0])
    assert status["enabled"] and status["cache_dir"].endswith(".cache/immutable-installer/hub")
    assert "EXPLICIT WINS" in proc.stdout and "RESTORED" in proc.stdout
    patched = py(ref, "import transformers, _immutable_hf_patch as p\nfrom transformers import AutoModel, "
                      "PreTrainedModel, pipeline\nprint(p.status()['patched'])", HOME=str(home))
    for owner in ("PreTrainedModel", "AutoModel", "AutoConfig", "AutoTokenizer", "pipeline()"):
        assert owner in patched.stdout, patched.stdout
    for var in ("CI", "TRANSFORMERS_PATCH_DISABLE", "IMMUTABLE_INSTALLER_SHIMS_DISABLE"):
        off = py(ref, "import sys, os\np = sys.modules.get('_immutable_hf_patch')\n"
                      "print(p.status()['why_off'] if p else 'not loaded', os.environ.get('HF_HUB_CACHE'))",
                 HOME=str(home), **{var: "1"})
        assert ("not loaded" if var.startswith("IMMUTABLE") else f"{var} is set") in off.stdout, off.stdout
        assert off.stdout.strip().endswith("None")  # and the hub cache variable is left alone
    local = py(ref, "import os, _immutable_hf_patch as p\nprint(p.status()['cache_dir'], os.environ.get('HF_HUB_CACHE'))",
               HOME=str(home), STORAGE_FORCE_LOCAL="1")
    assert local.stdout.split() == ["None", "None"], local.stdout


def test_skip_wheelhouse_reinstall_then_rollback(ref: Path) -> None:
    first = json.loads((ref / ".venv" / "installer-receipt.json").read_text())
    proc = cli(ref, "install", "--variant", "cpu", "--skip-wheelhouse", "--force", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["generation"] == "g0002" and result["verify"]["ok"]
    assert os.readlink(ref / ".venv").endswith("g0002")
    # a fresh generation linked from the warm store: nothing installed again, same fingerprint, shared inodes
    assert "store" not in result["phases"] and "link" in result["phases"]
    assert result["fingerprint"] == first["fingerprint"]
    second = json.loads((ref / ".venv" / "installer-receipt.json").read_text())
    assert second["link_mode"] == "hardlink"
    init = "lib/python3.11/site-packages/torch/__init__.py"
    gens = ref / ".venv.generations"
    assert (gens / "g0001" / init).stat().st_ino == (gens / "g0002" / init).stat().st_ino
    back = cli(ref, "rollback")
    assert back.returncode == 0, back.stderr[-2000:]
    assert os.readlink(ref / ".venv").endswith("g0001")
    status = json.loads(cli(ref, "status", "--json").stdout)
    assert status["current"] == "g0001" and len(status["generations"]) == 2


class _FakeHub:
    """A minimal Hugging Face hub on 127.0.0.1: HEAD/GET of /{repo}/resolve/{rev}/{file}, slow bodies."""

    def __init__(self, payload: bytes) -> None:
        import hashlib
        import http.server
        import socketserver
        import threading
        import time

        self.payload = payload
        self.etag = hashlib.sha256(payload).hexdigest()
        self.gets: list[float] = []
        self.heads: list[float] = []
        self.get_done: list[float] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _headers(self) -> None:
                self.send_response(200)
                self.send_header("X-Repo-Commit", "a" * 40)
                self.send_header("ETag", f'"{hub.etag}"')
                self.send_header("Content-Length", str(len(hub.payload)))
                self.end_headers()

            def do_HEAD(self) -> None:
                if "/resolve/" not in self.path:  # hub clients also probe other endpoints: not files
                    self.send_error(404)
                    return
                hub.heads.append(time.monotonic())
                self._headers()

            def do_GET(self) -> None:
                if "/resolve/" not in self.path:
                    self.send_error(404)
                    return
                hub.gets.append(time.monotonic())
                self._headers()
                for i in range(0, len(hub.payload), 1 << 18):
                    self.wfile.write(hub.payload[i:i + (1 << 18)])
                    time.sleep(0.05)
                hub.get_done.append(time.monotonic())

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_concurrent_downloads_into_the_shared_cache(ref: Path, tmp_path: Path) -> None:
    """Does huggingface_hub's own per-file lock suffice for the shared cache? Four processes, one file."""
    hub = _FakeHub(os.urandom(8 << 20))
    home = tmp_path / "home"
    home.mkdir()
    env = target_env(HOME=str(home), HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1")
    code = ("import hashlib\nfrom huggingface_hub import hf_hub_download\n"
            "p = hf_hub_download('org/big', 'model.safetensors')\n"
            "print(p, hashlib.sha256(open(p, 'rb').read()).hexdigest())")
    procs = [subprocess.Popen([str(ref / ".venv" / "bin" / "python"), "-c", code], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [o[1][-500:] for o in outputs]
    paths = {o[0].split()[0] for o in outputs}
    assert len(paths) == 1 and ".cache/immutable-installer/hub/models--org--big" in paths.pop()
    assert {o[0].split()[1] for o in outputs} == {hub.etag}
    assert len(hub.heads) >= 2 and min(hub.heads[1:]) < hub.get_done[0]  # the processes really overlapped
    assert len(hub.gets) == 1  # downloaded once: the hub's lock suffices, no extra lock of ours is needed


def test_tampering_with_transformers_is_caught_and_named(ref: Path) -> None:
    init = next((ref / ".venv" / "lib").glob("python*/site-packages/transformers/__init__.py"))
    original = init.read_bytes()
    mode = init.stat().st_mode
    try:
        init.chmod(0o644)  # store files are read-only; an attacker (or a careless editor) changes that first
        init.write_bytes(original + b"\n# tampered\n")
        proc = cli(ref, "verify", "--json")
        assert proc.returncode == 1
        checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
        assert checks["integrity"]["status"] == "fail"
        assert "site-packages/transformers/__init__.py (transformers)" in checks["integrity"]["detail"]
        assert "store verify --repair" in checks["integrity"]["detail"]  # the linked file is the store's
    finally:
        init.write_bytes(original)
        init.chmod(mode)
    assert cli(ref, "verify").returncode == 0


def test_real_stack_bundle_installs_offline_with_the_same_fingerprint(ref: Path, tmp_path: Path) -> None:
    """The real stack carried as one file to a directory with no network and a clean HOME."""
    fingerprint = json.loads((ref / ".venv" / "installer-receipt.json").read_text())["fingerprint"]
    out = tmp_path / "stack.tar"
    made = cli(ref, "bundle", "-o", str(out), "--variant", "cpu", "--json")
    assert made.returncode == 0, made.stderr[-2000:]
    assert cli(ref, "bundle", "verify", str(out)).returncode == 0
    subprocess.run(["tar", "xf", str(out), "-C", str(tmp_path)], check=True)
    boot = subprocess.run(["sh", str(tmp_path / "stack" / "install.sh"), "--variant", "cpu"],
                          env=offline_env(tmp_path / "home"),
                          capture_output=True, text=True, timeout=1800, check=False)
    assert boot.returncode == 0, boot.stderr[-3000:]
    receipt = json.loads((tmp_path / "stack" / ".venv" / "installer-receipt.json").read_text())
    assert receipt["fingerprint"] == fingerprint


def test_second_machine_installs_the_same_fingerprint_from_an_exported_index(ref: Path, tmp_path: Path) -> None:
    import urllib.request

    fingerprint = json.loads((ref / ".venv" / "installer-receipt.json").read_text())["fingerprint"]
    assert cli(ref, "export-index", str(tmp_path / "export")).returncode == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                               str(tmp_path / "export")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/simple/", server)
        node = tmp_path / "node"
        (node / "metadata").mkdir(parents=True)
        with urllib.request.urlopen(f"{base}/dependencies.json") as response:
            (node / "metadata" / "dependencies.json").write_bytes(response.read())
        got = cli(node, "download", "--variant", "cpu", "--index-url", f"{base}/simple")
        assert got.returncode == 0, got.stderr[-2000:]
    finally:
        server.kill()
        server.wait()
    installed = cli(node, "install", "--skip-wheelhouse", "--variant", "cpu", "--json")
    assert installed.returncode == 0, installed.stderr[-2000:]
    assert json.loads(installed.stdout.strip().splitlines()[-1])["fingerprint"] == fingerprint


# ------------------------------------------------------------------------------- through a registry
def _ldd(paths: list[str]) -> set[str]:
    """The shared libraries ``paths`` load (outside ``/tmp``: not the environment's own bundled ones)."""
    found = set()
    for path in paths:
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split()
            lib = parts[2] if "=>" in parts and len(parts) > 2 else (parts[0] if parts else "")
            if lib.startswith("/") and not lib.startswith("/tmp/"):
                found.add(lib)
    return found


def base_image_layer(prefix: Path, site: Path) -> bytes:
    """A base image made from this machine's interpreter: its prefix (the standard library without its tests
    and site-packages), the libraries ``ldd`` names for it and for the environment's extension modules (each
    link of a chain kept), and ``/etc/ld.so.cache``."""
    import glob
    import io
    import tarfile

    skip = {"test", "site-packages", "idlelib", "tkinter", "turtledemo", "ensurepip", "config-3.11-x86_64-linux-gnu"}
    libs = _ldd([str(prefix / "bin" / "python3.11"), *glob.glob(str(prefix / "lib/python3.11/lib-dynload/*.so")),
                 *(str(p) for p in site.rglob("*.so*") if p.is_file())])
    buf = io.BytesIO()
    added: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(path: str, recursive: bool = False) -> None:
            parts = Path(path).parts
            for i in range(2, len(parts)):
                folder = "/".join(parts[1:i])
                if folder not in added:
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    added.add(folder)
            tar.add(path, arcname=path.lstrip("/"), recursive=recursive,
                    filter=lambda i: None if i.name.split("lib/python3.11/", 1)[-1].split("/")[0] in skip else i)
            added.add(path.lstrip("/"))

        for lib in sorted(libs):
            chain, link = [lib], lib
            while os.path.islink(link) and len(chain) < 10:  # /lib64/ld-linux -> /lib/x86_64-linux-gnu/...
                link = os.path.normpath(os.path.join(os.path.dirname(link), os.readlink(link)))
                chain.append(link)
            for path in chain:
                if path.lstrip("/") not in added:
                    add(path)
        add(str(prefix / "bin"), recursive=True)
        add(str(prefix / "lib"), recursive=True)
        add("/etc/ld.so.cache")
    return buf.getvalue()


@pytest.mark.registry
def test_a_fleet_node_installs_from_a_registry_and_the_image_runs(ref: Path, tmp_path: Path) -> None:
    """Push the real stack on a base image made from this machine's interpreter; another machine (empty store,
    no wheelhouse) installs it from the registry with the same fingerprint and compiles nothing; the image, read
    by skopeo and unpacked by umoci, runs torch and transformers under chroot with torchao blocked. (Rootless
    `podman run` does not start in this sandbox: setrlimit is not permitted; chroot stands in for the runtime.)"""
    import hashlib
    import stat

    from conftest import RegistryServer
    from immutable_installer.oci.client import Layout
    from immutable_installer.oci.reference import LayoutReference

    registry = RegistryServer(tmp_path / "registry")
    try:
        venv = Path(os.path.realpath(ref / ".venv"))
        home = next(line.split("=", 1)[1].strip() for line in (venv / "pyvenv.cfg").read_text().splitlines()
                    if line.startswith("home"))
        layer = base_image_layer(Path(home).parent, venv / "lib" / "python3.11" / "site-packages")
        layout = Layout(LayoutReference(tmp_path / "base"), create=True)
        digest = "sha256:" + hashlib.sha256(layer).hexdigest()
        layout.put_blob(digest, len(layer), lambda: [layer])
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/usr/bin:/bin"]},
                             "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        layout.put_blob(config_digest, len(config), lambda: [config])
        layout.put_manifest(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest,
                        "size": len(layer)}]}).encode(), "application/vnd.oci.image.manifest.v1+json", "v1")
        copied = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'base'}:v1",
                                 f"docker://{registry.host}/base/python:v1"], capture_output=True, text=True)
        assert copied.returncode == 0, copied.stderr
        base = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                          f"docker://{registry.host}/base/python:v1"],
                                         capture_output=True, text=True).stdout)["Digest"]
        pushed = cli(ref, "push", f"{registry.host}/ml/stack:cpu", "--base", f"{registry.host}/base/python@{base}",
                     "--json")
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        image = json.loads(pushed.stdout.strip().splitlines()[-1])["reference"]

        node = tmp_path / "node"
        shutil.copytree(ref / "metadata", node / "metadata")  # the committed manifest and its images record
        installed = cli(node, "install", "--from", f"{registry.host}/ml/stack:cpu", "--variant", "cpu", "--store",
                        str(node / "store"), "--json")
        assert installed.returncode == 0, installed.stderr[-3000:]
        events = [json.loads(line) for line in installed.stdout.splitlines()]
        assert not any(e.get("name") == "store" for e in events if e["event"] == "phase"), "nothing compiled"
        fingerprint = json.loads((ref / ".venv" / "installer-receipt.json").read_text())["fingerprint"]
        assert events[-1]["verify"]["ok"] and events[-1]["fingerprint"] == fingerprint
        assert not (node / "wheelhouse").exists() or not list((node / "wheelhouse").iterdir())

        out = tmp_path / "out"
        assert subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{image}", f"oci:{out}:cpu"],
                              capture_output=True).returncode == 0
        unpacked = subprocess.run(["umoci", "unpack", "--image", f"{out}:cpu", str(tmp_path / "bundle")],
                                  capture_output=True, text=True)
        assert unpacked.returncode == 0, unpacked.stderr
        rootfs = tmp_path / "bundle" / "rootfs"
        (rootfs / "dev").mkdir(exist_ok=True)
        for name, minor in (("null", 3), ("urandom", 9), ("random", 8)):  # what a runtime gives every container
            os.mknod(rootfs / "dev" / name, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        ran = subprocess.run(["chroot", str(rootfs), "/opt/venv/bin/python", "-c",
                              "import torch; from transformers import PreTrainedModel; print(torch.__version__)"],
                             capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0 and ran.stdout.strip() == "2.13.0+cpu", ran.stderr[-2000:]
        blocked = subprocess.run(["chroot", str(rootfs), "/opt/venv/bin/python", "-c", "import torchao"],
                                 capture_output=True, text=True, timeout=300)
        assert blocked.returncode == 1 and "is blocked in this environment by immutable-installer" in blocked.stderr
    finally:
        registry.close()
