"""Docs that cannot drift: every command shown in the README and the guides it links is checked against the code.

The collector reads each fenced ``sh``/``bash``/``shell``/``console`` block of README.md and of every
Markdown file it links (transitively, see :func:`edgepose.docgen.guides`), so new guides and new commands
are covered as they land. For each ``edgepose …`` command:

- it is parsed by the real argparse parser, every flag and value (a renamed flag or a removed choice fails);
- a synopsis (a line with ``[--flag …]``) must name every option of its command, and each number shown as a
  default must be the parser's default (or the one its ``--help`` states);
- it is **run for real**, in order with the other commands of its block, in a scratch folder beside a
  ``shared`` link to ../shared and with ``EDGEPOSE_MODEL_MIRROR`` on ../shared/models, and must exit 0.

A command that cannot run here (a real SD card, a broker, minutes of training, a file the reader has) says
so in the doc with a trailing shell comment ``# [not run in CI: why]`` (or an HTML comment
``<!-- not run in CI: why -->`` right above the fence for the whole block); it is still parsed.
``pip install`` lines must install from the checkout or a wheel: edgepose is not on PyPI. Generated parts of
the guides (the config reference, :mod:`edgepose.docgen`) must be current: ``edgepose docs`` rewrites them. A link
to a section (``CONFIG.md#actions``) must name a heading the file has.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgepose import docgen
from edgepose.cli import COMMANDS, build_parser
from tests.conftest import REPO, SHARED
from tests.procs import edgepose

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
SHELL_LANGS = {"sh", "bash", "shell", "console", "shell-session"}
NOT_RUN = re.compile(r"\[not run in CI(?::\s*(?P<why>[^\]]*))?\]")
BLOCK_NOT_RUN = re.compile(r"<!--\s*not run in CI(?::\s*(?P<why>.*?))?\s*-->\s*$")
SEPARATORS = {"&&", "||", ";", "|", "&"}
ELISIONS = {"...", "…"}


@dataclass
class Command:
    doc: Path
    line: int
    text: str  # the command as written (continuations joined)
    argv: list[str]  # after `edgepose`
    env: dict[str, str] = field(default_factory=dict)
    run: bool = True
    why: str = ""
    synopsis: bool = False

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


@dataclass
class Block:
    doc: Path
    line: int
    commands: list[Command]
    pip: list[tuple[int, list[str]]]  # (line, tokens after `pip install`)
    others: list[tuple[int, list[str]]] = field(default_factory=list)  # (line, tokens) of other programs

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


def _logical_lines(body: str, first_line: int, console: bool) -> list[tuple[int, str]]:
    """(line number, command text) with backslash continuations joined; console blocks keep only `$ ` lines."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for i, raw in enumerate(body.splitlines()):
        no = first_line + i
        if pending is not None:
            text = pending[1] + " " + raw.strip()
            start = pending[0]
        elif console:
            if not raw.startswith("$ "):
                continue
            text, start = raw[2:], no
        else:
            text, start = raw, no
        if text.rstrip().endswith("\\"):
            pending = (start, text.rstrip()[:-1])
            continue
        pending = None
        if text.strip() and not text.strip().startswith("#"):
            out.append((start, text.strip()))
    return out


def _tokens(text: str) -> list[str]:
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def _split(tokens: list[str]) -> list[list[str]]:
    cmds, cur = [], []
    for t in tokens:
        if t in SEPARATORS:
            cmds.append(cur)
            cur = []
        else:
            cur.append(t)
    cmds.append(cur)
    return [c for c in cmds if c]


def _edgepose_argv(cmd: list[str]) -> list[str] | None:
    prog = cmd[0]
    if prog == "edgepose" or prog.endswith("/edgepose"):
        return cmd[1:]
    if re.fullmatch(r"(.*/)?python3?(\.\d+)?", prog) and cmd[1:3] == ["-m", "edgepose"]:
        return cmd[3:]
    return None


