"""The lock input: one rule for variant names, shared with the manifest (a spec cannot resolve a variant the
manifest loader would then refuse)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO, cli
from immutable_installer.core.errors import SpecError
from immutable_installer.core.names import is_variant_name
from immutable_installer.core.spec import load_spec


@pytest.mark.parametrize("name", ["cpu", "cu126", "cu130", "rocm6.4"])
def test_build_names_are_variant_names(name: str) -> None:
    assert is_variant_name(name)


@pytest.mark.parametrize("name", ["gpu", "cuda", "cu13", "CPU", ""])
def test_other_names_are_not(name: str) -> None:
    assert not is_variant_name(name)


def test_a_spec_variant_the_manifest_would_refuse_is_refused_before_resolving(tmp_path: Path) -> None:
    text = (REPO / "metadata" / "requirements.toml").read_text()
    bad = re.sub(r"\[variants\.cu130\]", "[variants.gpu]", text)
    assert bad != text, "the reference spec has a cu130 variant to rename"
    spec = tmp_path / "requirements.toml"
    spec.write_text(bad.replace('default_variant = "cu130"', 'default_variant = "gpu"'))
    with pytest.raises(SpecError, match="variants.gpu") as err:
        load_spec(spec)
    assert "not a variant name" in str(err.value)
    proc = cli("lock", "--spec", str(spec), "-o", str(tmp_path / "m.json"), cwd=tmp_path)
    assert proc.returncode == 2 and "variants.gpu" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.json").exists()
