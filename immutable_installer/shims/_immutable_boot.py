"""Start-up entry of immutable-installer's runtime shims: imported by zz_immutable_installer.pth (Python <= 3.14),
or called as the entry point ``_immutable_boot:boot`` of zz_immutable_installer.start (PEP 829, 3.15+).

Runs at every interpreter start, so it must be cheap and must never raise: any error becomes one short
warning on stderr. IMMUTABLE_INSTALLER_SHIMS_DISABLE=1 turns every shim off.
"""

import os
import sys


def _truthy(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


_booted = False


def boot():
    """The PEP 829 entry point (``zz_immutable_installer.start``, Python 3.15+); a second call does nothing."""
    _boot()


def _boot():
    global _booted
    if _booted or _truthy("IMMUTABLE_INSTALLER_SHIMS_DISABLE"):
        return
    _booted = True
    try:
        import _immutable_blocker
        import _immutable_shims_config as config

        _immutable_blocker.install(config.BLOCKED)
        if config.PATCHER:
            import _immutable_hf_patch

            _immutable_hf_patch.install(config.MODEL_CACHE, config.LOCAL_FILES_ONLY)
    except Exception as exc:  # a shim must never stop python from starting
        try:
            sys.stderr.write("immutable-installer shims disabled: %s: %s\n" % (type(exc).__name__, exc))
        except Exception:
            pass


_boot()
