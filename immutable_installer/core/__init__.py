"""The core: the manifest and spec models, errors, events, names, tags, the install plan and the blacklist graph.

Everything here is data and rules: it reads at most the one file it is asked to load (and the variables that
name folders, core/paths.py) and never starts a process, opens a socket, or touches the terminal. It may import
only the standard library, ``packaging`` and other ``immutable_installer.core`` modules; every other stage builds
on it (enforced by tests/test_layers.py).
"""