def collect(doc: Path, text: str | None = None) -> list[Block]:
    text = doc.read_text(encoding="utf-8") if text is None else text
    blocks = []
    for m in FENCE.finditer(text):
        lang = m.group("lang").lower()
        body_line = text.count("\n", 0, m.start("body")) + 1
        if lang not in SHELL_LANGS:
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        block_mark = BLOCK_NOT_RUN.search(before)
        console = lang in ("console", "shell-session") or any(
            ln.startswith("$ ") for ln in m.group("body").splitlines()
        )
        env: dict[str, str] = {}
        cmds: list[Command] = []
        pips: list[tuple[int, list[str]]] = []
        others: list[tuple[int, list[str]]] = []
        for no, line in _logical_lines(m.group("body"), body_line, console):
            mark = NOT_RUN.search(line) or block_mark
            synopsis = bool(re.search(r"\[--?\w", line.split("#", 1)[0]))
            if synopsis:
                argv = [t for t in line.split() if re.fullmatch(r"[a-z][\w-]*", t)]
                cmds.append(Command(doc, no, line, argv[1:], run=False, why="synopsis", synopsis=True))
                continue
            for cmd in _split(_tokens(line)):
                local = {}
                while cmd and re.fullmatch(r"[A-Za-z_]\w*=.*", cmd[0]):
                    k, v = cmd.pop(0).split("=", 1)
                    local[k] = v
                if cmd[:1] == ["sudo"]:
                    cmd = cmd[1:]
                    while cmd and cmd[0].startswith("-"):  # sudo's own options: -u USER, -E
                        cmd = cmd[2:] if cmd[0] in ("-u", "-g") else cmd[1:]
                if not cmd:
                    env.update(local)
                    continue
                if cmd[0] == "export":
                    env.update(dict(a.split("=", 1) for a in cmd[1:] if "=" in a))
                    continue
                if (
                    len(cmd) > 2
                    and cmd[0].endswith("pip")
                    and cmd[1] == "install"
                    or cmd[:4] == ["python3", "-m", "pip", "install"]
                ):
                    pips.append((no, cmd[cmd.index("install") + 1 :]))
                    continue
                argv = _edgepose_argv(cmd)
                if argv is None:
                    others.append(
                        (no, cmd)
                    )  # another program (apt, curl, python script...): see test_scripts_named_exist
                    continue
                argv = [a for a in argv if a not in ELISIONS]
                cmds.append(
                    Command(
                        doc,
                        no,
                        line,
                        argv,
                        env={**env, **local},
                        run=mark is None,
                        why=(mark.group("why") or "") if mark else "",
                    )
                )
        if cmds or pips:
            blocks.append(Block(doc, body_line - 1, cmds, pips, others))
    return blocks


DOCS = docgen.guides()
BLOCKS = [b for d in DOCS for b in collect(d)]
COMMANDS_SHOWN = [c for b in BLOCKS for c in b.commands]


def subparser(parser: argparse.ArgumentParser, path: list[str]) -> argparse.ArgumentParser:
    p = parser
    for word in path:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        p = subs[0].choices[word]
    return p


