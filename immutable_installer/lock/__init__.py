"""Lock stage: resolve a spec into the frozen manifest, and export it as PEP 751 ``pylock.toml``.

It may import ``core``, ``runner``, ``dists`` and ``wheelhouse`` (reachability checks and wheel inspection);
never generation, verify or cli.
"""
