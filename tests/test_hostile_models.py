"""Damaged models given to `edgepose run --model PATH` and `edgepose models info PATH` (issue 21, class 4).

A seeded corpus of damaged copies of ../shared/models/coral/*.tflite (bit flips in the flatbuffer's tables and
anywhere, truncations, crafted bad shapes and indices) and of other file types. Each must end cleanly: exit 0 (a flip
the model survives) or exit 2 with one line naming the problem and the fix; never a signal (-11: the interpreter
segfaulted, -9: the kernel killed a multi-GB allocation), never a hang.

The corpus runs through ``edgepose.cli.main`` in one child process (``run`` on a real image, one model load and
inference per file: a crash kills the child and names the case), and a sample through separate real commands.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CORAL, SHARED
from tests.procs import edgepose

IMAGE = SHARED / "images" / "test_couple.jpg"
MODELS = [
    "posenet_mobilenet_v1_075_353_481_quant.tflite",
    "posenet_mobilenet_v1_075_353_481_quant_decoder.tflite",
    "posenet_mobilenet_v1_075_481_641_quant.tflite",
]
SEED = 21

pytestmark = pytest.mark.skipif(not (CORAL / MODELS[0]).is_file(), reason="needs ../shared/models/coral")


def table_bytes(buf: bytes) -> list[tuple[int, int]]:
    """The byte ranges of a .tflite that are flatbuffer tables, not weight data (where a flip changes meaning)."""
    from ai_edge_litert import schema_py_generated as s

    m = s.Model.GetRootAsModel(buf, 0)
    spans = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.DataLength():
            start = b._tab.Vector(b._tab.Offset(4))
            spans.append((start, start + b.DataLength()))
    out, pos = [], 0
    for a, e in sorted(spans):
        if a > pos:
            out.append((pos, a))
        pos = max(pos, e)
    out.append((pos, len(buf)))
    return out


def crafted(buf: bytes) -> dict[str, bytes]:
    """Models whose tables are well-formed flatbuffers with impossible meanings (what the runtime does not check)."""
    from edgepose.model import flatbuf

    def edit(change) -> bytes:
        m = flatbuf.load_model_t(buf)
        change(m)
        return flatbuf.pack_model_t(m)

    sg = lambda m: m.subgraphs[0]  # noqa: E731
    cases = {
        # a flipped bit in a batch dimension: 24 GB asked of allocate_tensors, the kernel's OOM killer answers
        "huge-activation": lambda m: sg(m).tensors[27].shape.__setitem__(0, 1048577),
        "negative-dim": lambda m: sg(m).tensors[27].shape.__setitem__(1, -5),
        "weights-shape-mismatch": lambda m: (
            sg(m)
            .tensors[next(i for i, t in enumerate(sg(m).tensors) if m.buffers[t.buffer].data is not None)]
            .shape.__setitem__(0, 999)
        ),
        "tensor-index": lambda m: sg(m).operators[3].inputs.__setitem__(0, 2_000_000),
        "output-index": lambda m: sg(m).outputs.__setitem__(0, 4_000_000),
        "opcode-index": lambda m: setattr(sg(m).operators[0], "opcodeIndex", 500),
        "buffer-index": lambda m: setattr(sg(m).tensors[5], "buffer", 10_000),
        "unknown-type": lambda m: setattr(sg(m).tensors[5], "type", 99),
        "no-subgraph": lambda m: setattr(m, "subgraphs", []),
    }
    return {name: edit(change) for name, change in cases.items()}


def corpus(d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, words its refusal must contain; "" when a clean success is also fine)."""
    rng = random.Random(SEED)
    d.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[bytes, str]] = {}
    src = (CORAL / MODELS[0]).read_bytes()
    out["empty"] = (b"", "is empty")
    out["header-only"] = (src[:8], "corrupt TFLite file")
    out["jpeg"] = (IMAGE.read_bytes(), "is a JPEG image")
    out["text"] = (b"model = posenet\n", "is a text file")
    out["html"] = (b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n", "HTML page")
    out["tflite.gz"] = (gzip.compress(src, 1, mtime=0), "gzip-compressed")
    out["tflite.xz"] = (lzma.compress(src[:100_000], preset=0), "xz-compressed")
    out["tflite.bz2"] = (bz2.compress(src[:100_000]), "not a TFLite model")
    zpath = d / "m.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr(
            zipfile.ZipInfo("m.tflite", date_time=(2020, 1, 1, 0, 0, 0)), src[:100_000]
        )  # fixed time: seeded corpus
    out["zip"] = (zpath.read_bytes(), "zip archive")
    out["random-with-TFL3"] = (src[:8] + rng.randbytes(20_000), "corrupt TFLite file")
    out["graphdef"] = (
        (SHARED / "models" / "posenet-python" / "model-mobilenet_v1_050.pb").read_bytes()[:20_000],
        "convert it first",
    )
    for name, data in crafted(src).items():
        out[f"crafted-{name}"] = (data, "corrupt TFLite file")
    for model in MODELS:
        buf = (CORAL / model).read_bytes()
        short = model.replace("posenet_mobilenet_v1_075_", "").replace(".tflite", "")
        for frac in (0.001, 0.3, 0.999):
            out[f"{short}-truncated-{frac}"] = (buf[: int(len(buf) * frac)], "corrupt TFLite file")
        tables = [i for a, e in table_bytes(buf) for i in range(a, e)]
        for k in range(14):  # flips in the tables: most are refused, some are harmless
            b = bytearray(buf)
            for _ in range(1 + k % 3):
                b[rng.choice(tables)] ^= 1 << rng.randrange(8)
            out[f"{short}-table-flip-{k}"] = (bytes(b), "")
        for k in range(2):  # flips anywhere (mostly weights: the model still runs)
            b = bytearray(buf)
            for _ in range(8):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            out[f"{short}-flip-{k}"] = (bytes(b), "")
    paths = {}
    for name, (data, words) in out.items():
        p = d / f"{name.replace('.', '_')}.tflite"
        p.write_bytes(data)
        paths[name] = (p, words)
    return paths


