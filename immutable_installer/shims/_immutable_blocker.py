"""Import blocker: keeps listed modules out of the environment (stdlib only, imports sys and os).

``absent`` (default): ``sys.modules[name] = None``, so ``import name`` raises ModuleNotFoundError and
``importlib.util.find_spec(name)`` returns None: transformers' ``is_torchao_available()`` and torch's
``has_triton_package()`` say False even if the package is on disk. A backstop finder first on
``sys.meta_path`` restores the sentinel if something removed it and raises a clear message on import.
``importlib.util.find_spec`` itself is guarded too (when ``importlib.util`` is first imported, so start-up
pays nothing): an availability probe after ``sys.modules.pop(name)`` gets None, never an exception, even when
the package is installed (the finder alone cannot stop a later finder from finding it).

``stub`` (opt-in): a placeholder module with a valid spec whose attributes and calls never raise and whose
decorators hand the function back. Never for triton when torch is present (the manifest refuses it).
"""

import sys

_BLOCKED = {}
_ALREADY_IMPORTED = []
_FINDER = None
_GUARDED = []


def _message(name, reason):
    text = "'%s' is blocked in this environment by immutable-installer" % name
    return text + (": " + reason if reason else "")


class BlockFinder:
    """First on sys.meta_path: answers for blocked names only."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "importlib.util" and not _GUARDED:
            return _guard_on_load(fullname, path, target)
        top = fullname.partition(".")[0]
        entry = _BLOCKED.get(top)
        if entry is None:
            return None
        mode, reason = entry
        if mode == "stub":
            return _stub_spec(fullname)
        sys.modules[top] = None  # restore the sentinel that someone removed
        raise ModuleNotFoundError(_message(top, reason), name=fullname)

    def invalidate_caches(self):
        pass


# ------------------------------------------------------------------------------ importlib.util.find_spec
def _guard_find_spec(util):
    """Wrap ``util.find_spec``: a blocked ``absent`` name is None (and its sentinel restored)."""
    original = util.find_spec
    if getattr(original, "_immutable_guard", False):
        return

    def find_spec(name, package=None):
        top = name.partition(".")[0]
        entry = _BLOCKED.get(top)
        if entry is not None and entry[0] == "absent":
            sys.modules[top] = None
            return None
        return original(name, package)

    find_spec._immutable_guard = True
    find_spec.__wrapped__ = original
    find_spec.__doc__ = original.__doc__
    util.find_spec = find_spec
    _GUARDED.append(True)


def _guard_on_load(fullname, path, target):
    """The real spec of ``importlib.util``, whose loader guards ``find_spec`` right after executing it."""
    for finder in sys.meta_path:
        if finder is _FINDER or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(fullname, path, target)
        if spec is None:
            continue
        loader = spec.loader
        original = getattr(loader, "exec_module", None)
        if original is not None:
            def exec_module(module, _original=original):
                _original(module)
                try:
                    _guard_find_spec(module)
                except Exception:
                    pass

            try:
                loader.exec_module = exec_module
            except Exception:
                pass
        return spec
    return None


# ----------------------------------------------------------------------------------------------- stubs
class _Stub:
    """Attribute access and calls never raise; used as a decorator it returns the function unchanged."""

    __slots__ = ("_path",)

    def __init__(self, path):
        self._path = path

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Stub(self._path + "." + attr)

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]  # @triton.jit
        return _Stub(self._path + "()")  # @triton.autotune(...) -> a decorator stub

    def __repr__(self):
        return "<blocked stub %s>" % self._path

    def __bool__(self):
        return False


def _stub_module(name):
    import types
    from importlib.machinery import ModuleSpec

    class StubModule(types.ModuleType):
        def __getattr__(self, attr):
            if attr.startswith("__") and attr.endswith("__"):
                raise AttributeError(attr)
            return _Stub(name + "." + attr)

    module = StubModule(name)
    module.__spec__ = ModuleSpec(name, _StubLoader(), origin="blocked", is_package=True)
    module.__loader__ = module.__spec__.loader
    module.__path__ = []
    module.__file__ = None
    module.__version__ = "0.0.0+blocked"
    return module


class _StubLoader:
    def create_module(self, spec):
        return _stub_module(spec.name)

    def exec_module(self, module):
        pass


def _stub_spec(fullname):
    from importlib.machinery import ModuleSpec

    return ModuleSpec(fullname, _StubLoader(), origin="blocked", is_package=True)


# ------------------------------------------------------------------------------------------------ API
def install(blocked):
    """Apply ``{name: (mode, reason)}``; idempotent."""
    global _FINDER
    _BLOCKED.update(blocked)
    for name, (mode, _reason) in blocked.items():
        current = sys.modules.get(name, False)
        if current not in (False, None) and getattr(getattr(current, "__spec__", None), "origin", "") != "blocked":
            _ALREADY_IMPORTED.append(name)
        if mode == "stub":
            sys.modules[name] = _stub_module(name)
        else:
            sys.modules[name] = None
            for sub in [m for m in sys.modules if m.startswith(name + ".")]:
                sys.modules[sub] = None
    if _FINDER is None:
        _FINDER = BlockFinder()
        sys.meta_path.insert(0, _FINDER)
        _chain_excepthook()
    util = sys.modules.get("importlib.util")
    if util is not None:
        _guard_find_spec(util)


def _chain_excepthook():
    """An uncaught 'import of X halted; None in sys.modules' gets a note saying why X is blocked."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        late = None
        try:
            name = getattr(exc, "name", None) or ""
            top = name.partition(".")[0]
            if isinstance(exc, ModuleNotFoundError) and top in _BLOCKED:
                if hasattr(exc, "add_note"):  # 3.11+
                    exc.add_note(_message(top, _BLOCKED[top][1]))
                else:
                    late = _message(top, _BLOCKED[top][1])
        except Exception:
            pass
        previous(exc_type, exc, tb)
        if late:
            try:
                sys.stderr.write(late + "\n")
            except Exception:
                pass

    sys.excepthook = hook


def status():
    """What is blocked, how, and whether anything was imported before the block could apply."""
    return {
        "active": _FINDER is not None and _FINDER in sys.meta_path,
        "first_on_meta_path": bool(sys.meta_path) and sys.meta_path[0] is _FINDER,
        "blocked": {name: {"mode": mode, "reason": reason, "sentinel": sys.modules.get(name, False) is None
                           if mode == "absent" else name in sys.modules}
                    for name, (mode, reason) in sorted(_BLOCKED.items())},
        "already_imported": list(_ALREADY_IMPORTED),
    }
