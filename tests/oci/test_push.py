"""`push`, `pull` and `install --from` against a real registry (Debian's docker-registry on 127.0.0.1), read back
by tools nobody here wrote (skopeo, umoci)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import RegistryServer, Synthetic, cli, make_wheel, manifest_data, write_json
from immutable_installer.oci.client import UPLOAD_ATTEMPTS
from immutable_installer.store.entries import Store

pytestmark = pytest.mark.registry
PYTHON = f"python{sys.version_info.major}.{sys.version_info.minor}"  # the interpreter the stacks are built for


def push(stack: Synthetic, ref: str, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = ["push", ref, "--venv", str(stack.target), "--manifest", str(stack.manifest_path), "--json", *extra]
    if env is None:
        return cli(*args, cwd=stack.root)
    return subprocess.run([sys.executable, "-m", "immutable_installer", *args], cwd=stack.root, env=env,
                          capture_output=True, text=True, timeout=600)


def result(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def machine_b(stack: Synthetic, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Another machine: an empty store, no wheelhouse, only the committed manifest (and its images record)."""
    root.mkdir(parents=True, exist_ok=True)
    return cli("install", *args, "--manifest", str(stack.manifest_path), "--venv", str(root / ".venv"),
               "--store", str(root / "store"), "--wheelhouse", str(root / "wheelhouse"), "--variant", "cpu",
               "--json", cwd=root)


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=300)


def test_push_then_install_from_on_a_machine_with_nothing(tmp_path: Path, registry: RegistryServer) -> None:
    stack = Synthetic(tmp_path / "a")
    stack.install()
    pushed = result(push(stack, f"{registry.host}/ml/stack:cpu"))
    digest = pushed["digest"]
    assert pushed["reference"] == f"{registry.host}/ml/stack@{digest}"
    kinds = [layer["what"] for layer in pushed["layers"]]
    assert kinds == ["entries"] * 6 + ["generation"] and all(layer["uploaded"] for layer in pushed["layers"])
    record = json.loads((stack.root / "dependencies.images.json").read_text())
    assert record["images"][0]["digest"] == digest and len(record["entries"]) == 6
    inspected = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/ml/stack:cpu").stdout)
    assert inspected["Digest"] == digest and len(inspected["Layers"]) == 7
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/ml/stack:cpu").stdout)
    assert raw["annotations"]["io.github.immutable-installer.variant"] == "cpu"
    assert all("io.github.immutable-installer.entries" in layer["annotations"] for layer in raw["layers"][:-1])

    node = machine_b(stack, tmp_path / "b", "--from", f"{registry.host}/ml/stack@{digest}")
    done = result(node)
    here_verified = json.loads(cli("verify", "--venv", str(stack.target), "--json", cwd=stack.root).stdout)
    assert done["changed"] and done["verify"]["ok"] and done["fingerprint"] == here_verified["fingerprint"]
    assert not (tmp_path / "b" / "wheelhouse").exists() or not list((tmp_path / "b" / "wheelhouse").iterdir()), \
        "no wheel was needed"
    here, there = Store(stack.store), Store(tmp_path / "b" / "store")
    assert {k: here.load(k).content_digest for k in here.entry_keys()} == \
        {k: there.load(k).content_digest for k in there.entry_keys()}
    assert cli("store", "verify", "--store", str(tmp_path / "b" / "store"), cwd=tmp_path).returncode == 0
    events = [json.loads(line) for line in node.stdout.splitlines()]
    assert not any(e.get("name") == "store" for e in events if e["event"] == "phase"), "nothing compiled on B"


