"""A pip requirements file (``lock -r requirements.txt``), read the way pip reads it, as far as a lock needs.

Kept: requirement lines (PEP 508, ``name @ URL``, a local wheel's path), their ``--hash`` options (the file
chosen must be one of them), nested ``-r FILE`` (relative to the file naming it), and the sources a compiled
file names at its top (``--index-url``, ``--extra-index-url``, ``--find-links``, ``--no-index``). Lines end at
`` #`` comments and continue after a trailing backslash. Any other pip option is refused, naming the line: a
lock must not silently ignore what the file asks for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from immutable_installer.core.errors import SpecError
from immutable_installer.core.names import canonical

_IGNORED = ("--prefer-binary", "--only-binary")  # the lock takes wheels only anyway
_HASH = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
_OPTION = re.compile(r"\s--?[A-Za-z]")


@dataclass
class RequirementsFile:
    """What one or more requirements files ask for."""

    requirements: list[str] = field(default_factory=list)
    hashes: dict[str, set[str]] = field(default_factory=dict)  # canonical name -> allowed sha256 (hex)
    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    hashed_lines: int = 0

    @property
    def fully_hashed(self) -> bool:
        """Every requirement carries ``--hash``: a file that pins everything (``pip-compile --generate-hashes``,
        ``uv pip compile --generate-hashes``)."""
        return bool(self.requirements) and self.hashed_lines == len(self.requirements)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        if pending.strip():
            out.append((start, pending.strip()))
        pending = ""
    if pending.strip():
        out.append((start, pending.strip()))
    return out


def read_requirements_file(path: str | Path, into: RequirementsFile | None = None,
                           seen: set[Path] | None = None) -> RequirementsFile:
    """Read ``path`` (and the files it nests) into one ``RequirementsFile``; SpecError naming file and line."""
    result = into if into is not None else RequirementsFile()
    seen = seen if seen is not None else set()
    file = Path(path)
    if file.resolve() in seen:
        return result
    seen.add(file.resolve())
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read: {exc.strerror}", file=str(path)) from None
    for number, line in _logical_lines(text):
        where = f"line {number}"
        if line.startswith("-"):
            _option(line.split(), file, result, seen, where)
            continue
        found = _OPTION.search(line)  # the requirement (markers keep their quotes) ends where an option starts
        text_req = line[:found.start()].strip() if found else line
        hashes = _hashes(line[found.start():].split() if found else [], file, where)
        result.requirements.append(text_req)
        if hashes:
            from immutable_installer.core.spec import as_requirement

            result.hashed_lines += 1
            name = canonical(as_requirement(text_req).name)
            result.hashes.setdefault(name, set()).update(hashes)
    return result


def _hashes(options: list[str], file: Path, where: str) -> set[str]:
    out: set[str] = set()
    i = 0
    while i < len(options):
        option, _, value = options[i].partition("=")
        if not value and i + 1 < len(options) and not options[i + 1].startswith("--"):
            value, i = options[i + 1], i + 1
        if option != "--hash":
            raise SpecError(where, f"the option {option} is not supported after a requirement", file=str(file),
                            hint="only --hash=sha256:... may follow a requirement")
        found = _HASH.match(value)
        if not found:
            raise SpecError(where, f"--hash {value!r} is not sha256:<64 hex characters>", file=str(file),
                            hint="the lock pins sha256 (md5 and sha1 are too weak to identify a file)")
        out.add(found.group(1).lower())
        i += 1
    return out


def _option(words: list[str], file: Path, result: RequirementsFile, seen: set[Path], where: str) -> None:
    option, _, inline = words[0].partition("=")
    value = inline or (words[1] if len(words) > 1 else "")
    if option in ("-r", "--requirement"):
        read_requirements_file(file.parent / value, result, seen)
    elif option in ("-i", "--index-url"):
        result.index_url = value
    elif option == "--extra-index-url":
        result.extra_index_urls.append(value)
    elif option in ("-f", "--find-links"):
        local = file.parent / value if "://" not in value and not Path(value).is_absolute() else value
        result.find_links.append(str(local))
    elif option == "--no-index":
        result.no_index = True
    elif option in _IGNORED:
        pass
    else:
        hint = {"-e": "editable installs are not locked: build a wheel of the project and name its path",
                "--editable": "editable installs are not locked: build a wheel of the project and name its path",
                "--pre": "pass lock --prerelease allow", "-c": "constraints files are not read by lock",
                "--constraint": "constraints files are not read by lock"}.get(option, "")
        raise SpecError(where, f"the pip option {option} is not supported here", file=str(file),
                        hint=hint or "supported: -r, --index-url, --extra-index-url, --find-links, --no-index, --hash")
