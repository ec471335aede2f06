"""Build stage: hardware detection, the engine that builds a generation, generations and the atomic switch.

It composes the stages below it: ``installer.core``, ``installer.runner``, ``installer.wheelhouse``,
``installer.verify`` and ``installer.shims``; never lock or cli.
"""
