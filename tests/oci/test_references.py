"""Image references as people write them, and the ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from immutable_installer.core.errors import UsageError
from immutable_installer.oci.reference import LayoutReference, Reference, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:5000/ml/stack:cpu", Reference("127.0.0.1:5000", "ml/stack", "cpu")),
    (f"localhost/stack@{DIGEST}", Reference("localhost", "stack", None, DIGEST)),
    (f"ghcr.io/org/ml/stack:v1@{DIGEST}", Reference("ghcr.io", "org/ml/stack", "v1", DIGEST)),
    ("ubuntu", Reference("registry-1.docker.io", "library/ubuntu", "latest")),
    ("team/stack:cu130", Reference("registry-1.docker.io", "team/stack", "cu130")),
    ("oci:/srv/images:cpu", LayoutReference(Path("/srv/images"), "cpu")),
    (f"oci:images@{DIGEST}", LayoutReference(Path("images"), None, DIGEST)),
])
def test_references_as_the_container_tools_write_them(text: str, expected: object) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("127.0.0.1:5000/Stack:cpu", "lowercase"),
    ("127.0.0.1:5000/stack@md5:abc", "not a sha256 digest"),
    (f"127.0.0.1:5000/stack@{DIGEST[:-1]}", "not a sha256 digest"),
    ("127.0.0.1:5000/stack:bad/tag", "lowercase"),
    ("oci:", "no folder"),
])
def test_a_bad_reference_is_one_line_naming_it(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=why) as info:
        parse_reference(text)
    assert info.value.exit_code == 2 and text in info.value.message


def test_loopback_registries_are_spoken_to_over_plain_http() -> None:
    assert parse_reference("127.0.0.1:5000/a").loopback and parse_reference("localhost:5000/a").loopback  # type: ignore[union-attr]
    assert parse_reference("[::1]:5000/a").loopback  # type: ignore[union-attr]
    assert not parse_reference("registry.lan:5000/a").loopback  # type: ignore[union-attr]
