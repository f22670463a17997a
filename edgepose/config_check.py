"""``edgepose config check`` and the JSON Schema of the device config shipped for editors.

The check validates a device config as the service would load it (over its board profile) and prints
each problem as ``FILE:LINE: field.path: message``, the line being where the offending key is written
(the table header when the key itself is missing), so an editor or a terminal jumps to it.

The schema (``edgepose/schemas/config.schema.json``) is generated from the pydantic models; tests check
the shipped file is current. Editors with a TOML language server (Taplo / Even Better TOML) take it from
a first line ``#:schema <path or URL of config.schema.json>``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import EdgeposeConfig, format_validation_error
from .errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.json"
SCHEMA_ID = "urn:edgepose:schema:config:v1"  # as the MQTT payload schemas name themselves

_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_HEADER = re.compile(rf"^\s*\[\[?\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*\]\]?\s*(?:#.*)?$")
_ASSIGN = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=(.*)$")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")


def _parts(dotted: str) -> tuple[str, ...]:
    return tuple(p.strip().strip("\"'") for p in re.findall(_KEY, dotted))


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Each key path of a TOML text -> the 1-based line it is written on (tables: their header line).

    Enough TOML for config files: tables, dotted and quoted keys, one-line inline tables; lines inside
    multi-line strings are skipped.
    """
    out: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string: str | None = None
    for no, line in enumerate(text.splitlines(), 1):
        if in_string is not None:
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        m = _HEADER.match(line)
        if m:
            table = _parts(m.group(1))
            for i in range(1, len(table) + 1):
                out.setdefault(table[:i], no)
            continue
        m = _ASSIGN.match(line)
        if not m:
            continue
        path = table + _parts(m.group(1))
        for i in range(len(table) + 1, len(path) + 1):
            out.setdefault(path[:i], no)
        value = m.group(2)
        for quote in ('"""', "'''"):
            if value.count(quote) % 2 == 1:
                in_string = quote
        if value.lstrip().startswith("{"):
            for inner in _INLINE_KEY.finditer(value):  # nested inline tables are flattened one level: enough here
                out.setdefault(path + _parts(inner.group(1)), no)
    return out


def line_of(lines: dict[tuple[str, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The line of the longest prefix of ``loc`` written in the file."""
    path = tuple(str(p) for p in loc)
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def check_file(path: str | Path, board: str | Path | None = None) -> list[str]:
    """Problems of the device config at ``path`` (over its board profile), one ``FILE:LINE: ...`` line each; [] when valid."""
    from .profiles import deep_merge, read_toml, resolve_board

    p = Path(path)
    data = read_toml(p)  # a missing file, bad syntax (with TOML's own line and column) or bad encoding: a ConfigError
    profile = resolve_board(p, board)
    if profile is None:
        return _problems(data, [p])
    # A broken profile is reported as such (as the service does), then the file over it.
    prof = read_toml(profile)
    return _problems(prof, [profile]) or _problems(deep_merge(prof, data), [p, profile])


def _problems(data: dict[str, Any], files: list[Path]) -> list[str]:
    """``FILE:LINE: field: message`` per validation error; the line is looked up in ``files`` in order."""
    try:
        EdgeposeConfig.model_validate(data)
    except ValidationError as e:
        texts = format_validation_error(e, "\0").split("\n")
        lines = [(f, key_lines(f.read_text(encoding="utf-8"))) for f in files]
        out = []
        for err, text in zip(e.errors(), texts):
            where = next(((f, n) for f, ln in lines if (n := line_of(ln, err["loc"])) is not None), None)
            out.append((f"{where[0]}:{where[1]}" if where else str(files[0])) + text.removeprefix("\0"))
        return out
    return []


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the device config, as shipped in :data:`SCHEMA_PATH`."""
    schema = EdgeposeConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "edgepose device config (device.toml, board profiles)",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_PATH) -> bool:
    """Write the generated schema; True when the file changed."""
    new = schema_text()
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old != new:
        path.write_text(new, encoding="utf-8")
    return old != new


__all__ = ["SCHEMA_PATH", "ConfigError", "check_file", "json_schema", "key_lines", "line_of", "write_schema"]