def test_a_second_push_uploads_nothing_and_a_changed_package_uploads_only_its_layer(
        tmp_path: Path, registry: RegistryServer) -> None:
    stack = Synthetic(tmp_path / "a")
    stack.install()
    first = result(push(stack, f"{registry.host}/ml/stack:one"))
    stored = registry.stored_bytes()
    again = result(push(stack, f"{registry.host}/ml/stack:one"))
    assert again["digest"] == first["digest"] and again["uploaded_bytes"] == 0
    assert registry.stored_bytes() == stored
    # the same stack with one package at another version: one entry layer and the top layer are new
    changed = tmp_path / "c"
    data = json.loads(stack.manifest_path.read_text())
    newer = make_wheel(stack.house, "tiny-b", "1.1")
    from conftest import sha256

    for package in data["packages"]:
        if package["name"] == "tiny-b":
            package["version"] = "1.1"
            package["files"][0].update(filename=newer.name, sha256=sha256(newer), size=newer.stat().st_size)
    changed.mkdir()
    manifest = write_json(changed / "dependencies.json", data)
    assert cli("install", "--skip-wheelhouse", "--manifest", str(manifest), "--wheelhouse", str(stack.house),
               "--venv", str(changed / ".venv"), "--store", str(stack.store), "--variant", "cpu",
               cwd=changed).returncode == 0
    before = registry.stored_bytes()
    second = result(cli("push", f"{registry.host}/ml/stack:two", "--venv", str(changed / ".venv"), "--manifest",
                        str(manifest), "--json", cwd=changed))
    uploaded = [layer for layer in second["layers"] if layer["uploaded"]]
    assert [layer["what"] for layer in uploaded] == ["entries", "generation"]
    assert uploaded[0]["entries"][0].endswith(sha256(newer))
    shared = {x["digest"] for x in first["layers"]} & {x["digest"] for x in second["layers"]}
    assert len(shared) == 5, "every other entry's layer is the same blob"
    grown = registry.stored_bytes() - before
    assert sum(x["size"] for x in uploaded) <= grown <= sum(x["size"] for x in uploaded) + 8192  # + config, manifest


def test_the_same_entries_give_the_same_layers_from_another_machine(tmp_path: Path, registry: RegistryServer) -> None:
    one, other = Synthetic(tmp_path / "a"), Synthetic(tmp_path / "x" / "somewhere-else")
    one.install()
    other.install()
    env = {**os.environ, "IMMUTABLE_INSTALLER_CACHE": str(tmp_path / "other-cache")}  # nothing cached there
    a = result(push(one, f"{registry.host}/a/stack:cpu"))
    b = result(push(other, f"{registry.host}/b/stack:cpu", env=env))
    assert [x["digest"] for x in a["layers"] if x["what"] == "entries"] == \
        [x["digest"] for x in b["layers"] if x["what"] == "entries"]


def test_a_tag_is_not_a_pin(tmp_path: Path, registry: RegistryServer) -> None:
    stack = Synthetic(tmp_path / "a")
    stack.install()
    digest = result(push(stack, f"{registry.host}/ml/stack:cpu", "--no-record"))["digest"]
    refused = machine_b(stack, tmp_path / "b", "--from", f"{registry.host}/ml/stack:cpu")
    assert refused.returncode == 2 and "a tag can move" in refused.stderr
    assert f"{registry.host}/ml/stack@{digest}" in refused.stderr, "the digest to pin is printed"
    assert not (tmp_path / "b" / ".venv").exists() and not (tmp_path / "b" / "store").exists()
    result(push(stack, f"{registry.host}/ml/stack:cpu"))  # now the record beside the manifest pins the tag
    assert result(machine_b(stack, tmp_path / "c", "--from", f"{registry.host}/ml/stack:cpu"))["verify"]["ok"]