#: The child: each file through `edgepose run` as the CLI runs it; one JSON line per case, written before and after.
CHILD = r"""
import contextlib, io, json, sys
from edgepose.cli import main
cases = json.loads(sys.argv[1])
for name, path in cases:
    print(json.dumps({"start": name}), flush=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(["run", "--model", path, "--source", sys.argv[2], "-q"])
        except BaseException as e:  # anything but the CLI's own one line is a defect
            rc = f"{type(e).__name__}: {e}"
    print(json.dumps({"name": name, "rc": rc, "stderr": err.getvalue()}), flush=True)
"""


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return corpus(tmp_path_factory.mktemp("damaged-models"))


def test_corpus_is_deterministic(tmp_path, damaged):
    again = corpus(tmp_path / "again")
    assert {n: p.read_bytes() for n, (p, _) in again.items()} == {n: p.read_bytes() for n, (p, _) in damaged.items()}
    assert len(damaged) > 60


@pytest.mark.integration
def test_every_damaged_model_ends_cleanly_in_run(damaged):
    todo = [(name, str(path)) for name, (path, _) in damaged.items()]
    r = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(todo), str(IMAGE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    records = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    started = [x["start"] for x in records if "start" in x]
    done = {x["name"]: x for x in records if "name" in x}
    # a signal (-11 segfault, -9 OOM kill) names the case that was running
    assert r.returncode == 0, (
        f"child ended with {r.returncode} during {started[-1] if started else '?'}: {r.stderr[-2000:]}"
    )
    assert set(done) == set(damaged)
    refused = 0
    for name, (_, words) in damaged.items():
        rc, err = done[name]["rc"], done[name]["stderr"]
        if rc == 0 and not words:
            continue  # a flip the model survives (weights, an unused field)
        lines = err.strip().splitlines()
        assert rc == 2, (name, rc, err)
        assert len(lines) == 1 and lines[0].startswith("edgepose run: error: ") and "Fix:" in lines[0], (name, err)
        assert words in lines[0] and Path(damaged[name][0]).name in lines[0], (name, lines[0])
        refused += 1
    assert refused >= 40  # the corpus really damages: most cases are refusals, not silent successes


@pytest.mark.parametrize(
    "name",
    ["empty", "jpeg", "tflite.gz", "crafted-huge-activation", "crafted-tensor-index", "353_481_quant-truncated-0.3"],
)
@pytest.mark.integration
@pytest.mark.parametrize("command", ["run", "info"])
def test_real_commands_say_one_line(damaged, name, command):
    path, words = damaged[name]
    args = ["run", "--model", str(path), "--source", str(IMAGE)] if command == "run" else ["models", "info", str(path)]
    r = edgepose(*args, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])  # not -11, not -9
    assert len(lines) == 1 and "Fix:" in lines[0] and words in lines[0], r.stderr  # no native noise before it
    assert lines[0].startswith("edgepose run: error:" if command == "run" else "edgepose models: error:")


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "sparse-3GiB", "directory"])
@pytest.mark.parametrize("command", ["run", "info"])
def test_files_that_must_not_be_read_whole(tmp_path, kind, command):
    """Reading /dev/zero or a FIFO never ends, a 3 GiB file would fill a Pi's memory: refused before any read."""
    if kind == "dev-zero":
        path, words = Path("/dev/zero"), "not a regular file"
    elif kind == "fifo":
        path, words = tmp_path / "model.tflite", "not a regular file"
        os.mkfifo(path)  # nobody writes: a read would block forever
    elif kind == "sparse-3GiB":
        path, words = tmp_path / "disk.tflite", "3.0 GiB"
        with open(path, "wb") as f:
            f.truncate(3 << 30)  # sparse: no disk space used
    else:
        path, words = tmp_path, "is a directory"
    args = ["run", "--model", str(path), "--source", str(IMAGE)] if command == "run" else ["models", "info", str(path)]
    r = edgepose(*args, timeout=60)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0] and "Fix:" in lines[0], r.stderr
