"""transformers ``from_pretrained`` patcher (stdlib only; nothing is imported at start-up).

A post-import hook on ``sys.meta_path`` waits for the transformers modules that define ``from_pretrained``;
when one has executed, each owner's classmethod is wrapped so a default ``cache_dir`` (and, if configured,
``local_files_only=True``) is injected when the caller gave none. The wrapper wraps ``__func__``, so ``cls``
stays the calling subclass, and keeps ``__wrapped__``. ``apply()``, ``restore()`` and ``status()`` work at
run time. Off with CI=1, TRANSFORMERS_PATCH_DISABLE=1 or IMMUTABLE_INSTALLER_SHIMS_DISABLE=1;
STORAGE_FORCE_LOCAL=1 keeps the default local cache.
"""

import os
import sys

# module -> class names whose own from_pretrained gets wrapped ("*Auto*" = every class defining one)
OWNERS = {
    "transformers.modeling_utils": ("PreTrainedModel",),
    "transformers.configuration_utils": ("PreTrainedConfig", "PretrainedConfig"),
    "transformers.tokenization_utils_base": ("PreTrainedTokenizerBase",),
    "transformers.processing_utils": ("ProcessorMixin",),
    "transformers.image_processing_base": ("ImageProcessingMixin",),
    "transformers.feature_extraction_utils": ("FeatureExtractionMixin",),
    "transformers.generation.configuration_utils": ("GenerationConfig",),
    "transformers.video_processing_utils": ("BaseVideoProcessor",),
    "transformers.models.auto.auto_factory": ("_BaseAutoModelClass",),
    "transformers.models.auto.modeling_auto": ("*",),
    "transformers.models.auto.configuration_auto": ("AutoConfig",),
    "transformers.models.auto.tokenization_auto": ("AutoTokenizer",),
    "transformers.models.auto.processing_auto": ("AutoProcessor",),
    "transformers.models.auto.image_processing_auto": ("AutoImageProcessor",),
    "transformers.models.auto.feature_extraction_auto": ("AutoFeatureExtractor",),
    "transformers.models.auto.video_processing_auto": ("AutoVideoProcessor",),
    "transformers.pipelines": ("pipeline()",),
}
CACHE_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "TRANSFORMERS_CACHE")

_STATE = {"cache_dir": None, "local_files_only": False, "installed": False, "why_off": None}
_PATCHED = {}  # (module, owner) -> original attribute


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def disabled_reason():
    for var in ("IMMUTABLE_INSTALLER_SHIMS_DISABLE", "TRANSFORMERS_PATCH_DISABLE", "CI"):
        if _truthy(var):
            return "%s is set" % var
    return None


def _cache_dir():
    if _truthy("STORAGE_FORCE_LOCAL") or not _STATE["cache_dir"]:
        return None
    return os.path.expanduser(os.path.expandvars(_STATE["cache_dir"]))


def _inject(kwargs):
    cache = _cache_dir()
    if cache and kwargs.get("cache_dir") is None:
        kwargs["cache_dir"] = cache
    if _STATE["local_files_only"] and "local_files_only" not in kwargs:
        kwargs["local_files_only"] = True
    return kwargs


def _wrap_classmethod(owner, attr="from_pretrained"):
    import functools

    original = owner.__dict__[attr]
    func = original.__func__

    @functools.wraps(func)
    def from_pretrained(cls, *args, **kwargs):
        return func(cls, *args, **_inject(kwargs))

    from_pretrained._immutable_patched = True
    setattr(owner, attr, classmethod(from_pretrained))
    return original


def _wrap_pipeline(module):
    import functools

    original = module.__dict__["pipeline"]

    @functools.wraps(original)
    def pipeline(*args, **kwargs):
        model_kwargs = dict(kwargs.get("model_kwargs") or {})
        kwargs["model_kwargs"] = _inject(model_kwargs)
        return original(*args, **kwargs)

    pipeline._immutable_patched = True
    module.pipeline = pipeline
    return original


def _patch_module(name, module):
    for owner_name in OWNERS.get(name, ()):
        if owner_name == "pipeline()":
            if (name, "pipeline()") not in _PATCHED and callable(module.__dict__.get("pipeline")):
                _PATCHED[(name, "pipeline()")] = _wrap_pipeline(module)
            continue
        owners = ([v for k, v in sorted(vars(module).items()) if isinstance(v, type) and k.startswith("Auto")]
                  if owner_name == "*" else [module.__dict__.get(owner_name)])
        for owner in owners:
            if not isinstance(owner, type) or not isinstance(owner.__dict__.get("from_pretrained"), classmethod):
                continue
            key = (name, owner.__qualname__)
            if key in _PATCHED:
                continue
            func = owner.__dict__["from_pretrained"].__func__
            if getattr(func, "_immutable_patched", False):
                # transformers copied our wrapper into this class (auto_class_update's copy_func): it already
                # injects; remember the unwrapped original so restore() can undo it too
                _PATCHED[key] = (owner, classmethod(_innermost(func)))
                continue
            _PATCHED[key] = (owner, _wrap_classmethod(owner))


def _innermost(func):
    """Follow __wrapped__ through our wrappers (and copies of them) to the original function."""
    seen = 0
    while getattr(func, "_immutable_patched", False) and hasattr(func, "__wrapped__") and seen < 10:
        func = func.__wrapped__
        seen += 1
    return func


class PostImportHook:
    """Runs the patch right after a watched module executed; does nothing for other modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in OWNERS or _STATE["why_off"]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                loader = spec.loader
                original_exec = loader.exec_module

                def exec_module(module, _exec=original_exec, _name=fullname):
                    _exec(module)
                    try:
                        _patch_module(_name, module)
                    except Exception as exc:
                        sys.stderr.write("immutable-installer: transformers patch skipped: %s\n" % exc)

                loader.exec_module = exec_module
                return spec
            if spec is not None:
                return spec
        return None


def install(cache_dir, local_files_only):
    """Called at start-up: remember the settings, set HF_HUB_CACHE, add the hook (imports nothing)."""
    _STATE["cache_dir"] = cache_dir
    _STATE["local_files_only"] = bool(local_files_only)
    _STATE["why_off"] = disabled_reason()
    if _STATE["why_off"]:
        return
    cache = _cache_dir()
    if cache and not any(os.environ.get(v) for v in CACHE_VARS):
        os.environ["HF_HUB_CACHE"] = cache
    if not _STATE["installed"]:
        sys.meta_path.insert(1 if sys.meta_path and type(sys.meta_path[0]).__name__ == "BlockFinder" else 0,
                             PostImportHook())
        _STATE["installed"] = True


def apply():
    """Patch now every watched module that is already imported (e.g. after restore())."""
    _STATE["why_off"] = None
    for name in OWNERS:
        module = sys.modules.get(name)
        if module is not None:
            _patch_module(name, module)
    return status()


def restore():
    """Put every original method back."""
    for (module_name, owner_name), original in list(_PATCHED.items()):
        if owner_name == "pipeline()":
            module = sys.modules.get(module_name)
            if module is not None:
                module.pipeline = original
        else:
            owner, descriptor = original
            setattr(owner, "from_pretrained", descriptor)
        del _PATCHED[(module_name, owner_name)]
    _STATE["why_off"] = "restored"
    return status()


def status():
    """Whether the patcher is on (or why not), the cache it injects and which owners are patched."""
    return {
        "enabled": not _STATE["why_off"],
        "why_off": _STATE["why_off"],
        "cache_dir": _cache_dir(),
        "local_files_only": _STATE["local_files_only"],
        "patched": sorted("%s.%s" % key for key in _PATCHED),
    }
