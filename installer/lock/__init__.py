"""Lock stage: resolve a spec into the frozen manifest, and export it as PEP 751 ``pylock.toml``.

It may import ``installer.core``, ``installer.runner`` and ``installer.wheelhouse`` (reachability checks and
wheel inspection); never build, verify or cli.
"""
