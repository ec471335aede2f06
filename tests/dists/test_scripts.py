"""Per-generation scripts match what pip's own distlib writes, for short, long and spaced interpreter paths."""

from __future__ import annotations

import pytest
from pip._vendor.distlib.scripts import ScriptMaker

from immutable_installer.dists.scripts import (
    console_shebang,
    fixed_shebang,
    rewrite_record,
    rewrite_script,
    script_kind,
)


@pytest.mark.parametrize("python", ["/v/bin/python", "/" + "x" * 140 + "/bin/python", "/with space/bin/python"])
def test_console_shebang_is_distlibs(python: str) -> None:
    maker = ScriptMaker(None, None)
    exe = f'"{python}"' if " " in python else python
    assert console_shebang(python) == maker._build_shebang(exe.encode(), b"")


def test_script_kind_and_rewrite_round_trip() -> None:
    body = b"# -*- coding: utf-8 -*-\nimport sys\n"
    long_py = "/" + "y" * 150 + "/bin/python"
    for make, kind in ((console_shebang, "console"), (fixed_shebang, "fixed")):
        content = make("/store/tmp/venv/bin/python") + body
        found = script_kind(content, "/store/tmp/venv/bin/python", entry_point=kind == "console")
        assert found is not None and found[0] == kind
        assert rewrite_script(content, kind, found[1], long_py) == make(long_py) + body
    assert script_kind(b"#!/bin/bash\necho hi\n", "/store/tmp/venv/bin/python", entry_point=False) is None
    assert console_shebang(long_py) != fixed_shebang(long_py)  # why the kind matters


def test_rewrite_record_keeps_every_other_byte() -> None:
    text = "a/b.py,sha256=x,1\r\n../../../bin/tool,sha256=old,10\r\nd/RECORD,,\r\n"
    out = rewrite_record(text, {"../../../bin/tool": b"new"})
    lines = out.split("\r\n")
    assert lines[0] == "a/b.py,sha256=x,1" and lines[2] == "d/RECORD,,"
    assert lines[1].startswith("../../../bin/tool,sha256=") and lines[1].endswith(",3") and "old" not in lines[1]