def test_an_oci_layout_is_read_by_skopeo_and_umoci(tmp_path: Path, registry: RegistryServer) -> None:
    """`push oci:DIR`, `skopeo copy` between our layout and the registry, `umoci unpack` of what skopeo wrote:
    the rootfs holds the environment at the prefix, its scripts naming the image's interpreter."""
    stack = Synthetic(tmp_path / "a", extra={"tool-pkg": {
        "tool_pkg/__init__.py": "def main():\n    pass\n",
        "tool_pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\ntool = tool_pkg:main\n"}})
    stack.install()
    layout = tmp_path / "layout"
    digest = result(push(stack, f"oci:{layout}:cpu", "--prefix", "/opt/stack"))["digest"]
    copied = skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:cpu", f"docker://{registry.host}/ml/copy:cpu")
    assert copied.returncode == 0, copied.stderr
    back = skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/ml/copy:cpu", f"oci:{tmp_path / 'out'}:cpu")
    assert back.returncode == 0, back.stderr
    unpacked = subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'out'}:cpu", str(tmp_path / "bundle")],
                              capture_output=True, text=True)
    assert unpacked.returncode == 0, unpacked.stderr
    rootfs = tmp_path / "bundle" / "rootfs" / "opt" / "stack"
    assert (rootfs / "lib" / PYTHON / "site-packages" / "tiny_a" / "__init__.py").is_file()
    assert (rootfs / "bin" / "tool").read_text().startswith("#!/opt/stack/bin/python\n")
    assert os.readlink(rootfs / "bin" / "python") == f"/usr/local/bin/{PYTHON}"
    cfg = (rootfs / "pyvenv.cfg").read_text()
    assert "home = /usr/local/bin" in cfg and str(stack.root) not in cfg
    assert str(stack.root) not in (rootfs / "bin" / "activate").read_text()
    node = machine_b(stack, tmp_path / "b", "--from", f"oci:{layout}@{digest}")
    assert result(node)["verify"]["ok"]


def test_past_max_layers_small_entries_share_layers_and_still_pull(tmp_path: Path, registry: RegistryServer) -> None:
    stack = Synthetic(tmp_path / "a")
    stack.install()
    pushed = result(push(stack, f"{registry.host}/ml/stack:few", "--max-layers", "4"))
    assert len(pushed["layers"]) <= 4
    grouped = [x for x in pushed["layers"] if len(x["entries"]) > 1]
    assert grouped and sum(len(x["entries"]) for x in pushed["layers"]) == 6
    assert result(machine_b(stack, tmp_path / "b", "--from", f"{registry.host}/ml/stack@{pushed['digest']}"))[
        "verify"]["ok"]


@pytest.fixture
def guarded(tmp_path: Path) -> Any:
    server = RegistryServer(tmp_path / "guarded", auth=("fleet", "s3cr3t-registry-pw"))
    yield server
    server.close()


def test_credentials_from_the_container_auth_file_are_used_and_written_nowhere(tmp_path: Path, guarded: Any) -> None:
    import base64

    stack = Synthetic(tmp_path / "a")
    stack.install()
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_AUTH", "DOCKER_CONFIG"))}
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(tmp_path / "run"), XDG_CONFIG_HOME=str(home / ".config"))
    refused = push(stack, f"{guarded.host}/ml/stack:cpu", env=env)
    assert refused.returncode == 2 and "asks for credentials and none were found" in refused.stderr
    assert "Traceback" not in refused.stderr
    auth = tmp_path / "auth.json"
    token = base64.b64encode(b"fleet:s3cr3t-registry-pw").decode()
    auth.write_text(json.dumps({"auths": {guarded.host: {"auth": token}}}))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"auths": {guarded.host: {"auth": base64.b64encode(b"fleet:nope").decode()}}}))
    bad = push(stack, f"{guarded.host}/ml/stack:cpu", env={**env, "REGISTRY_AUTH_FILE": str(wrong)})
    assert bad.returncode == 2 and "refused the credentials" in bad.stderr
    pushed = result(push(stack, f"{guarded.host}/ml/stack:cpu", env={**env, "REGISTRY_AUTH_FILE": str(auth)}))
    node = tmp_path / "b"
    node.mkdir()
    got = subprocess.run([*_tool(), "install", "--from", f"{guarded.host}/ml/stack@{pushed['digest']}",
                          "--manifest", str(stack.manifest_path), "--venv", str(node / ".venv"), "--store",
                          str(node / "store"), "--variant", "cpu", "--debug"],
                         cwd=node, env={**env, "IMMUTABLE_INSTALLER_REGISTRY_USERNAME": "fleet",
                                        "IMMUTABLE_INSTALLER_REGISTRY_PASSWORD": "s3cr3t-registry-pw"},
                         capture_output=True, text=True, timeout=600)
    assert got.returncode == 0, got.stderr[-2000:]
    for text in (got.stdout, got.stderr, refused.stderr, bad.stderr):
        assert "s3cr3t-registry-pw" not in text and token not in text
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and p not in (auth, wrong)
              and not str(p).startswith(str(tmp_path / "guarded"))
              and (b"s3cr3t-registry-pw" in p.read_bytes() or token.encode() in p.read_bytes())]
    assert leaked == []


