"""Generation stage: the engine that builds a generation (a fresh virtualenv linked from the store), the
generations of a target and the atomic switch.

It composes the stages below it (``core``, ``runner``, ``wheelhouse``, ``store``, ``verify``, ``shims``); never
lock, the pipeline or cli.
"""
