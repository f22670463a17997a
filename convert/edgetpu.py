"""Edge TPU: running ``edgetpu_compiler`` and an offline op-compatibility report.

The offline report follows Coral's published list of operations the Edge TPU
supports (coral.ai/docs/edgetpu/models-intro, compiler 16) and its two general
rules: every tensor an op touches must be 8-bit quantized (32-bit biases
allowed), and once an op runs on the CPU everything fed by it runs there too
(the compiler cuts the graph at the first unsupported op). It is an estimate;
the compiler's own log is the authority when it is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgepose.errors import first_line

from .errors import ConvertError

#: TFLite builtin op names the Edge TPU runs (Coral's "supported operations" table).
EDGETPU_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "LSTM",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "SQUARED_DIFFERENCE",
        "TANH",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
    }
)

COMPILER = "edgetpu_compiler"
INSTALL_HINT = (
    "install Coral's compiler on a Debian/Ubuntu x86-64 machine: add the apt repository "
    "'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' (key: https://packages.cloud.google.com/apt/doc/apt-key.gpg) "
    "and run 'sudo apt install edgetpu-compiler', or use Coral's Colab compiler notebook; then run "
    "'edgetpu_compiler -s MODEL_int8.tflite' (the int8 model written here is already Edge TPU-ready)."
)

_INT8_TYPES = {"INT8", "UINT8"}
_OK_CONST_TYPES = {"INT8", "UINT8", "INT32"}


@dataclass
class OpCheck:
    index: int
    op: str
    on_tpu: bool
    reason: str = ""


@dataclass
class CompatReport:
    ops: list[OpCheck] = field(default_factory=list)

    @property
    def tpu_ops(self) -> int:
        return sum(o.on_tpu for o in self.ops)

    @property
    def cpu_ops(self) -> list[OpCheck]:
        return [o for o in self.ops if not o.on_tpu]

    def summary(self) -> dict:
        per = Counter((o.op, o.on_tpu, o.reason) for o in self.ops)
        return {
            "ops_total": len(self.ops),
            "ops_on_edgetpu": self.tpu_ops,
            "ops_on_cpu": len(self.ops) - self.tpu_ops,
            "cpu_ops": [
                {"op": op, "count": n, "reason": reason} for (op, on, reason), n in sorted(per.items()) if not on
            ],
        }

    def table(self) -> str:
        per = Counter((o.op, o.on_tpu, o.reason) for o in self.ops)
        lines = [f"{'operator':<22} {'count':>5}  status", "-" * 70]
        for (op, on, reason), n in sorted(per.items(), key=lambda kv: (not kv[0][1], kv[0][0])):
            lines.append(f"{op:<22} {n:>5}  {'Edge TPU' if on else 'CPU: ' + reason}")
        lines.append(f"{self.tpu_ops} of {len(self.ops)} operations would run on the Edge TPU.")
        return "\n".join(lines)


def _type_name(s, t: int) -> str:
    for k, v in vars(s.TensorType).items():
        if v == t and not k.startswith("_"):
            return k
    return str(t)


def compatibility_report(model: bytes) -> CompatReport:
    """Which ops of a ``.tflite`` the Edge TPU would run, offline (no compiler needed)."""
    from edgepose.model.flatbuf import _schema, load_model_t, op_code_name

    s = _schema()
    m = load_model_t(model)
    sg = m.subgraphs[0]
    const = {
        i
        for i, t in enumerate(sg.tensors)
        if t.buffer and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data) > 0
    }
    on_cpu_tensors: set[int] = set()
    report = CompatReport()
    for idx, op in enumerate(sg.operators):
        name = op_code_name(m, op.opcodeIndex)
        ins = [int(i) for i in (op.inputs if op.inputs is not None else []) if i >= 0]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        reason = ""
        if name == "edgetpu-custom-op":
            report.ops.append(OpCheck(idx, name, True, "already compiled for the Edge TPU"))
            continue
        if name not in EDGETPU_OPS:
            reason = "operation not supported by the Edge TPU"
        else:
            for t in ins + outs:
                tt = _type_name(s, sg.tensors[t].type)
                allowed = _OK_CONST_TYPES if t in const else _INT8_TYPES
                if tt not in allowed:
                    reason = f"tensor of type {tt.lower()} (the Edge TPU needs 8-bit quantized tensors)"
                    break
            if not reason and any(t in on_cpu_tensors for t in ins):
                reason = "follows an operation that runs on the CPU"
        if reason:
            on_cpu_tensors.update(outs)
        report.ops.append(OpCheck(idx, name, not reason, reason))
    return report


# --------------------------------------------------------------------------- compiler


@dataclass
class CompileResult:
    path: Path
    ops_on_tpu: int | None
    ops_on_cpu: int | None
    log: str


def find_compiler() -> str | None:
    return shutil.which(COMPILER)


def parse_compiler_log(text: str) -> tuple[int | None, int | None]:
    """(ops on the Edge TPU, ops on the CPU) from ``edgetpu_compiler -s`` output."""
    tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", text)
    cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", text)
    return (int(tpu.group(1)) if tpu else None, int(cpu.group(1)) if cpu else None)


def compile_model(model_path: Path, out_dir: Path | None = None, timeout: float = 600) -> CompileResult:
    """Run ``edgetpu_compiler -s`` on ``model_path``; the result is ``<stem>_edgetpu.tflite``."""
    exe = find_compiler()
    if exe is None:
        raise ConvertError(f"{COMPILER} is not on PATH.", INSTALL_HINT)
    out_dir = Path(out_dir or model_path.parent)
    try:
        proc = subprocess.run(
            [exe, "-s", "-o", str(out_dir), str(model_path)], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConvertError(f"{COMPILER} could not run ({e}).", INSTALL_HINT) from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise ConvertError(
            f"{COMPILER} failed (exit {proc.returncode}): {first_line(log, 400, default='no output', last=True)}.",
            "see the compatibility report for ops the Edge TPU does not support.",
        )
    tpu, cpu = parse_compiler_log(log)
    return CompileResult(out_dir / f"{model_path.stem}_edgetpu.tflite", tpu, cpu, log)
