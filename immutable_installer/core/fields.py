"""Typed access to a decoded JSON or TOML tree that names the exact path of any bad value
(``packages[7].files[0].sha256``): the manifest's loader and the spec's share it. Pure."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from immutable_installer.core.errors import ManifestError
from immutable_installer.core.urls import credentials_in, mask_url

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
URL_UNSAFE_RE = re.compile(r"[\s'\"`\\<>{}|^$]")


class FieldReader:
    """Typed access to a JSON tree that names the exact path of any bad value."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def fail(self, path: str, message: str, hint: str | None = None) -> ManifestError:
        return ManifestError(path, message, file=self.file, hint=hint)

    def obj(self, value: Any, path: str, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {_kind(value)}")
        required = list(required)
        allowed = set(required) | set(optional)
        missing = [key for key in required if key not in value]
        if len(missing) == 1:
            raise self.fail(_join(path, missing[0]), "required field is missing")
        if missing:  # every one at once: a hand-written file is fixed in one go, not one field per try
            raise self.fail(path, f"{len(missing)} required fields are missing: {', '.join(missing)}")
        for key in value:
            if key not in allowed:
                raise self.fail(_join(path, key), f"unknown field (allowed: {', '.join(sorted(allowed))})")
        return value

    def string(self, value: Any, path: str, *, empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {_kind(value)} {_show(value)}")
        if not empty and not value.strip():
            raise self.fail(path, "expected a non-empty string")
        bad = CONTROL_RE.search(value)
        if bad:  # a newline starts a new line of a generated script; an escape sequence rewrites the terminal
            raise self.fail(path, f"holds a control character ({bad.group()!r}) at offset {bad.start()}",
                            hint="manifest strings are single lines of printable text")
        return value

    def label(self, value: Any, path: str, what: str, pattern: re.Pattern[str]) -> str:
        """A string that ends up in file names, scripts or other files: only the characters ``pattern`` allows."""
        text = self.string(value, path)
        if not pattern.fullmatch(text):
            raise self.fail(path, f"{text[:80]!r} is not {what}")
        return text

    def url(self, value: Any, path: str, schemes: tuple[str, ...]) -> str:
        """A URL with one of ``schemes`` and nothing a shell or a file format would read as syntax."""
        text = self.string(value, path)
        if not text.startswith(schemes):
            raise self.fail(path, f"{text[:80]!r} is not an {'/'.join(s.rstrip(':/') for s in schemes)} URL")
        if credentials_in(text):
            raise self.fail(path, f"{mask_url(text)[:80]!r} holds credentials, which never belong in a file",
                            hint="remove them; they are read at run time from ~/.netrc, IMMUTABLE_INSTALLER_INDEX_"
                                 "<NAME>_USERNAME / _PASSWORD, or keyring (docs/security.md)")
        bad = URL_UNSAFE_RE.search(text)
        if bad:
            raise self.fail(path, f"{text[:80]!r} holds {bad.group()!r}, which a URL carries percent-encoded",
                            hint="percent-encode it (a space is %20, a quote %27)")
        return text

    def opt_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {_kind(value)} {_show(value)}")
        return value

    def integer(self, value: Any, path: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {_kind(value)} {_show(value)}")
        if value < minimum:
            raise self.fail(path, f"expected an integer >= {minimum}, got {value}")
        return value

    def array(self, value: Any, path: str, *, nonempty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array, got {_kind(value)}")
        if nonempty and not value:
            raise self.fail(path, "expected a non-empty array")
        return value

    def strings(self, value: Any, path: str, *, nonempty: bool = False, unique: bool = True) -> tuple[str, ...]:
        items = self.array(value, path, nonempty=nonempty)
        out = tuple(self.string(v, f"{path}[{i}]") for i, v in enumerate(items))
        if not unique:
            return out
        seen: set[str] = set()
        for i, v in enumerate(out):
            if v in seen:
                raise self.fail(f"{path}[{i}]", f"duplicate entry {v!r}")
            seen.add(v)
        return out

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str:
        text = self.string(value, path)
        if text not in choices:
            raise self.fail(path, f"{text!r} is not one of {', '.join(choices)}")
        return text


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (dict, list)) else ""
    return f"({text[:60]})" if text else ""


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
