"""The modules a distribution is known by, from real-world wheel layouts (file lists as PyPI's wheels have them)."""

from __future__ import annotations

import pytest

from immutable_installer.dists.import_names import ImportNames, import_names

SO = ".cpython-311-x86_64-linux-gnu.so"


@pytest.mark.parametrize(("dist", "paths", "top_level", "expected"), [
    # auditwheel's vendored libraries are never modules
    ("scikit-learn", ["sklearn/__init__.py", "scikit_learn.libs/libgomp-a34b3233.so.1.0.0",
                      "scikit_learn-1.7.0.dist-info/METADATA"], None, ImportNames(("sklearn",), ())),
    ("pillow", ["PIL/__init__.py", "pillow.libs/libjpeg.so"], "PIL\n", ImportNames(("PIL",), ())),
    ("pyzmq", ["zmq/__init__.py", "pyzmq.libs/libzmq.so"], None, ImportNames(("zmq",), ())),
    ("psycopg2-binary", ["psycopg2/__init__.py", "psycopg2_binary.libs/libpq.so"], "psycopg2\n",
     ImportNames(("psycopg2",), ())),
    # the module named like the distribution is primary; the others are secondary (a failure is a warning)
    ("duckdb", ["duckdb/__init__.py", "adbc_driver_duckdb/__init__.py", f"_duckdb{SO}", "_duckdb-stubs/x.pyi"],
     None, ImportNames(("duckdb",), ("adbc_driver_duckdb",))),
    ("attrs", ["attr/__init__.py", "attrs/__init__.py"], None, ImportNames(("attrs",), ("attr",))),
    ("pyyaml", ["yaml/__init__.py", "_yaml/__init__.py"], None, ImportNames(("yaml",), ())),
    # namespace packages: the distribution's real subpackage
    ("protobuf", ["google/protobuf/__init__.py", "google/_upb/_message.abi3.so"], None,
     ImportNames(("google.protobuf",), ())),
    ("google-cloud-storage", ["google/cloud/storage/__init__.py", "google/cloud/storage/blob.py"], "google\n",
     ImportNames(("google.cloud.storage",), ())),
    # stray top-level folders and data never count
    ("oops", ["oops/__init__.py", "tests/__init__.py", "docs/conf.py", "oops-1.0.data/purelib/extra/__init__.py"],
     None, ImportNames(("oops",), ("extra",))),
    ("typing-extensions", ["typing_extensions.py"], None, ImportNames(("typing_extensions",), ())),
    ("cffi", ["cffi/__init__.py", f"_cffi_backend{SO}"], "_cffi_backend\ncffi\n", ImportNames(("cffi",), ())),
    # top_level.txt that names what the wheel does not install is ignored for that name
    ("stale", ["real/__init__.py"], "gone\nreal\n", ImportNames(("real",), ())),
    ("metadata-only", ["metadata_only-1.0.dist-info/METADATA"], None, ImportNames((), ())),
])
def test_import_names(dist: str, paths: list[str], top_level: str | None, expected: ImportNames) -> None:
    assert import_names(dist, paths, top_level) == expected


def test_a_namespace_of_modules_is_verified_through_its_largest_ones() -> None:
    paths = [f"google/api/{n}_pb2.py" for n in "abcdefgh"] + ["google/rpc/status_pb2.py"]
    found = import_names("googleapis-common-protos", paths)
    assert len(found.primary) == 1 and found.primary[0].startswith("google.")
    assert len(found.secondary) <= 5
