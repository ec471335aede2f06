"""What ``site`` executes from a ``.pth`` file: the lines starting with ``import`` and a space or tab.

Such lines run at every interpreter start (a known supply-chain vector); ``scan`` refuses wheels shipping them
and ``verify`` fails environments holding them, unless the manifest allows the file by name.
"""

from __future__ import annotations


def executable_pth_lines(text: str) -> list[str]:
    """The lines of a ``.pth`` file that ``site`` executes (CPython's ``site.addpackage`` rule; site decodes the
    file as ``utf-8-sig``, so a leading BOM does not hide the first line)."""
    text = text.removeprefix("\ufeff")
    return [line.rstrip() for line in text.splitlines() if line.startswith(("import ", "import\t"))]
