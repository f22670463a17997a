"""The generated parts of the guides: the config reference, written from the config models.

A generated part of a Markdown file sits between two comments::

    <!-- generated: config -->
    ## Top level
    | key | type | default | meaning |
    ...
    <!-- end generated -->

``config`` is the whole reference: one table per section (``[model]``, ``[mqtt.tls]``, ...) under a
heading of its own, so a guide links to a section (``CONFIG.md#actions``) rather than repeating its
table. ``config SECTION`` (``config actions``, ``config mqtt.tls``) is one section's table alone.
Every row comes from the JSON Schema of :class:`~edgepose.config.EdgeposeConfig`: type and bounds,
default and ``Field(description=…)``.

``edgepose docs [FILE ...]`` rewrites every generated part in place (default: the README and the guides
it links, see :func:`guides`); ``edgepose docs --check`` changes nothing and exits 1 naming the files
that are out of date, as ``tests/test_docs.py`` does.
"""

from __future__ import annotations

import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from .errors import EdgeposeError

REPO = Path(__file__).resolve().parents[1]
START = re.compile(r"<!-- generated: (?P<kind>[\w-]+)(?: (?P<arg>[^>]*?))? -->\n")
BLOCK = re.compile(START.pattern + r"(?P<body>.*?)(?P<end><!-- end generated -->)", re.S)
FIX = "edgepose docs"  # the command that rewrites what is stale (run in the checkout)


class DocsError(EdgeposeError):
    """A generated part that cannot be written: unknown kind or section, no end marker."""


@dataclass(frozen=True)
class Section:
    path: str  # "" for the top level, else "mqtt.tls"
    description: str
    rows: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"`[{self.path}]`" if self.path else "Top level"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _type_of(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "anyOf" in prop:
        kinds = [_type_of(p) for p in prop["anyOf"] if p.get("type") != "null"]
        return " \\| ".join(kinds) + (" or unset" if len(kinds) < len(prop["anyOf"]) else "")
    kind = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "array": "list"}.get(
        prop.get("type", ""), "value"
    )
    if prop.get("format") == "password":
        kind = "secret string"
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    if lo is not None or hi is not None:
        left = "" if lo is None else f"{'>' if 'exclusiveMinimum' in prop else '≥'} {_number(lo)}"
        right = "" if hi is None else f"{'<' if 'exclusiveMaximum' in prop else '≤'} {_number(hi)}"
        kind += " " + ", ".join(x for x in (left, right) if x)
    return kind


def _default_of(field: FieldInfo, prop: dict[str, Any]) -> str:
    if field.is_required():
        return "required"
    # The schema has the default as JSON, except a default_factory's (a list, a dict): the field makes it.
    d = prop["default"] if "default" in prop else to_jsonable_python(field.get_default(call_default_factory=True))
    return "unset" if d is None else f"`{json.dumps(d, ensure_ascii=False)}`"


def _model_in(annotation: Any) -> type[BaseModel]:
    for kind in (annotation, *typing.get_args(annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    raise TypeError(f"no config model in {annotation!r}")


def sections() -> list[Section]:
    """Every section of the device config, depth first, each with a table row per key that is not a table.

    Types and bounds come from the JSON Schema (what an editor checks), defaults from the models.
    """
    from .config import EdgeposeConfig

    schema = EdgeposeConfig.model_json_schema()
    defs = schema["$defs"]
    out: list[Section] = []

    def walk(model: type[BaseModel], path: str, description: str, props: dict[str, Any]) -> None:
        rows, subs = [], []
        for name, field in model.model_fields.items():
            key = field.alias or name
            prop = props[key]
            ref = prop.get("$ref") or next((p["$ref"] for p in prop.get("allOf", []) if "$ref" in p), None)
            if ref:
                subs.append((key, _model_in(field.annotation), prop, defs[ref.rsplit("/", 1)[-1]]))
                continue
            desc = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
            rows.append(f"| `{key}` | {_type_of(prop)} | {_default_of(field, prop)} | {desc} |")
        out.append(Section(path, description, tuple(rows)))
        for key, sub_model, prop, sub in subs:
            walk(sub_model, f"{path}.{key}" if path else key, prop.get("description", ""), sub["properties"])

    walk(EdgeposeConfig, "", "", schema["properties"])
    return out


def table(section: Section) -> str:
    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *section.rows]) + "\n"


def config_reference() -> str:
    """Every section under a heading (``##``, ``###`` for a table inside a table): description, then its keys."""
    out = []
    for s in sections():
        if not s.rows:
            continue
        out.append(f"{'#' * (2 + s.path.count('.'))} {s.title}\n")
        if s.description:
            out.append(f"{s.description}\n")
        out.append(table(s))
    return "\n".join(out)


def _generate(kind: str, arg: str | None) -> str:
    if kind != "config":
        raise DocsError(
            f"unknown generated part `{kind}`.",
            "write `<!-- generated: config -->` or `<!-- generated: config SECTION -->`.",
        )
    if not arg:
        return config_reference()
    found = {s.path: s for s in sections() if s.path}
    name = arg.strip().strip("[]")
    if name not in found:
        raise DocsError(f"the config has no section [{name}].", f"name one of {', '.join(sorted(found))}.")
    return table(found[name])


def render(text: str) -> str:
    """``text`` with every generated part written afresh."""
    starts, blocks = len(START.findall(text)), len(BLOCK.findall(text))
    if starts != blocks:
        n = starts - blocks
        raise DocsError(
            f"{n} generated part{'s have' if n > 1 else ' has'} no end.",
            "close each with `<!-- end generated -->` on a line of its own.",
        )
    return BLOCK.sub(
        lambda m: (
            m.group(0)[: m.start("body") - m.start()] + _generate(m.group("kind"), m.group("arg")) + m.group("end")
        ),
        text,
    )


def guides(readme: Path = REPO / "README.md") -> list[Path]:
    """The README and every Markdown file of this repository it links to, transitively."""
    seen: list[Path] = []
    todo = [readme]
    while todo:
        p = todo.pop(0).resolve()
        if p in seen or not p.is_file():
            continue
        seen.append(p)
        for link in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", p.read_text(encoding="utf-8")):
            if "://" not in link:
                todo.append(p.parent / link)
    return seen


def stale(files: list[Path], write: bool) -> list[Path]:
    """The files whose generated parts are out of date; rewritten in place when ``write``."""
    out = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as e:
            raise DocsError(f"cannot read {f}: {e.strerror}.", "name a Markdown file that exists.") from None
        try:
            new = render(text)
        except DocsError as e:
            raise DocsError(f"{f}: {e.problem}", e.fix) from None
        if new != text:
            out.append(f)
            if write:
                f.write_text(new, encoding="utf-8")
    return out
