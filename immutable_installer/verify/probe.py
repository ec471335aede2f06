"""Stdlib-only probe executed *inside* the target environment; prints one JSON document.

It is run as a script by the target's own python as ``python -I -S -B probe.py '<json config>'``: no ``site``,
so no ``.pth`` file runs by itself. The probe adds site-packages to ``sys.path`` the way ``site`` does, reading
every ``.pth`` file's path lines, but runs the ``import`` lines only of the shims' own file and of those the
manifest allows: the shims are active exactly as a user's process has them, so what it sees is what the user
gets, and start-up code nobody allowed never runs here. It must not import ``immutable_installer`` (which is
never installed there) and must survive any failure of what it probes.
"""

import json
import os
import sys
import time


def _blocked(names):
    import importlib.util

    out = {}
    for name in names:
        entry = {}
        try:
            entry["find_spec_none"] = importlib.util.find_spec(name) is None
        except Exception as exc:  # ValueError when a module has no __spec__
            entry["find_spec_none"] = False
            entry["find_spec_error"] = "%s: %s" % (type(exc).__name__, exc)
        try:
            __import__(name)
            entry["import_error"] = None
        except ModuleNotFoundError as exc:
            entry["import_error"] = "ModuleNotFoundError: %s" % exc
        except Exception as exc:
            entry["import_error"] = "%s: %s" % (type(exc).__name__, exc)
            entry["wrong_error"] = True
        out[name] = entry
    return out


def _shims():
    out = {"blocker": None, "patcher": None}
    mod = sys.modules.get("_immutable_blocker")
    if mod is not None:
        out["blocker"] = mod.status()
    patch = sys.modules.get("_immutable_hf_patch")
    if patch is not None:
        out["patcher"] = patch.status()
    return out


def _torch(alloc_mb):
    info = {"ok": False}
    started = time.perf_counter()
    try:
        import torch
    except Exception as exc:
        info["error"] = "%s: %s" % (type(exc).__name__, exc)
        return info
    info.update(ok=True, version=torch.__version__, built_cuda=getattr(torch.version, "cuda", None))
    try:
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["device_count"] = torch.cuda.device_count() if info["cuda_available"] else 0
        devices = []
        for i in range(info["device_count"]):
            cap = torch.cuda.get_device_capability(i)
            devices.append({"name": torch.cuda.get_device_name(i), "capability": "%d.%d" % cap})
        info["devices"] = devices
        if info["cuda_available"]:
            driver = None
            try:
                driver = torch._C._cuda_getDriverVersion()
            except Exception:
                pass
            info["driver_cuda"] = "%d.%d" % (driver // 1000, (driver % 1000) // 10) if driver else None
            if alloc_mb > 0:
                n = alloc_mb * 1024 * 1024 // 4
                block = torch.empty(n, dtype=torch.float32, device="cuda")
                block.fill_(1.0)
                total = float(block.sum().item())
                del block
                torch.cuda.empty_cache()
                info["alloc_ok"] = total == float(n)
    except Exception as exc:
        info["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    info["seconds"] = round(time.perf_counter() - started, 3)
    return info


def _transformers(smoke, use_cuda):
    info = {"ok": False}
    try:
        from transformers import PreTrainedModel  # noqa: F401  the import the mission is about
    except Exception as exc:
        info["error"] = "%s: %s" % (type(exc).__name__, exc)
        return info
    import transformers

    info.update(ok=True, version=transformers.__version__)
    if not smoke:
        return info
    try:
        import torch
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=37, max_position_embeddings=16)
        model = BertModel(config).eval()
        ids = torch.tensor([[1, 5, 7, 9]])
        if use_cuda:
            model, ids = model.cuda(), ids.cuda()
        with torch.no_grad():
            out = model(input_ids=ids)
        info["forward_shape"] = list(out.last_hidden_state.shape)
        info["forward_device"] = str(out.last_hidden_state.device)
        info["forward_ok"] = info["forward_shape"] == [1, 4, 32]
    except Exception as exc:
        info["forward_ok"] = False
        info["forward_error"] = "%s: %s" % (type(exc).__name__, exc)
    return info


def _imports(names):
    out = {}
    for name in names:
        started = time.perf_counter()
        try:
            __import__(name)
            out[name] = {"ok": True, "seconds": round(time.perf_counter() - started, 3)}
        except Exception as exc:
            out[name] = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
    return out


def _site(folder, run_pth):
    """site-packages on sys.path, as ``site.addsitedir`` puts it, with import lines run only for ``run_pth``."""
    if not folder or not os.path.isdir(folder):
        return
    sys.path.append(folder)
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".pth") or name.startswith("."):
            continue
        encoding = "utf-8-sig" if sys.version_info >= (3, 13) else "utf-8"  # as site reads them: a BOM is
        try:  # dropped from 3.13 on, before that it spoils the first line
            with open(os.path.join(folder, name), encoding=encoding) as fh:
                lines = fh.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                if name in run_pth:
                    try:
                        exec(line)
                    except Exception:
                        pass
                continue
            path = os.path.join(folder, line.rstrip())
            if os.path.exists(path) and path not in sys.path:
                sys.path.append(path)


def main(argv):
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    allowed = config.get("run_pth", [])
    _site(config.get("site"), allowed)
    if any(name.split(".", 1)[0] == "sitecustomize" for name in allowed):
        try:  # allowed by name: it runs at every start, so here too
            import sitecustomize  # noqa: F401
        except Exception:
            pass
    result = {
        "python": "%d.%d.%d" % sys.version_info[:3],
        "implementation": sys.implementation.name,
        "prefix": sys.prefix,
        "blocked": _blocked(config.get("blocked", [])),
        "shims": _shims(),
    }
    if config.get("torch", True):
        result["torch"] = _torch(int(config.get("gpu_alloc_mb", 0)))
    if config.get("transformers", True):
        result["transformers"] = _transformers(config.get("smoke", True), config.get("use_cuda", False))
    result["imports"] = _imports(config.get("imports", []))
    result["secondary_imports"] = _imports(config.get("secondary_imports", []))
    sys.stdout.write("\n@@PROBE@@" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv)
    # The report is complete: leave without the interpreter's teardown. With torch and transformers loaded,
    # finalization (module teardown, garbage collection, library destructors) takes 1.1-1.4 s and checks
    # nothing the report says; a user's program pays it once at its own exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