def _tool() -> list[str]:
    import sys

    return [sys.executable, "-m", "immutable_installer"]


def test_the_manifest_record_is_refused_when_damaged(tmp_path: Path, registry: RegistryServer) -> None:
    stack = Synthetic(tmp_path / "a")
    stack.install()
    result(push(stack, f"{registry.host}/ml/stack:cpu"))
    record = stack.root / "dependencies.images.json"
    data = json.loads(record.read_text())
    data["images"][0]["digest"] = "sha256:short"
    record.write_text(json.dumps(data))
    refused = machine_b(stack, tmp_path / "b", "--from", f"{registry.host}/ml/stack:cpu")
    assert refused.returncode == 2 and "images[0].digest" in refused.stderr and "dependencies.images.json" in refused.stderr


def test_push_without_a_generation_or_with_a_digest_is_one_line(tmp_path: Path, registry: RegistryServer) -> None:
    stack = Synthetic(tmp_path / "a")
    none = push(stack, f"{registry.host}/ml/stack:cpu")
    assert none.returncode == 2 and "no current generation" in none.stderr
    stack.install()
    pinned = push(stack, f"{registry.host}/ml/stack@sha256:{'0' * 64}")
    assert pinned.returncode == 2 and "names a tag, not a digest" in pinned.stderr
    data = manifest_data([])  # an unrelated manifest beside the generation: nothing recorded, said so
    other = write_json(tmp_path / "other.json", data)
    proc = cli("push", f"{registry.host}/ml/stack:cpu", "--venv", str(stack.target), "--manifest", str(other),
               cwd=stack.root)
    assert proc.returncode == 0 and "not recorded" in proc.stderr and not (tmp_path / "other.images.json").exists()


@pytest.mark.parametrize("pushed_before", [False, True], ids=["streamed", "layer-digest-known"])
def test_a_store_file_changed_since_it_was_built_is_not_pushed(tmp_path: Path, registry: RegistryServer,
                                                              pushed_before: bool) -> None:
    stack = Synthetic(tmp_path / "a")
    stack.install()
    env = {**os.environ, "IMMUTABLE_INSTALLER_CACHE": str(tmp_path / "cache")}  # this test's own layer digests
    if pushed_before:  # the layer's digest is known here: the upload names it at the start, not at the end
        assert push(stack, f"{registry.host}/ml/elsewhere:cpu", env=env).returncode == 0
    recorded = (stack.root / "dependencies.images.json").read_bytes() if pushed_before else b""
    store = Store(stack.store)
    entry = store.load(next(k for k in store.entry_keys() if "tiny_a" in str(store.load(k).meta["wheel"])))
    module = next(entry.root.rglob("tiny_a/__init__.py"))
    module.chmod(0o644)
    module.write_text("import os; os.system('touch MARKER')\n")
    repository = f"{registry.host}/ml/changed-{'known' if pushed_before else 'streamed'}"  # no other test's tags
    proc = push(stack, f"{repository}:cpu", env=env)
    assert proc.returncode == 4 and "does not match the sha256 its store entry recorded" in proc.stderr, proc.stderr
    assert f"failed {UPLOAD_ATTEMPTS} times" not in proc.stderr, "a changed file is not the network's fault: no retry"
    listed = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repository}"],
                            capture_output=True, text=True)
    assert "cpu" not in listed.stdout, "no image was written"
    record = stack.root / "dependencies.images.json"
    assert record.read_bytes() == recorded if pushed_before else not record.exists(), "nothing new recorded"
