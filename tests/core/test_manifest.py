"""The strict manifest loader: a corpus of malformed manifests, a fuzzer, round trips."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_wheel, manifest_data
from immutable_installer.core.errors import BlacklistedPin, ExitCode, ManifestError
from immutable_installer.core.manifest import load_manifest, parse_manifest
from immutable_installer.core.serialize import dump_manifest

Mutator = Callable[[dict[str, Any]], Any]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("wheels")
    b = make_wheel(d, "tiny-b", "1.0")
    a = make_wheel(d, "tiny-a", "2.0", requires=["tiny-b>=1.0"])
    return manifest_data([(b, {}), (a, {"requires": ["tiny-b>=1.0"], "group": "app"})])


def _set(path: list[Any], value: Any) -> Mutator:
    def mutate(d: dict[str, Any]) -> Any:
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return d
    return mutate


def _del(path: list[Any]) -> Mutator:
    def mutate(d: dict[str, Any]) -> Any:
        target = d
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return d
    return mutate


def _dup_package(d: dict[str, Any]) -> Any:
    d["packages"].append(copy.deepcopy(d["packages"][0]))
    return d


def _invert_order(d: dict[str, Any]) -> Any:
    d["packages"][0]["group"], d["packages"][1]["group"] = "app", "base"
    return d


def _groups_reversed(d: dict[str, Any]) -> Any:
    d["groups"] = list(reversed(d["groups"]))  # the group of tiny-a now installs before tiny-b's
    return d


def _unclosed(d: dict[str, Any]) -> Any:
    d["packages"][1]["requires_dist"].append("tiny-missing>=1")
    return d


def _blacklisted(d: dict[str, Any]) -> Any:
    d["blacklist"] = [{"name": "tiny_B", "reason": "test"}]
    return d


CASES: list[tuple[str, Mutator, str]] = [
    ("top-not-object", lambda d: [d], "expected an object"),
    ("schema-missing", _del(["schema_version"]), "schema_version"),
    ("schema-unknown", _set(["schema_version"], 3), "schema_version"),
    ("schema-string", _set(["schema_version"], "1"), "schema_version"),
    ("unknown-top-field", _set(["extra_field"], 1), "extra_field"),
    ("name-number", _set(["name"], 5), "name"),
    ("python-version-bad", _set(["python", "version"], "three"), "python.version"),
    ("python-impl-bad", _set(["python", "implementation"], "jython"), "python.implementation"),
    ("platforms-empty", _set(["platforms"], []), "platforms"),
    ("platform-env-missing", _del(["platforms", 0, "environment", "sys_platform"]),
     "platforms[0].environment.sys_platform"),
    ("index-not-url", _set(["indexes", "default"], "not a url"), "indexes.default"),
    ("default-index-unknown", _set(["default_index"], "nope"), "default_index"),
    ("variant-bad-name", _set(["variants", "gpu"], {"index": "default", "torch_packages": []}), "variants.gpu"),
    ("variant-cuda-missing", _set(["variants", "cu124"], {"index": "default", "torch_packages": []}),
     "variants.cu124.cuda"),
    ("variant-driver-bad", _set(["variants", "cu124"], {"index": "default", "torch_packages": [], "cuda": "12.4",
                                                        "min_driver": "new"}), "variants.cu124.min_driver"),
    ("default-variant-unknown", _set(["default_variant"], "cu999"), "default_variant"),
    ("groups-empty", _set(["groups"], []), "groups"),
    ("packages-not-array", _set(["packages"], {}), "packages"),
    ("package-missing-version", _del(["packages", 1, "version"]), "packages[1].version"),
    ("package-open-range", _set(["packages", 1, "version"], ">=2.0"), "packages[1].version"),
    ("package-name-not-canonical", _set(["packages", 1, "name"], "Tiny_A"), "packages[1].name"),
    ("package-group-unknown", _set(["packages", 1, "group"], "nope"), "packages[1].group"),
    ("package-order-negative", _set(["packages", 1, "order"], -1), "packages[1].order"),
    ("package-order-bool", _set(["packages", 1, "order"], True), "packages[1].order"),
    ("package-variant-unknown", _set(["packages", 1, "variants"], ["cu118"]), "packages[1].variants[0]"),
    ("package-index-unknown", _set(["packages", 1, "index"], "nope"), "packages[1].index"),
    ("requirement-invalid", _set(["packages", 1, "requires_dist"], ["tiny-b >>= 1"]), "packages[1].requires_dist[0]"),
    ("marker-invalid", _set(["packages", 1, "marker"], "os_name === 'x'"), "packages[1].marker"),
    ("files-empty", _set(["packages", 1, "files"], []), "packages[1].files"),
    ("sha-short", _set(["packages", 1, "files", 0, "sha256"], "abc"), "packages[1].files[0].sha256"),
    ("sha-upper", lambda d: _set(["packages", 1, "files", 0, "sha256"], d["packages"][1]["files"][0]["sha256"].upper())(d),
     "packages[1].files[0].sha256"),
    ("sha-number", _set(["packages", 1, "files", 0, "sha256"], 12), "packages[1].files[0].sha256"),
    ("filename-sdist", _set(["packages", 1, "files", 0, "filename"], "tiny_a-2.0.tar.gz"), "packages[1].files[0].filename"),
    ("filename-other-version", _set(["packages", 1, "files", 0, "filename"], "tiny_a-3.0-py3-none-any.whl"),
     "packages[1].files[0].filename"),
    ("size-zero", _set(["packages", 1, "files", 0, "size"], 0), "packages[1].files[0].size"),
    ("url-local-path", _set(["packages", 1, "files", 0, "url"], "file:///opt/wheels/x.whl"), "packages[1].files[0].url"),
    ("platform-unknown", _set(["packages", 1, "files", 0, "platforms"], ["win_amd64"]), "packages[1].files[0].platforms[0]"),
    ("duplicate-name", _dup_package, "pinned twice"),
    ("order-inversion", _invert_order, "comes before its dependency"),
    ("group-order-names-the-package", _groups_reversed,
     "tiny-a (group 'app', order 2) comes before its dependency tiny-b (group 'base'"),
    ("unclosed", _unclosed, "not closed"),
    ("version-conflict", _set(["packages", 1, "requires_dist"], ["tiny-b>=5"]), "packages[1].requires_dist[0]"),
    ("cuda-mode-bad", _set(["verify", "cuda"], "sometimes"), "verify.cuda"),
    ("block-mode-bad", _set(["shims", "blocked_modules"], [{"name": "triton", "mode": "hide"}]),
     "shims.blocked_modules[0].mode"),
    ("blacklist-reason-missing", _set(["blacklist"], [{"name": "torchao"}]), "blacklist[0].reason"),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), CASES, ids=[c[0] for c in CASES])
def test_malformed_manifest_names_the_path(base: dict[str, Any], case: str, mutate: Mutator, expected: str) -> None:
    data = mutate(copy.deepcopy(base))
    with pytest.raises(ManifestError) as info:
        parse_manifest(json.dumps(data).encode(), file="m.json")
    assert info.value.exit_code == ExitCode.USAGE
    assert expected in info.value.message, info.value.message
    assert "\n" not in info.value.message


def test_corpus_is_large_enough() -> None:
    assert len(CASES) + 3 >= 30


def test_non_utf8_truncated_and_empty(base: dict[str, Any]) -> None:
    raw = json.dumps(base).encode()
    for bad, words in [(b"\xff\xfe{}", "not UTF-8"), (raw[: len(raw) // 2], "invalid JSON"), (b"", "invalid JSON")]:
        with pytest.raises(ManifestError, match=words):
            parse_manifest(bad)


def test_blacklisted_pin_is_refused_with_exit_3(base: dict[str, Any]) -> None:
    with pytest.raises(BlacklistedPin) as info:
        parse_manifest(json.dumps(_blacklisted(copy.deepcopy(base))).encode())
    assert info.value.exit_code == ExitCode.BLACKLISTED
    assert "packages[0].name" in info.value.message


def test_stub_triton_refused_when_torch_pinned(tmp_path: Path) -> None:
    torch = make_wheel(tmp_path, "torch", "2.0.0")
    data = manifest_data([(torch, {})], blocked=[{"name": "triton", "mode": "stub", "reason": ""}])
    with pytest.raises(ManifestError, match="torch.compile"):
        parse_manifest(json.dumps(data).encode())


def test_valid_manifest_round_trips_byte_identically(base: dict[str, Any], tmp_path: Path) -> None:
    first = parse_manifest(json.dumps(base).encode())
    raw = dump_manifest(first)
    again = parse_manifest(raw)
    assert dump_manifest(again) == raw
    assert again.raw_sha256 != ""
    path = tmp_path / "m.json"
    path.write_bytes(raw)
    assert load_manifest(path).packages == first.packages


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path / "nope.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path_choice=st.integers(min_value=0, max_value=10_000), value=json_values)
def test_fuzz_any_field_replaced_never_crashes(base: dict[str, Any], path_choice: int, value: Any) -> None:
    data = copy.deepcopy(base)
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in list(node):
                slots.append((node, k))
                walk(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                slots.append((node, i))
                walk(node[i])

    walk(data)
    container, key = slots[path_choice % len(slots)]
    container[key] = value
    try:
        parse_manifest(json.dumps(data).encode())
    except ManifestError as exc:
        assert exc.exit_code in (ExitCode.USAGE, ExitCode.BLACKLISTED)
        assert exc.message


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_fuzz_random_bytes(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(raw)
