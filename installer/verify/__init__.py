"""Verify stage: the verifier, and ``probe.py``, the stdlib-only script it runs *inside* the target.

It may import ``installer.core``, ``installer.runner`` and the constants of ``installer.shims``; never
wheelhouse, lock, build or cli. ``probe.py`` imports nothing from ``installer`` at all.
"""
