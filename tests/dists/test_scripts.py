"""Per-generation scripts match what pip's own distlib writes, for short, long and spaced interpreter paths;
Windows launchers keep the launcher and the zipped script and change only the interpreter line."""

from __future__ import annotations

import io
import zipfile
from importlib.resources import files

import pytest
from pip._vendor.distlib.scripts import ScriptMaker

from immutable_installer.dists.scripts import (
    console_shebang,
    fixed_shebang,
    launcher_shebang,
    rewrite_record,
    rewrite_script,
    windows_launcher,
)


@pytest.mark.parametrize("python", ["/v/bin/python", "/" + "x" * 140 + "/bin/python", "/with space/bin/python"])
def test_console_shebang_is_distlibs(python: str) -> None:
    maker = ScriptMaker(None, None)
    exe = f'"{python}"' if " " in python else python
    assert console_shebang(python) == maker._build_shebang(exe.encode(), b"")


def test_rewrite_round_trip() -> None:
    body = b"# -*- coding: utf-8 -*-\nimport sys\n"
    long_py = "/" + "y" * 150 + "/bin/python"
    for make, kind in ((console_shebang, "console"), (fixed_shebang, "fixed")):
        header = make("/store/tmp/venv/bin/python")
        content = header + body
        assert rewrite_script(content, {"kind": kind, "header": len(header)}, long_py) == make(long_py) + body
    assert console_shebang(long_py) != fixed_shebang(long_py)  # why the kind matters


def _zipped_main(content: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(content)) as zf:  # a zip is found from its end, whatever precedes it
        return zf.read("__main__.py")


@pytest.mark.parametrize("gui", [False, True])
def test_windows_launcher_is_installers_launcher_a_line_and_the_zipped_script(gui: bool) -> None:
    code = b"import sys\nfrom tool import main\nsys.exit(main())\n"
    content, info = windows_launcher(r"C:\store\tmp\x\Scripts\python.exe", code, gui=gui)
    launcher = (files("installer._scripts") / ("w64.exe" if gui else "t64.exe")).read_bytes()
    assert content.startswith(launcher) and info["start"] == len(launcher) and info["gui"] is gui
    line = content[len(launcher):len(launcher) + int(str(info["header"]))]
    assert line == (b"#!C:\\store\\tmp\\x\\Scripts\\pythonw.exe\n" if gui
                    else b"#!C:\\store\\tmp\\x\\Scripts\\python.exe\n")
    assert _zipped_main(content) == code
    assert windows_launcher(r"C:\store\tmp\x\Scripts\python.exe", code, gui=gui)[0] == content  # no timestamp


def test_windows_launcher_rewritten_for_a_generation_path_with_spaces() -> None:
    code = b"print('hi')\n"
    content, info = windows_launcher(r"C:\store\Scripts\python.exe", code, gui=False)
    generation = r"C:\Users\Ada Lovelace\ml app\.venv\Scripts\python.exe"
    out = rewrite_script(content, info, generation)
    start = int(str(info["start"]))
    assert out[:start] == content[:start]
    assert out[start:].startswith(b'#!"' + generation.encode() + b'"\n')  # quoted, as distlib does
    assert launcher_shebang(generation) == b'#!"' + generation.encode() + b'"\n'
    assert _zipped_main(out) == code


def test_rewrite_record_keeps_every_other_byte() -> None:
    text = "a/b.py,sha256=x,1\r\n../../../bin/tool,sha256=old,10\r\nd/RECORD,,\r\n"
    out = rewrite_record(text, {"../../../bin/tool": b"new"})
    lines = out.split("\r\n")
    assert lines[0] == "a/b.py,sha256=x,1" and lines[2] == "d/RECORD,,"
    assert lines[1].startswith("../../../bin/tool,sha256=") and lines[1].endswith(",3") and "old" not in lines[1]
