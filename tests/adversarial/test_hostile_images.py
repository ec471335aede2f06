"""Hostile images: whoever controls a registry (or crafts an image and gets its digest pinned) cannot put a file
outside the environment, a link, a device, a setuid file, another wheel's entry, bytes other than the listing's,
or start-up code the scan would not see into a store. Each case is refused (exit 4) and leaves nothing: no entry,
no staging folder, no environment, the payload's marker file absent."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Synthetic, cli
from immutable_installer.store.entries import Store
from immutable_installer.store.fill import entry_digest

Members = list[tuple[tarfile.TarInfo, bytes]]
ANN = "io.github.immutable-installer"
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"  # the interpreter the stacks here are built for
OTHER_TAG = f"cp{sys.version_info.major}{sys.version_info.minor + 1}"
SITE = f"opt/venv/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def record_hash(data: bytes) -> str:
    import base64

    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class Image:
    """A genuine image pushed to an OCI layout, and the means to craft another from it (what an attacker who
    controls the image can do; the user then pins the crafted image's digest)."""

    def __init__(self, layout: Path, digest: str) -> None:
        self.layout, self.digest = layout, digest
        self.manifest = json.loads(self.blob(digest))

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    def put(self, data: bytes) -> str:
        digest = sha(data)
        (self.layout / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return digest

    def layer_of(self, name: str) -> int:
        """The index of the layer holding the entry of wheel ``name``."""
        for n, layer in enumerate(self.manifest["layers"]):
            for key in layer.get("annotations", {}).get(f"{ANN}.entries", "").split(","):
                listing = self.members(n)
                if any(i.name.endswith(f"{key}.json") and json.loads(d).get("name") == name for i, d in listing):
                    return n
        raise KeyError(name)

    def members(self, n: int) -> Members:
        data = self.blob(self.manifest["layers"][n]["digest"])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return [(i, tar.extractfile(i).read() if i.isreg() else b"") for i in tar.getmembers()]  # type: ignore[union-attr]

    def craft(self, n: int, mutate: Callable[[Members], Members] | None = None,
              annotations: Callable[[dict[str, str]], None] | None = None,
              image_annotations: Callable[[dict[str, str]], None] | None = None) -> str:
        """A new image whose layer ``n`` is ``mutate``d (config and manifest made consistent); its digest."""
        manifest = json.loads(json.dumps(self.manifest))
        layer = manifest["layers"][n]
        if mutate is not None:
            out = io.BytesIO()
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for info, data in mutate(self.members(n)):
                    tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
            blob = out.getvalue()
            layer["digest"], layer["size"] = self.put(blob), len(blob)
            config = json.loads(self.blob(manifest["config"]["digest"]))
            config["rootfs"]["diff_ids"][n] = layer["digest"]
            raw = json.dumps(config).encode()
            manifest["config"].update(digest=self.put(raw), size=len(raw))
        if annotations is not None:
            annotations(layer["annotations"])
        if image_annotations is not None:
            image_annotations(manifest["annotations"])
        return self.put(json.dumps(manifest).encode())


def file_info(name: str, data: bytes, mode: int = 0o444, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = (len(data) if kind == tarfile.REGTYPE else 0), mode, kind
    return info


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Synthetic, Image]:
    stack = Synthetic(tmp_path_factory.mktemp("genuine"))
    stack.install()
    layout = stack.root / "layout"
    proc = cli("push", f"oci:{layout}:cpu", "--venv", str(stack.target), "--manifest", str(stack.manifest_path),
               "--json", cwd=stack.root)
    assert proc.returncode == 0, proc.stderr
    return stack, Image(layout, json.loads(proc.stdout.splitlines()[-1])["digest"])


def install_from(stack: Synthetic, node: Path, digest: str, image: Image) -> subprocess.CompletedProcess[str]:
    node.mkdir(parents=True, exist_ok=True)
    return cli("install", "--from", f"oci:{image.layout}@{digest}", "--manifest", str(stack.manifest_path),
               "--venv", str(node / ".venv"), "--store", str(node / "store"), "--variant", "cpu", cwd=node)


def refused(stack: Synthetic, image: Image, node: Path, digest: str, why: str) -> None:
    proc = install_from(stack, node, digest, image)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert why in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    store = Store(node / "store")
    assert store.entry_keys() == [], "nothing entered the store"
    assert not list((node / "store" / "tmp").glob("*")) if (node / "store" / "tmp").exists() else True
    assert not (node / ".venv").exists()


def tiny_a_module(members: Members) -> tuple[int, tarfile.TarInfo]:
    return next((n, i) for n, (i, _) in enumerate(members) if i.name.endswith("tiny_a/__init__.py"))


def with_member(info: tarfile.TarInfo, data: bytes = b"") -> Callable[[Members], Members]:
    return lambda members: [*members, (info, data)]


@pytest.mark.parametrize(("name", "member", "why"), [
    ("traversal", file_info("opt/venv/../../MARKER", b"x"), "not a plain relative path"),
    ("absolute", file_info("/tmp/MARKER", b"x"), "not a plain relative path"),
    ("outside the prefix", file_info("etc/MARKER", b"x"), "outside the environment"),
    ("symlink", file_info("opt/venv/lib/link", b"", 0o777, tarfile.SYMTYPE), "symbolic link"),
    ("hard link", file_info("opt/venv/lib/hard", b"", 0o444, tarfile.LNKTYPE), "hard link"),
    ("device", file_info("opt/venv/lib/dev", b"", 0o644, tarfile.CHRTYPE), "device file"),
    ("setuid", file_info(f"{SITE}/tiny_a/su", b"x", 0o4755), "setuid"),
    ("unlisted .pth", file_info(f"{SITE}/zz.pth", b"import os\n"), "in no listing"),
])
def test_a_hostile_member_is_refused(genuine: tuple[Synthetic, Image], tmp_path: Path, name: str,
                                     member: tarfile.TarInfo, why: str) -> None:
    stack, image = genuine
    if member.issym():
        member.linkname = "/etc/passwd"
    if member.islnk():
        member.linkname = f"{SITE}/tiny_a/__init__.py"
    digest = image.craft(image.layer_of("tiny-a"), with_member(member, b"x" * member.size if member.isreg() else b""))
    refused(stack, image, tmp_path / "node", digest, why)
    assert not (tmp_path / "MARKER").exists() and not Path("/tmp/MARKER").exists()


def test_bytes_other_than_the_listing_are_refused(genuine: tuple[Synthetic, Image], tmp_path: Path) -> None:
    stack, image = genuine

    def replace(members: Members) -> Members:
        n, info = tiny_a_module(members)
        payload = b"import pathlib; pathlib.Path('MARKER').write_text('ran')\n"
        info.size = len(members[n][1])  # the same size as listed: only the hash tells
        members[n] = (info, payload[: info.size].ljust(info.size, b"#"))
        return members

    refused(stack, image, tmp_path / "node", image.craft(image.layer_of("tiny-a"), replace), "does not match the sha256")


def _forge(members: Members, payload: bytes, extra: tuple[str, bytes] | None = None) -> tuple[Members, str]:
    """Replace tiny_a's module with ``payload`` and rewrite the entry's listing to match (and add ``extra``):
    returns the members and the forged content digest."""
    n, info = tiny_a_module(members)
    info = file_info(info.name, payload)
    members[n] = (info, payload)
    if extra is not None:
        members.append((file_info(extra[0], extra[1]), extra[1]))
    meta_at = next(k for k, (i, _) in enumerate(members) if "/.immutable-installer/entries/" in i.name)
    meta = json.loads(members[meta_at][1])
    rel = info.name.split("/", 2)[2]
    files = [[f[0], record_hash(payload), len(payload)] if f[0] == rel else f for f in meta["files"]]
    if extra is not None:
        files.append([extra[0].split("/", 2)[2], record_hash(extra[1]), len(extra[1])])
    meta["files"] = sorted(files)
    meta["content_digest"] = entry_digest(meta["files"], meta["executables"])
    data = json.dumps(meta).encode()
    members[meta_at] = (file_info(members[meta_at][0].name, data), data)
    return sorted(members, key=lambda m: m[0].name), meta["content_digest"]


PAYLOAD = b"import pathlib; pathlib.Path('MARKER').write_text('ran')\n"


def test_a_forged_listing_must_give_the_digest_the_image_names(genuine: tuple[Synthetic, Image],
                                                              tmp_path: Path) -> None:
    stack, image = genuine
    digest = image.craft(image.layer_of("tiny-a"), lambda m: _forge(m, PAYLOAD)[0])
    refused(stack, image, tmp_path / "node", digest, "does not give the content digest the image names")


def test_a_consistent_forgery_is_refused_by_the_record_beside_the_manifest(genuine: tuple[Synthetic, Image],
                                                                           tmp_path: Path) -> None:
    """Listing, layer and annotations all agree: the images record committed beside the manifest does not."""
    stack, image = genuine
    forged: dict[str, str] = {}

    def mutate(members: Members) -> Members:
        out, forged["digest"] = _forge(members, PAYLOAD)
        return out

    n = image.layer_of("tiny-a")
    digest = image.craft(n, mutate, lambda a: a.update({f"{ANN}.content-digests": forged["digest"]}))
    refused(stack, image, tmp_path / "node", digest, "in the images record beside the manifest")


def test_start_up_code_the_scan_facts_hide_is_refused(genuine: tuple[Synthetic, Image], tmp_path: Path) -> None:
    """With no record to compare with, a forged entry adding a listed, hashed `.pth` still carries scan facts
    that do not name it: refused before the scan could be fooled."""
    stack, image = genuine
    record = stack.root / "dependencies.images.json"
    saved = record.read_bytes()
    record.unlink()
    forged: dict[str, str] = {}

    def mutate(members: Members) -> Members:
        out, forged["digest"] = _forge(members, b"", (f"{SITE}/aaa.pth",
                                                      b"import os; os.system('touch MARKER')\n"))
        return out

    try:
        n = image.layer_of("tiny-a")
        digest = image.craft(n, mutate, lambda a: a.update({f"{ANN}.content-digests": forged["digest"]}))
        refused(stack, image, tmp_path / "node", digest, "not what its scan facts describe")
    finally:
        record.write_bytes(saved)


def test_an_entry_for_a_wheel_the_manifest_does_not_pin_is_refused(genuine: tuple[Synthetic, Image],
                                                                  tmp_path: Path) -> None:
    stack, image = genuine
    n = image.layer_of("tiny-a")
    digest = image.craft(n, annotations=lambda a: a.update({f"{ANN}.entries": f"{TAG}-" + "e" * 64}))
    refused(stack, image, tmp_path / "node", digest, "does not pin")


def test_an_image_for_another_interpreter_is_refused(genuine: tuple[Synthetic, Image], tmp_path: Path) -> None:
    stack, image = genuine
    digest = image.craft(0, image_annotations=lambda a: a.update({f"{ANN}.interpreter": OTHER_TAG}))
    refused(stack, image, tmp_path / "node", digest, f"the manifest needs {TAG}")


def test_bytes_that_do_not_match_their_digest_are_refused(genuine: tuple[Synthetic, Image], tmp_path: Path) -> None:
    """A layout (or a registry) serving other bytes under a digest: the layer, then the manifest."""
    stack, image = genuine
    n = image.layer_of("tiny-a")
    digest = image.craft(n, lambda m: m)  # a fresh copy of the layer to tamper with
    layer = json.loads(image.blob(digest))["layers"][n]
    path = image.layout / "blobs" / "sha256" / layer["digest"].split(":")[1]
    data = bytearray(path.read_bytes())
    data[600] ^= 1  # a byte inside a file's contents or a header
    path.write_bytes(bytes(data))
    refused(stack, image, tmp_path / "node", digest, "refused")
    manifest = image.layout / "blobs" / "sha256" / digest.split(":")[1]
    manifest.write_bytes(manifest.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2'))
    refused(stack, image, tmp_path / "node2", digest, "hashes to")


def test_a_pull_killed_at_any_point_leaves_the_store_consistent(tmp_path: Path) -> None:
    """SIGKILL while a layer is being written into the store: no entry appears half-written, `store verify`
    passes, and the next pull completes."""
    big = {"big_pkg/__init__.py": "", **{f"big_pkg/data{i}.bin": os.urandom(1 << 20).hex() for i in range(24)}}
    stack = Synthetic(tmp_path / "a", extra={"big-pkg": big})
    stack.install()
    layout = tmp_path / "layout"
    pushed = cli("push", f"oci:{layout}:cpu", "--venv", str(stack.target), "--manifest", str(stack.manifest_path),
                 "--json", cwd=stack.root)
    digest = json.loads(pushed.stdout.splitlines()[-1])["digest"]
    node = tmp_path / "node"
    node.mkdir()
    args = [sys.executable, "-m", "immutable_installer", "pull", f"oci:{layout}@{digest}", "--manifest",
            str(stack.manifest_path), "--store", str(node / "store"), "--variant", "cpu"]
    killed_while_writing = 0
    for _ in range(3):
        proc = subprocess.Popen(args, cwd=node, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        staging = node / "store" / "tmp"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:  # until a layer is being written into it
            if staging.is_dir() and any(p.name.startswith("pull-") and any(p.rglob("*.bin"))
                                        for p in staging.iterdir()):
                break
            time.sleep(0.01)
        if proc.poll() is None:
            killed_while_writing += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = Store(node / "store")
        assert store.entry_keys() == [] and store.verify() == [], "nothing enters before every layer matched"
    assert killed_while_writing == 3, "each kill landed while a layer was being written"
    done = subprocess.run(args, cwd=node, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    store = Store(node / "store")
    assert len(store.entry_keys()) == 7 and store.verify() == []
    assert not [p for p in (node / "store" / "tmp").iterdir() if p.name.startswith("pull-")], \
        "the killed pulls' staging is gone"


def test_a_layout_without_the_image_is_one_line(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path / "a")
    missing = cli("install", "--from", f"oci:{tmp_path / 'nothing'}@sha256:{'0' * 64}", "--manifest",
                  str(stack.manifest_path), "--venv", str(tmp_path / ".venv"), "--store", str(tmp_path / "store"),
                  cwd=tmp_path)
    assert missing.returncode == 2 and "not an OCI image layout" in missing.stderr
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "store").exists()
