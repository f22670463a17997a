"""Parts of the guides written from the code, so they cannot drift from it.

A generated part of a Markdown file sits between two comments::

    <!-- generated: settings edgepose.actions.config:ActionsConfig -->
    | key | default | allowed | meaning |
    ...
    <!-- end generated -->

``settings MODULE:CLASS`` is a table of a config section's fields (name, default,
range and ``Field(description=…)``). ``python -m edgepose.docgen [FILE ...]``
rewrites every generated part in place (default: the README and the guides it
links); ``tests/test_docs.py`` fails when one is out of date.
"""
from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- generated: (?P<kind>\w+) (?P<arg>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _value(v: Any) -> str:
    """A default as it is written in the TOML file."""
    if v is None:
        return "none (not set)"
    if isinstance(v, BaseModel):
        return "(a table)"
    return f"`{json.dumps(v)}`"


def _allowed(field: Any) -> str:
    parts = []
    for m in field.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            val = getattr(m, attr, None)
            if val is not None:
                parts.append(f"{sym} {val:g}" if isinstance(val, (int, float)) else f"{sym} {val}")
    choices = [a for t in (field.annotation, *typing.get_args(field.annotation)) if typing.get_origin(t) is typing.Literal
               for a in typing.get_args(t)]
    if choices:
        parts.append(" / ".join(f"`{json.dumps(c)}`" for c in choices))
    return ", ".join(parts)


def settings_table(model: type[BaseModel]) -> str:
    """A Markdown table of ``model``'s fields: key, default, allowed values, meaning."""
    rows = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        default_s = "(required)" if default is PydanticUndefined else _value(default)
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{field.alias or name}` | {default_s} | {_allowed(field)} | {meaning} |")
    return "\n".join(rows) + "\n"


def _generate(kind: str, arg: str) -> str:
    if kind == "settings":
        module, _, cls = arg.strip().partition(":")
        return settings_table(getattr(importlib.import_module(module), cls))
    raise ValueError(f"unknown generated part {kind!r}")


def render(text: str) -> str:
    """``text`` with every generated part written afresh."""
    return BLOCK.sub(lambda m: m.group(1) + _generate(m.group("kind"), m.group("arg")) + m.group(5), text)


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rewrite the generated parts of the docs from the code.")
    ap.add_argument("files", nargs="*", type=Path, help="Markdown files (default: the README and the guides it links)")
    ap.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")
    args = ap.parse_args(argv)
    stale = []
    for f in args.files or guides():
        text = f.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(f)
            if not args.check:
                f.write_text(new, encoding="utf-8")
    for f in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {f}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