def parse(argv: list[str]) -> str | None:
    """None when ``edgepose ARGV`` parses, else argparse's complaint."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as e:
        return None if e.code == 0 else err.getvalue().strip().splitlines()[-1]
    return None


# -- the collector sees what it should ---------------------------------------------------------------------------


def test_the_collector_finds_the_guides_and_their_commands():
    names = {d.relative_to(REPO).as_posix() for d in DOCS}
    assert {
        "README.md",
        "convert/README.md",
        "firmware_configs/README.md",
        "edgepose/actions/README.md",
        "edgepose/model/README.md",
        "edgepose/service/README.md",
    } <= names
    shown = {c.argv[0] for c in COMMANDS_SHOWN if c.argv}
    assert {"run", "models", "actions", "convert", "listen", "serve", "reloc", "probe"} <= shown
    assert sum(c.run for c in COMMANDS_SHOWN) >= 8  # most commands really run


def test_the_collector_reads_shell_syntax_and_marks():
    doc = REPO / "README.md"
    blocks = collect(
        doc,
        "```sh\nA=1 .venv/bin/edgepose run --source x.jpg && edgepose models list  # hi\n"
        "edgepose serve --config /etc/d.toml   # [not run in CI: runs until stopped]\n"
        "export M=/m\nedgepose models \\\n  fetch posenet ...\n"
        '.venv/bin/pip install -e ".[convert]"\nbash .ci/run\n'
        "sudo -u edgepose /opt/edgepose/venv/bin/edgepose probe picamera2\n```\n",
    )
    cmds = blocks[0].commands
    assert [c.argv for c in cmds] == [
        ["run", "--source", "x.jpg"],
        ["models", "list"],
        ["serve", "--config", "/etc/d.toml"],
        ["models", "fetch", "posenet"],
        ["probe", "picamera2"],
    ]
    assert cmds[0].env == {"A": "1"} and cmds[3].env == {"M": "/m"}
    assert [c.run for c in cmds] == [True, True, False, True, True] and cmds[2].why == "runs until stopped"
    assert blocks[0].pip == [(7, ["-e", ".[convert]"])] and blocks[0].others == [(8, ["bash", ".ci/run"])]
    assert parse(["run", "--sauce", "x"]) is not None and parse(["run", "--source", "x"]) is None
    prose = "Record with `edgepose listen --jsonl FILE`, replay with\n`sudo .venv/bin/edgepose serve --replay x [--replay-fps 30]`; `edgepose <id>/poses` is a topic."
    assert inline_commands(doc, prose) == [
        (1, "edgepose listen --jsonl FILE", ["listen"], ["--jsonl"]),
        (2, "sudo .venv/bin/edgepose serve --replay x [--replay-fps 30]", ["serve"], ["--replay", "--replay-fps"]),
    ]


# -- every command parses, every synopsis is complete ------------------------------------------------------------


@pytest.mark.parametrize(
    "cmd", [c for c in COMMANDS_SHOWN if not c.synopsis], ids=lambda c: f"{c.where} {' '.join(c.argv[:3])}"
)
def test_every_command_in_the_docs_parses(cmd):
    assert cmd.argv and cmd.argv[0] in COMMANDS, (
        f"{cmd.where}: `{cmd.text}` names no edgepose command ({', '.join(COMMANDS)})"
    )
    problem = parse(cmd.argv)
    assert problem is None, f"{cmd.where}: `{cmd.text}` does not parse: {problem}"


def _help_default(action: argparse.Action) -> str | None:
    if action.default not in (None, False, argparse.SUPPRESS):
        return str(action.default)
    m = re.search(r"\(default[^)]*?(-?\d+(?:\.\d+)?)\)\s*$", action.help or "")
    return m.group(1) if m else None


@pytest.mark.parametrize(
    "cmd", [c for c in COMMANDS_SHOWN if c.synopsis], ids=lambda c: f"{c.where} {' '.join(c.argv[:2])}"
)
def test_every_synopsis_names_every_option_with_its_default(cmd):
    sub = subparser(build_parser(), cmd.argv)
    assert sub.prog != "edgepose", f"{cmd.where}: the synopsis names no edgepose command"
    options = {
        a: a.option_strings
        for a in sub._actions
        if a.option_strings and a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
    }
    known = {s for strings in options.values() for s in strings}
    shown = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", cmd.text))
    unknown = sorted(shown - known)
    assert not unknown, f"{cmd.where}: the synopsis of `{sub.prog}` shows {unknown}, which the parser does not have"
    missing = sorted(strings[-1] for strings in options.values() if not shown & set(strings))
    assert not missing, f"{cmd.where}: the synopsis of `{sub.prog}` omits {missing}"
    for flag, value in re.findall(r"\[(--[\w-]+) ([^\]\s]+)\]", cmd.text):
        action = next(a for a, strings in options.items() if flag in strings)
        if action.choices is not None and "|" in value:
            assert set(value.split("|")) == {str(c) for c in action.choices}, (
                f"{cmd.where}: {flag} {value} vs choices {action.choices}"
            )
        elif re.fullmatch(r"-?\d+(\.\d+)?", value):
            default = _help_default(action)
            assert default is not None and float(default) == float(value), (
                f"{cmd.where}: the synopsis shows {flag} {value}, the parser's default is {default}"
            )


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.others], ids=lambda b: b.where)
def test_scripts_and_modules_named_in_the_docs_exist(block):
    """`python benchmarks/x.py`, `bash .ci/run`, `python -m edgepose.profiles`: the file or module is there."""
    import importlib.util

    for line, cmd in block.others:
        where = f"{block.doc.relative_to(REPO)}:{line}"
        if re.fullmatch(r"(.*/)?(python3?(\.\d+)?|bash|sh)", cmd[0]) and len(cmd) > 1:
            if cmd[1] == "-m" and len(cmd) > 2 and cmd[2].startswith("edgepose"):
                assert importlib.util.find_spec(cmd[2]) is not None, f"{where}: no module {cmd[2]}"
            elif not cmd[1].startswith("-") and not cmd[1].startswith("../"):
                assert (REPO / cmd[1]).is_file(), f"{where}: {cmd[1]} is not in the repository"


def inline_commands(doc: Path, text: str | None = None) -> list[tuple[int, str, list[str], list[str]]]:
    """``(line, span, command words, flags)`` of each inline code span in the prose that names an edgepose command."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), doc.read_text(encoding="utf-8") if text is None else text)
    out = []
    for m in re.finditer(r"(?<!`)`([^`\n]+)`(?!`)", text):
        words = m.group(1).split()
        if words[:1] == ["sudo"]:
            words = words[1:]
        if len(words) < 2 or not (words[0] == "edgepose" or words[0].endswith("/edgepose")) or words[1] not in COMMANDS:
            continue
        path = [words[1]]
        for w in words[2:4]:  # a sub-sub-command (`actions train`) comes before any flag
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            path.append(w)
        flags = re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", m.group(1))
        out.append((text.count("\n", 0, m.start()) + 1, m.group(1), path, flags))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_commands_named_in_the_prose_use_real_options(doc):
    """`edgepose serve --replay FILE` in a sentence: the command exists and has every flag the sentence shows."""
    parser = build_parser()
    top = {s for a in parser._actions for s in a.option_strings}
    for line, span, path, flags in inline_commands(doc):
        sub = subparser(parser, path)
        known = {s for a in sub._actions for s in a.option_strings} | top
        unknown = [f for f in flags if f not in known]
        assert not unknown, f"{doc.relative_to(REPO)}:{line}: `{span}`: {sub.prog} has no {', '.join(unknown)}"


