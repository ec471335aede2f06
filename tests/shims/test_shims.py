"""Runtime shims inside real environments built by the engine, run through the environment's own python."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import Synthetic, target_env


def test_absent_blocks_import_find_spec_and_submodules(built: Synthetic) -> None:
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('torchao') is None\n"
        "assert importlib.util.find_spec('triton') is None\n"
        "for name in ('torchao', 'triton.language', 'bitsandbytes'):\n"
        "    try:\n        __import__(name)\n    except ModuleNotFoundError as e:\n        print('blocked', name)\n"
        "    else:\n        raise SystemExit('imported ' + name)\n"
        "import importlib.metadata as md; print('dist-info', md.version('torchao'))\n"
    )
    proc = built.run_py(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("blocked") == 3 and "dist-info 0.6" in proc.stdout


def test_uncaught_import_error_carries_our_message(built: Synthetic) -> None:
    proc = built.run_py("import torchao")
    assert proc.returncode == 1
    assert "ModuleNotFoundError" in proc.stderr
    assert "'torchao' is blocked in this environment by immutable-installer: breaks transformers" in proc.stderr


def test_sentinel_removed_is_restored_with_a_clear_message(built: Synthetic) -> None:
    code = (
        "import sys\n"
        "del sys.modules['torchao']\n"
        "try:\n    import torchao\nexcept ModuleNotFoundError as e:\n    print('MSG', e)\n"
        "print('SENTINEL', sys.modules.get('torchao', 'gone') is None)\n"
    )
    proc = built.run_py(code)
    assert "MSG 'torchao' is blocked in this environment by immutable-installer" in proc.stdout, proc.stderr
    assert "SENTINEL True" in proc.stdout


@pytest.mark.parametrize("imported_first", [False, True])
def test_find_spec_never_raises_without_the_sentinel(built: Synthetic, imported_first: bool) -> None:
    """torchao's dist-info and files are installed in the synthetic stack: a probe after the sentinel was
    popped must still say None (not raise, not find the real package), and an import still names the block."""
    code = (
        ("import importlib.util\n" if imported_first else "")
        + "import sys\n"
        "sys.modules.pop('torchao', None)\n"
        "import importlib.util\n"
        "print('SPEC', importlib.util.find_spec('torchao'), importlib.util.find_spec('torchao.sub'))\n"
        "print('SENTINEL', sys.modules.get('torchao', 'gone') is None)\n"
        "sys.modules.pop('torchao', None)\n"
        "try:\n    import torchao\nexcept ModuleNotFoundError as e:\n    print('MSG', e.name, e)\n"
        "print('OTHER', importlib.util.find_spec('tiny_a') is not None)\n"
    )
    proc = built.run_py(code)
    assert proc.returncode == 0, proc.stderr
    assert "SPEC None None" in proc.stdout and "SENTINEL True" in proc.stdout
    assert "MSG torchao 'torchao' is blocked in this environment by immutable-installer" in proc.stdout
    assert "OTHER True" in proc.stdout


@pytest.mark.parametrize("var", ["IMMUTABLE_INSTALLER_SHIMS_DISABLE"])
def test_shims_off_with_the_variable(built: Synthetic, var: str) -> None:
    proc = built.run_py("import torchao, triton.language; print('imported', torchao.__version__)", **{var: "1"})
    assert proc.returncode == 0 and "imported 0.6" in proc.stdout, proc.stderr


def test_status_reports_what_is_blocked(built: Synthetic) -> None:
    proc = built.run_py("import _immutable_blocker as b, json; print(json.dumps(b.status()))")
    import json

    status = json.loads(proc.stdout)
    assert status["active"] and set(status["blocked"]) == {"torchao", "triton", "bitsandbytes"}
    assert status["already_imported"] == []


def test_broken_config_never_stops_python(synthetic: Synthetic) -> None:
    synthetic.install()
    from immutable_installer.dists.installed import site_packages

    config = site_packages(synthetic.target.resolve()) / "_immutable_shims_config.py"
    config.write_text("this is not python (\n")
    for cache in config.parent.glob("__pycache__/_immutable_shims_config*"):
        cache.unlink()
    proc = synthetic.run_py("print('started')")
    assert proc.returncode == 0 and "started" in proc.stdout
    assert proc.stderr.count("immutable-installer shims disabled") == 1


def test_stub_mode(tmp_path: Path) -> None:
    stack = Synthetic(tmp_path, blocked=[{"name": "bitsandbytes", "mode": "stub", "reason": "placeholder"}])
    stack.install()
    code = (
        "import importlib.util, bitsandbytes as bnb\n"
        "assert bnb.__version__ == '0.0.0+blocked', bnb.__version__\n"
        "assert importlib.util.find_spec('bitsandbytes').origin == 'blocked'\n"
        "@bnb.jit\ndef f(x):\n    return x + 1\n"
        "@bnb.autotune(configs=[], key=['n'])\ndef g(x):\n    return x * 2\n"
        "assert f(1) == 2 and g(2) == 4\n"
        "bnb.nn.Linear8bitLt(3, 4).cuda()\n"
        "import bitsandbytes.functional as F; F.quantize(1)\n"
        "try:\n    bnb.__wrapped__\nexcept AttributeError:\n    print('dunder ok')\n"
    )
    proc = stack.run_py(code)
    assert proc.returncode == 0, proc.stderr
    assert "dunder ok" in proc.stdout


def test_shim_start_up_imports_only_sys_and_os(built: Synthetic) -> None:
    """Every module loaded at start with the shims on, minus those loaded with them off, is a shim module:
    the shims import nothing else (``sys`` and ``os`` are loaded by every start anyway). Blocked names are
    ``None`` sentinels in ``sys.modules``, not imports: they are left out."""
    code = "import sys, json; print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))"
    on = set(json.loads(built.run_py(code, PYTHONNOUSERSITE="1").stdout))
    off = set(json.loads(built.run_py(code, PYTHONNOUSERSITE="1", IMMUTABLE_INSTALLER_SHIMS_DISABLE="1").stdout))
    added = on - off
    assert "_immutable_blocker" in added and "_immutable_hf_patch" not in added  # the patcher loads lazily
    assert all(m.startswith("_immutable") for m in added), sorted(added)
    assert {"sys", "os"} <= off


def test_the_start_file_boots_the_shims_as_python_3_15_will(built: Synthetic) -> None:
    """PEP 829 (3.15+): a same-named .start file's entry points run instead of the .pth import lines, which
    3.18 stops running. Emulated with ``python -S`` (no site at all): resolve each entry point of our .start file
    the way site.py will (pkgutil.resolve_name), call it twice: the blocker is on, once."""
    from immutable_installer.dists.installed import site_packages

    site = site_packages(built.target.resolve())
    start = (site / "zz_immutable_installer.start").read_text()
    assert start.strip() == "_immutable_boot:boot"
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import pkgutil\n"
            f"for spec in {start.split()!r}:\n    pkgutil.resolve_name(spec)(); pkgutil.resolve_name(spec)()\n"
            "import importlib.util\nassert importlib.util.find_spec('torchao') is None\n"
            "try:\n    import torchao\nexcept ModuleNotFoundError:\n    print('blocked')\n"
            "print(sum(1 for f in sys.meta_path if type(f).__module__ == '_immutable_blocker'))\n")
    proc = subprocess.run([str(built.python()), "-S", "-c", code], capture_output=True, text=True,
                          env=target_env(PYTHONNOUSERSITE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["blocked", "1"]
