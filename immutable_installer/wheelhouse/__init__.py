"""Wheelhouse stage: fetch and download the pinned wheel files, inspect wheels, and scan them before install.

It owns the network (``fetch``) and reading wheel archives. It may import ``immutable_installer.core`` and
``immutable_installer.runner``; it never imports lock, build, verify or cli.
"""