# -- install lines work without PyPI ---------------------------------------------------------------------------

EXTRAS = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.pip], ids=lambda b: b.where)
def test_pip_lines_install_from_the_checkout_or_a_wheel(block):
    for line, args in block.pip:
        targets = [a for a in args if not a.startswith("-")]
        for t in targets:
            m = re.fullmatch(r"(?P<what>[^\[]+)(\[(?P<extras>[\w,-]+)\])?", t)
            assert m, f"{block.where}: cannot read pip target {t!r}"
            what = m.group("what")
            if what == "edgepose":
                pytest.fail(f"{block.doc.relative_to(REPO)}:{line}: `pip install {t}` asks PyPI, where edgepose is not")
            if what in (".", "./") or what.endswith(".whl"):
                unknown = set((m.group("extras") or "").split(",")) - EXTRAS - {""}
                assert not unknown, (
                    f"{block.doc.relative_to(REPO)}:{line}: extras {sorted(unknown)} are not in pyproject.toml"
                )


@pytest.mark.integration
def test_no_text_in_the_repository_tells_users_to_pip_install_edgepose_from_an_index():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(
        r"pip3? install (?:-U |--upgrade )?['\"]?edgepose(?:\[[\w,]+\])?['\"]?(?=[\s`'\".,)]|$)(?! @)", re.M
    )
    bad = []
    for f in files:
        p = REPO / f
        if p.suffix in (".png", ".jpg", ".tflite", ".whl") or not p.is_file() or f.startswith("tests/test_docs.py"):
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        bad += [f"{f}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not bad, "edgepose is not on PyPI:\n" + "\n".join(bad)


# -- generated parts are current, links to sections land -----------------------------------------------------------


def test_generated_parts_of_the_guides_are_current():
    stale = [
        d.relative_to(REPO).as_posix()
        for d in DOCS
        if docgen.render(d.read_text(encoding="utf-8")) != d.read_text(encoding="utf-8")
    ]
    assert not stale, f"out of date: {', '.join(stale)}. Fix: run `{docgen.FIX}` in the checkout and commit the result."


def _sections(model: type, path: str = ""):
    from pydantic import BaseModel

    yield path, model
    for name, f in model.model_fields.items():
        for kind in [f.annotation, *typing.get_args(f.annotation)]:
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _sections(kind, f"{path}.{name}" if path else name)


def test_the_config_reference_documents_every_section_and_key_with_the_codes_default():
    from pydantic import BaseModel

    from edgepose.config import EdgeposeConfig

    text = (REPO / "firmware_configs" / "CONFIG.md").read_text(encoding="utf-8")
    assert "<!-- generated: config -->" in text
    parts = dict(zip(re.findall(r"^#+ (.*)$", text, re.M), re.split(r"^#+ .*$", text, flags=re.M)[1:]))
    for path, model in _sections(EdgeposeConfig):
        title = f"`[{path}]`" if path else "Top level"
        assert title in parts, f"no heading for [{path}]"
        for name, f in model.model_fields.items():
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
                continue
            row = re.search(rf"^\| `{name}` \| [^\n]*$", parts[title], re.M)
            assert row, f"[{path}] {name} is not in the reference"
            if isinstance(f.default, (bool, int, float, str)):
                assert f"| `{json.dumps(f.default)}` |" in row.group(0), (
                    f"[{path}] {name}: not the code's default {f.default!r}"
                )
    assert "| `wave_min_amplitude` | number > 0, ≤ 5 | `0.25` |" in parts["`[actions]`"]
    assert "mqtttls" in anchors(text) and "actions" in anchors(text)  # what a guide links to


def test_each_table_is_in_one_place_and_the_guides_link_to_it():
    guide = (REPO / "edgepose" / "actions" / "README.md").read_text(encoding="utf-8")
    assert "](../../firmware_configs/CONFIG.md#actions)" in guide
    assert "`wave_min_amplitude` |" not in guide and "<!-- generated" not in guide
    generated = [d.relative_to(REPO).as_posix() for d in DOCS if "<!-- generated:" in d.read_text(encoding="utf-8")]
    assert generated == ["firmware_configs/CONFIG.md"]


def anchors(text: str) -> set[str]:
    """The section anchors of a Markdown file as GitHub makes them (``## `[mqtt.tls]` `` -> ``mqtttls``), and ``<a id>``."""
    text = FENCE.sub("", text)
    seen: dict[str, int] = {}
    out = set(re.findall(r'<a (?:id|name)="([^"]+)"', text))
    for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.M):
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_links_to_a_section_name_a_heading_of_the_file(doc):
    text = FENCE.sub("", doc.read_text(encoding="utf-8"))
    for m in re.finditer(r"\]\(([^)\s]*)#([^)\s]+)\)", text):
        if "://" in m.group(1):
            continue
        target = (doc.parent / m.group(1)).resolve() if m.group(1) else doc
        line = text.count("\n", 0, m.start()) + 1
        assert target.is_file(), f"{doc.relative_to(REPO)}:{line}: {m.group(1)} does not exist"
        if target.suffix == ".md":
            assert m.group(2) in anchors(target.read_text(encoding="utf-8")), (
                f"{doc.relative_to(REPO)}:{line}: {target.relative_to(REPO)} has no section #{m.group(2)}"
            )


