"""Verify stage: the verifier, and ``probe.py``, the stdlib-only script it runs *inside* the target.

It may import ``core``, ``runner``, ``dists`` and the constants of ``shims``; never wheelhouse, lock,
generation or cli. ``probe.py`` imports nothing from ``immutable_installer`` at all.
"""
