"""The one hasher: the manifest's hex form, RECORD's base64 form, and many files at once."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from immutable_installer.dists.hashing import file_record_digest, hash_files, record_digest, sha256_file


def test_both_forms_of_one_digest(tmp_path: Path) -> None:
    data = b"x" * 3_000_000  # more than one read chunk
    path = tmp_path / "f"
    path.write_bytes(data)
    digest = hashlib.sha256(data)
    assert sha256_file(path) == digest.hexdigest()
    expected = "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
    assert file_record_digest(path) == record_digest(data) == expected


def test_hash_files_keeps_order_and_names_a_vanished_file(tmp_path: Path) -> None:
    paths = []
    for i in range(20):
        paths.append(tmp_path / f"w{i}.whl")
        paths[-1].write_bytes(str(i).encode() * (i + 1))
    paths.insert(5, tmp_path / "gone.whl")
    got = hash_files(paths)
    assert got[5] is None
    assert [g for k, g in enumerate(got) if k != 5] == [hashlib.sha256(p.read_bytes()).hexdigest()
                                                         for p in paths if p.name != "gone.whl"]


def test_unreadable_record_digest_is_none(tmp_path: Path) -> None:
    assert file_record_digest(tmp_path) is None and file_record_digest(tmp_path / "missing") is None