# -- `edgepose docs` --------------------------------------------------------------------------------------------


def test_edgepose_docs_check_names_a_stale_copy_of_the_reference_and_docs_rewrites_it(tmp_path, capsys):
    from edgepose.cli import main

    current = (REPO / "firmware_configs" / "CONFIG.md").read_text(encoding="utf-8")
    row = "| `wave_min_amplitude` | number > 0, ≤ 5 | `0.25` |"
    assert row in current
    guide = tmp_path / "CONFIG.md"
    guide.write_text(current.replace(row, row.replace("`0.25`", "`0.3`")), encoding="utf-8")
    stale = guide.read_text(encoding="utf-8")
    assert main(["docs", "--check", str(guide)]) == 1
    err = capsys.readouterr().err
    assert f"{guide}: out of date" in err and f"Fix: run `edgepose docs {guide}`" in err
    assert guide.read_text(encoding="utf-8") == stale  # --check changes nothing
    assert main(["docs", str(guide)]) == 0
    assert f"{guide}: rewritten" in capsys.readouterr().out
    assert guide.read_text(encoding="utf-8") == current
    assert main(["docs", "--check", str(guide)]) == 0
    assert "1 file up to date" in capsys.readouterr().out


def test_edgepose_docs_writes_one_sections_table_and_refuses_a_bad_part_in_one_line(tmp_path, capsys):
    from edgepose.cli import main
    from edgepose.tracking.config import TrackingConfig

    guide = tmp_path / "guide.md"
    guide.write_text(
        "Tracking:\n\n<!-- generated: config [tracking] -->\nold\n<!-- end generated -->\nMore.\n", encoding="utf-8"
    )
    assert main(["docs", str(guide)]) == 0
    text = guide.read_text(encoding="utf-8")
    assert text.startswith("Tracking:\n\n<!-- generated: config [tracking] -->\n| key | type | default | meaning |\n")
    assert text.endswith("<!-- end generated -->\nMore.\n") and "\nold\n" not in text and "## " not in text
    assert all(f"| `{name}` |" in text for name in TrackingConfig.model_fields)
    for body, problem in [
        ("<!-- generated: config nosuch -->\n<!-- end generated -->\n", "the config has no section [nosuch]"),
        ("<!-- generated: settings x:Y -->\n<!-- end generated -->\n", "unknown generated part `settings`"),
        ("<!-- generated: config -->\nno end\n", "1 generated part has no end"),
    ]:
        guide.write_text(body, encoding="utf-8")
        capsys.readouterr()
        assert main(["docs", "--check", str(guide)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"edgepose docs: error: {guide}: {problem}") and "Fix:" in err and err.count("\n") == 1
        assert guide.read_text(encoding="utf-8") == body


@pytest.mark.integration
def test_edgepose_docs_check_passes_on_the_checkout(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "edgepose", "docs", "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{len(DOCS)} files up to date"


# -- the commands run --------------------------------------------------------------------------------------------

RUNNABLE = [b for b in BLOCKS if any(c.run for c in b.commands)]


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A working folder with ../shared beside it, as in the checkout."""
    (tmp_path / "shared").symlink_to(SHARED)
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_every_runnable_command_in_the_docs_runs(block, scratch):
    base: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("EDGEPOSE_")
    }  # none of the caller's settings
    base.update(EDGEPOSE_MODEL_MIRROR=str(SHARED / "models"), EDGEPOSE_CACHE_DIR=str(scratch.parent / "cache"))
    for cmd in block.commands:
        if not cmd.run:
            continue
        env = {**base, **cmd.env}
        try:
            res = edgepose(*cmd.argv, cwd=scratch, env=env, timeout=900, input="")  # stdin: empty, as no terminal
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"{cmd.where}: `{cmd.text}` ran for 15 minutes; if it cannot run in CI, end the line with "
                "`# [not run in CI: why]`"
            )
        assert res.returncode == 0, (
            f"{cmd.where}: `{cmd.text}` exited {res.returncode}:\n{res.stderr[-2000:]}\n"
            "Fix the doc or the code; a command that cannot run here ends with `# [not run in CI: why]`."
        )
