"""Names of the files every generation holds: the builder writes them, the verifier and status read them."""

import re
from pathlib import Path

RECEIPT = "installer-receipt.json"
TORCH_LOCK = ".torch_lock"
MANIFEST_COPY = "installer-manifest.json"  # the exact manifest bytes a generation was built from
# the generation's own name (g0007): in the rename switch mode the target *is* a generation's folder, and this
# is how the next run knows which one (generation/switching.py)
GENERATION_NAME = "installer-generation"
GENERATION_RE = re.compile(r"^g(\d{4,})$")
# where virtualenv makes the bare environment inside a new generation while the linking fills the generation;
# its files are moved up before anything else is written (generation/engine.py)
VENV_FOLDER = ".virtualenv"

# Every path the tool itself writes into a generation, as a wheel's installed path would name it (see
# dists/wheel.py): a wheel shipping one of them would overwrite the tool's file (or be overwritten by it), so
# the scan refuses it before anything is built (exit 6).
TOOL_DATA_FILES = (RECEIPT, TORCH_LOCK, MANIFEST_COPY, GENERATION_NAME, "constraints.txt", "pip.conf", "pyvenv.cfg")
_TOOL_SCRIPTS = re.compile(r"^(python[\d.]*w?|activate(\..+)?|activate_this\.py|deactivate(\..+)?)$", re.IGNORECASE)
_TOOL_SITE = re.compile(r"^(_immutable_[\w]*\.py|zz_immutable_installer\.(pth|start))$")


def tool_owned(installed: str) -> bool:
    """Whether a scheme-qualified installed path (``scripts/python``, ``data/pyvenv.cfg``, ``purelib/...``)
    is one the tool or the virtualenv writes into every generation."""
    scheme, _, rest = installed.partition("/")
    if scheme == "scripts":
        return _TOOL_SCRIPTS.match(rest) is not None
    if scheme == "data":
        return rest in TOOL_DATA_FILES
    if scheme == "purelib":
        return _TOOL_SITE.match(rest) is not None
    return False


def generation_name(folder: Path) -> str | None:
    """The name a generation folder carries (``installer-generation``), or None when it carries none."""
    try:
        name = (folder / GENERATION_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return name if GENERATION_RE.match(name) else None
