"""The docs name only what exists: every repository path, test name and command-line option in a code span of
README.md and docs/ is checked against the tree, the tests and the code (a renamed module or a dropped flag
fails here instead of misleading a reader)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from conftest import REPO

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "docs" / "reference").glob("*.md")])
PACKAGE = REPO / "immutable_installer"
# a path in a code span is the repository's when it starts with one of its folders (or a package's)
TOP = {"immutable_installer", "tests", "docs", "benchmarks", "metadata", ".ci", "wheelhouse"}
SUBPACKAGES = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
PATH = re.compile(r"(?<![\w/.:-])((?:\.ci|[\w-]+)/[\w./-]*[\w-](?:\.\w+)?)")
MODULE = re.compile(r"(?<![\w/.-])([\w-]+\.py)\b")  # a bare module name (`fill.py`)
TEST = re.compile(r"\b(test_\w+)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*[a-z0-9])(?![\w>-])")
# a span that is another program's command line names that program's options, not ours
OTHER_PROGRAMS = ("uv ", "pip ", "python -m pip ", "nvidia-smi ", "skopeo ", "umoci ", "docker ", "curl ", "git ",
                  "nix-build ")


def code_spans(text: str) -> list[str]:
    """Inline code and the lines of fenced blocks."""
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return inline + [line for block in fenced for line in block.splitlines()]


@cache
def code_text() -> str:
    """Every source the options could come from: the tool (its own options and the ones it passes to pip, uv,
    virtualenv), the benchmarks, the tests' helpers and the CI scripts."""
    files = [*PACKAGE.rglob("*.py"), *(REPO / "benchmarks").glob("*.py"), *(REPO / ".ci").rglob("*"),
             *(REPO / "tests").rglob("*.py")]
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files if p.is_file())


@cache
def cli_options() -> set[str]:
    import typer

    from immutable_installer.cli.app import app

    found = {"--help", "--verify", "--skip-wheelhouse"}

    def walk(command: object) -> None:
        for param in getattr(command, "params", []):
            found.update(param.opts, param.secondary_opts)
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    return found


@cache
def file_names() -> set[str]:
    return {p.name for folder in (PACKAGE, REPO / "tests", REPO / "benchmarks", REPO / ".ci") for p in folder.rglob("*")}


@cache
def known_test_names() -> set[str]:
    names = set()
    for path in (REPO / "tests").rglob("*.py"):
        names.add(path.stem)
        names.update(re.findall(r"def (test_\w+)", path.read_text(encoding="utf-8")))
    return names


def repository_path(token: str) -> bool:
    first = token.split("/", 1)[0]
    return first in TOP or first in SUBPACKAGES


def path_exists(token: str) -> bool:
    token = token.rstrip("/")
    return (REPO / token).exists() or (PACKAGE / token).exists()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_what_the_docs_name_exists(doc: Path) -> None:
    wrong = []
    for span in code_spans(doc.read_text(encoding="utf-8")):
        for token in PATH.findall(span):
            if repository_path(token) and not any(c in token for c in "<>*{}") and not path_exists(token):
                wrong.append(f"path {token}")
        for module in MODULE.findall(span):
            if module not in file_names() and module not in code_text():  # ours, or one the code writes or names
                wrong.append(f"module {module}")
        for name in TEST.findall(span):
            if name not in known_test_names():
                wrong.append(f"test {name}")
        for option in [] if span.strip().startswith(OTHER_PROGRAMS) else OPTION.findall(span):
            if option not in cli_options() and f'"{option}' not in code_text() and f"'{option}" not in code_text():
                wrong.append(f"option {option} (in `{span.strip()[:70]}`)")
    assert not wrong, f"{doc.relative_to(REPO)} names what does not exist:\n" + "\n".join(sorted(set(wrong)))


def test_the_check_sees_a_stale_name(tmp_path: Path) -> None:
    """The checker itself: a made-up module, test and flag are each caught."""
    spans = code_spans("see `immutable_installer/core/gone.py`, `test_never_written` and `install --no-such-flag`")
    assert [t for s in spans for t in PATH.findall(s) if repository_path(t) and not path_exists(t)] == [
        "immutable_installer/core/gone.py"]
    assert [n for s in spans for n in TEST.findall(s) if n not in known_test_names()] == ["test_never_written"]
    unheard = "unheard_of_" + "module.py"  # spelt in two parts: this file is part of the code it searches
    assert [m for m in MODULE.findall(f"`fill.py` and `{unheard}`")
            if m not in file_names() and m not in code_text()] == [unheard]
    assert [o for s in spans for o in OPTION.findall(s) if o not in cli_options()] == ["--no-such-flag"]
