"""immutable-installer: deterministic, offline, atomic environments for PyTorch + transformers.

This module only carries the version: importing it must stay free (start-up speed, see docs/performance.md).
"""

__version__ = "0.2.0"
