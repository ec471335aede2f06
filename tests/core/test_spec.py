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


def test_a_spec_needs_only_its_requirements(tmp_path: Path) -> None:
    """Every table left out takes what plain requirements get: a minimal spec is one line."""
    from immutable_installer.core.targets import host_python

    spec_file = tmp_path / "requirements.toml"
    spec_file.write_text('requirements = ["requests>=2"]\n')
    spec = load_spec(spec_file)
    assert spec.requirements == ("requests>=2",) and spec.python.version == host_python()
    assert [i.url for i in spec.indexes] == ["https://pypi.org/simple"] and spec.default_index == "pypi"
    assert spec.name_variant_after_torch and spec.imports_from_wheels and [g.name for g in spec.groups] == ["default"]


def test_what_is_missing_is_reported_at_once(tmp_path: Path) -> None:
    """A hand-written file is fixed in one go: every missing required field is named in one error."""
    from immutable_installer.core.errors import ManifestError
    from immutable_installer.core.manifest import manifest_from_data

    with pytest.raises(ManifestError) as err:
        manifest_from_data({"schema_version": 2, "name": "x"})
    for field in ("python", "platforms", "indexes", "default_index", "variants", "groups", "packages"):
        assert field in err.value.message
    spec_file = tmp_path / "requirements.toml"
    spec_file.write_text('name = "x"\n[lock]\nstrict = "yes"\n')
    with pytest.raises(SpecError, match="requirements"):
        load_spec(spec_file)


def test_the_lock_table_and_the_command_line_options(tmp_path: Path) -> None:
    from immutable_installer.core.spec import with_command_line

    spec_file = tmp_path / "requirements.toml"
    spec_file.write_text('requirements = ["hydra-core"]\n[lock]\nstrict = true\nbuild = ["Antlr4_Python3-Runtime"]\n')
    spec = load_spec(spec_file)
    assert spec.strict and spec.build == ("antlr4-python3-runtime",)
    spec = with_command_line(spec, verify_imports=["hydra", "google.protobuf"], allow_pth=["x.pth"],
                             build=[":all:"])
    assert spec.verify.imports == ("hydra", "google.protobuf") and not spec.imports_from_wheels
    assert spec.verify.allowed_pth == ("x.pth",) and spec.build == ("antlr4-python3-runtime", ":all:")
    for bad, option in ((dict(verify_imports=["not a module"]), "--verify-import"),
                        (dict(allow_pth=["../x.pth"]), "--allow-pth"), (dict(build=["no spaces"]), "--build")):
        with pytest.raises(SpecError) as err:
            with_command_line(spec, **bad)  # type: ignore[arg-type]
        assert option in err.value.message


def test_init_writes_a_complete_spec_that_loads_back(tmp_path: Path) -> None:
    proc = cli("init", "requests>=2", "./wheels/mine-1.0-py3-none-any.whl", "--allow-pth",
               "distutils-precedence.pth", "--build", "sdist-only", "-o", "metadata/requirements.toml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / "metadata" / "requirements.toml"
    text = written.read_text()
    for table in ("[python]", "[[platforms]]", "[indexes]", "[[groups]]", "[verify]", "[shims]", "[lock]"):
        assert table in text
    spec = load_spec(written)
    assert spec.requirements == ("requests>=2", "./wheels/mine-1.0-py3-none-any.whl")
    assert spec.verify.allowed_pth == ("distutils-precedence.pth",) and spec.build == ("sdist-only",)
    assert spec.name_variant_after_torch and spec.imports_from_wheels
    again = cli("init", "requests", "-o", "metadata/requirements.toml", cwd=tmp_path)
    assert again.returncode == 2 and written.read_text() == text  # never overwritten
