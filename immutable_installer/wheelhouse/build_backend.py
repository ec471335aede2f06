"""Stdlib-only script run *inside* a build sandbox by the build environment's python: one PEP 517 hook call.

``python build_backend.py HOOK BACKEND BACKEND_PATH_JSON OUT_DIR RESULT_FILE`` imports the backend (its in-tree
``backend-path`` first, as PEP 517 says), calls ``get_requires_for_build_wheel`` or ``build_wheel``, and writes
the answer as JSON to RESULT_FILE. It must not import ``immutable_installer``, which the build environment does
not have.
"""

import importlib
import json
import os
import sys
import traceback


def _backend(spec, backend_path):
    for folder in reversed(backend_path):
        sys.path.insert(0, os.path.abspath(folder))
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def main(argv):
    hook, spec, backend_path, out_dir, result_file = argv[1:6]
    result = {"ok": False}
    try:
        backend = _backend(spec, json.loads(backend_path))
        if hook == "get_requires_for_build_wheel":
            get = getattr(backend, "get_requires_for_build_wheel", None)
            result["value"] = list(get({}) if get else [])
        elif hook == "build_wheel":
            result["value"] = backend.build_wheel(out_dir, {}, None)
        else:
            raise ValueError(f"unknown hook {hook!r}")
        result["ok"] = True
    except BaseException as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()[-4000:]
    with open(result_file, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv)
