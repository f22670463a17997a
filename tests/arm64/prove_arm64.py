#!/usr/bin/env python3
"""Proof that the edgepose runtime works on arm64: bundle -> offline first boot -> same keypoints.

Run as root on an x86 Linux host with Debian's qemu-user-static and debootstrap (and podman,
buildah, runc for ``--container``); the default test run leaves it out (pytest marker ``arm64``):

    sudo .venv/bin/python tests/arm64/prove_arm64.py [--container]

1. builds (or reuses) an arm64 Debian root of the release ``--suite`` names: Bookworm (Python 3.11, as
   Raspberry Pi OS Bookworm; the default) or Trixie (Python 3.13, as the current Raspberry Pi OS)
   with debootstrap; qemu-aarch64 is registered with binfmt_misc so the root runs under chroot;
2. makes the offline payload with ``edgepose bundle --profile pi4 ... --python 3.11`` (or 3.13);
3. copies the cached root, puts the bundle where a flashed card has it (/boot/firmware/edgepose)
   and runs the bundle's own ``firstboot.sh`` inside the chroot, in a network namespace without
   network: edgepose and every dependency must come from the bundle (``pip --no-index``);
   ``apt-get`` and ``systemctl`` are stand-ins that record their calls (no index, no systemd in
   a chroot) and refuse any apt package the root lacks;
4. runs ``edgepose run`` with Coral's 481x641 decoder model on ../shared/images/test_couple.jpg
   under the chroot (``uname -m`` must say aarch64) and the same command on this host, and
   compares the keypoints pose by pose.

Prints a summary table; ``--summary FILE`` also writes it as JSON (the pytest wrapper reads it).
Emulated wall times say nothing about a Pi's speed; the comparison is the point.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
MODEL = "posenet_mobilenet_v1_075_481_641_quant_decoder"
IMAGE = "images/test_couple.jpg"
TOLERANCE_PX = 4.0
#: Debian release -> its python3, the one the bundle is made for (Raspberry Pi OS follows Debian's).
SUITES = {"bookworm": "3.11", "trixie": "3.13"}
# ca-certificates so a site's own index would work.
PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_CONF = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
BOOT_BUNDLE = "boot/firmware/edgepose"  # where `edgepose flash` puts the bundle on the card
SHARED_IN_ROOT = "mnt/shared"
# This interpreter's edgepose (the checkout), never a global one.
EDGEPOSE_CLI = (sys.executable, "-m", "edgepose.cli")
PROOF_DIR = "opt/arm64-proof"  # stand-ins and logs, inside the throwaway work root
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The Pi 4's core. qemu's default "max" CPU advertises features no Pi has (SVE2, SME, ...).
QEMU_CPU = "cortex-a72"
# Raspberry Pi OS ships these; Debian has no such package (archive.raspberrypi.com does).
PI_OS_ONLY = ("python3-picamera2",)

# Recording stand-ins: a chroot has no systemd, and first boot must not need an index for
# edgepose. apt-get install succeeds only for packages the root already holds.
APT_STANDIN = """#!/bin/sh
echo "apt-get $*" >> /{proof}/calls.log
[ "$1" = update ] && exit 0
missing=""
for a in "$@"; do
  case "$a" in -*|install|update|{pi_os_only}) continue;; esac
  dpkg-query -W -f='${{Status}}' "$a" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $a"
done
if [ -n "$missing" ]; then
  echo "arm64 proof: apt package(s)$missing not in the root; first boot would need the network for them" >&2
  exit 100
fi
exit 0
"""
SYSTEMCTL_STANDIN = """#!/bin/sh
echo "systemctl $*" >> /{proof}/calls.log
exit 0
"""


class ProofError(Exception):
    """A step failed; the message names it and the fix."""


def log(msg: str) -> None:
    print(f"arm64-proof: {msg}", file=sys.stderr, flush=True)


def sh(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    """Run a command, raising ProofError with its stderr tail when it fails."""
    res = subprocess.run(list(cmd), check=False, **kw)
    if res.returncode != 0:
        tail = ""
        if isinstance(res.stderr, str) and res.stderr.strip():
            lines = res.stderr.strip().splitlines()
            for line in lines[-12:-1]:  # context for the report; the last line goes into the error
                log(f"  | {line}")
            tail = ": " + lines[-1]
        raise ProofError(f"`{' '.join(map(str, cmd))}` exited {res.returncode}{tail}")
    return res


# -- qemu + binfmt ----------------------------------------------------------------------------


def ensure_binfmt() -> None:
    """Mount binfmt_misc and register qemu-aarch64 (flag F: works inside a chroot)."""
    if not (BINFMT / "register").exists():
        sh(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists():
        if not QEMU_CONF.exists():
            raise ProofError(f"{QEMU_CONF} is missing; install Debian's qemu-user-static.")
        (BINFMT / "register").write_text(QEMU_CONF.read_text().strip())
    status = entry.read_text()
    if not status.startswith("enabled") or "F" not in status.split("flags:")[1].split()[0]:
        raise ProofError(f"{entry} is not enabled with flag F: {status.splitlines()[:3]}")


# -- the arm64 root ----------------------------------------------------------------------------


def build_root(root: Path, mirror: str, suite: str) -> float | None:
    """debootstrap an arm64 root of Debian ``suite`` into ``root`` unless a finished one is there.

    Returns the build time in seconds, or None when the cached root was reused.
    """
    stamp = root / ".edgepose-arm64-root"
    wanted = f"{suite} arm64 minbase {','.join(PACKAGES)}"
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return None
    if root.exists():
        log(f"{root} is incomplete or from other settings; rebuilding it")
        remove_tree(root)
    tmp = root.with_name(root.name + ".partial")
    remove_tree(tmp)
    root.parent.mkdir(parents=True, exist_ok=True)
    log(f"debootstrap {suite} arm64 into {tmp} from {mirror} (about 10 minutes under qemu)")
    t0 = time.perf_counter()
    sh(["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(tmp), mirror])
    stamp_tmp = tmp / stamp.name
    stamp_tmp.write_text(wanted + "\n")
    tmp.rename(root)  # only a finished root ever carries the cache's name
    return time.perf_counter() - t0


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (never delete through a live bind mount of /dev)."""
    prefix = str(path.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [m for m in points if m == prefix or m.startswith(prefix + "/")]


def remove_tree(path: Path) -> None:
    if not path.exists():
        return
    live = mounts_under(path)
    if live:
        raise ProofError(f"refusing to delete {path}: still mounted there: {', '.join(live)}; umount them first")
    shutil.rmtree(path)


def pi4_cpuinfo(cpus: int) -> str:
    """/proc/cpuinfo as a Pi 4 (64-bit kernel) shows it, for ``cpus`` cores.

    Under qemu-user /proc/cpuinfo is the x86 host's; XNNPACK's cpuinfo library then finds no ARM
    core and LiteRT crashes in allocate_tensors. With no /sys it skips XNNPACK instead, which a
    Pi never does, so the proof gives it what a Pi has: sysfs and an ARM cpuinfo.
    """
    core = (
        "processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n"
        "CPU revision\t: 3\n\n"
    )
    return (
        "".join(core.format(i=i) for i in range(cpus))
        + "Revision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
    )


def possible_cpus() -> int:
    """Cores in /sys/devices/system/cpu/possible ("0-3" or "0,2-3"), the list cpuinfo reads too."""
    n = 0
    for part in Path("/sys/devices/system/cpu/possible").read_text().strip().split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


@contextlib.contextmanager
def mounted(root: Path, shared: Path, cpuinfo: Path) -> Iterator[None]:
    """/proc (with a Pi 4 cpuinfo), /sys, /dev and ../shared (read-only) inside the root.

    Always unmounted again, in reverse order.
    """
    plan = [
        (root / "proc", [["mount", "-t", "proc", "proc", str(root / "proc")]]),
        (root / "proc/cpuinfo", [["mount", "--bind", str(cpuinfo), str(root / "proc/cpuinfo")]]),
        (root / "sys", [["mount", "-t", "sysfs", "-o", "ro", "sysfs", str(root / "sys")]]),
        (root / "dev", [["mount", "--bind", "/dev", str(root / "dev")]]),
        (
            root / SHARED_IN_ROOT,
            [
                ["mount", "--bind", str(shared), str(root / SHARED_IN_ROOT)],
                ["mount", "-o", "remount,bind,ro", str(root / SHARED_IN_ROOT)],
            ],
        ),
    ]
    done: list[Path] = []
    try:
        for target, cmds in plan:
            if not target.exists():
                target.mkdir(parents=True)
            sh(cmds[0])
            done.append(target)
            for cmd in cmds[1:]:
                sh(cmd)
        yield
    finally:
        for target in reversed(done):
            if subprocess.run(["umount", str(target)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(target)], check=False)


def in_root(
    root: Path, cmd: Sequence[str], env: dict[str, str] | None = None, network: bool = False, **kw
) -> subprocess.CompletedProcess:
    """Run ``cmd`` under chroot with a clean environment (no host PIP_* settings leak in).

    Without ``network`` it runs in a fresh network namespace: only a downed loopback.
    """
    base = {"PATH": CLEAN_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", "QEMU_CPU": QEMU_CPU}
    base.update(env or {})
    argv = ["chroot", str(root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in base.items()), *cmd]
    if not network:
        argv = ["unshare", "--net", *argv]
    # qemu reads QEMU_CPU from the environment of each arm64 exec: /usr/bin/env's comes from here.
    return sh(argv, env=dict(os.environ, QEMU_CPU=QEMU_CPU), **kw)


# -- bundle ------------------------------------------------------------------------------------


def make_bundle(out: Path, python: str) -> None:
    sh(
        [
            *EDGEPOSE_CLI,
            "bundle",
            "--profile",
            "pi4",
            "--config",
            "firmware_configs/device.toml",
            "--python",
            python,
            "--out",
            str(out),
        ],
        cwd=REPO,
    )


def find_firstboot(bundle: Path) -> Path:
    hits = sorted(bundle.rglob("firstboot.sh"))
    if not hits:
        raise ProofError(f"no firstboot.sh in the bundle {bundle}")
    return hits[0]


# -- keypoints ---------------------------------------------------------------------------------

MIN_PART_SCORE = 0.25  # edgepose run's default: the parts it draws


def read_poses(jsonl: Path) -> list[np.ndarray]:
    """Poses of the single frame as (17, 3) arrays of x, y in image pixels and the part score."""
    frames = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
    if len(frames) != 1:
        raise ProofError(f"{jsonl}: expected one frame, got {len(frames)}")
    return [np.array(list(person["keypoints"].values()), dtype=float) for person in frames[0]["people"]]


def compare(arm: list[np.ndarray], x86: list[np.ndarray]) -> dict:
    """Pair poses by least mean keypoint distance, then compare every keypoint of every pair.

    ``max_px`` covers all keypoints; ``max_px_confident`` those scoring at least MIN_PART_SCORE
    on both sides (a near-zero score is a flat heatmap, where any rounding moves the argmax).
    """
    if not arm or len(arm) != len(x86):
        return {
            "poses_arm64": len(arm),
            "poses_x86": len(x86),
            "keypoints": 0,
            "max_px": float("inf"),
            "mean_px": float("inf"),
            "max_px_confident": float("inf"),
            "max_score_diff": float("inf"),
        }
    cost = np.array([[np.linalg.norm(a[:, :2] - b[:, :2], axis=1).mean() for b in x86] for a in arm])
    rows, cols = linear_sum_assignment(cost)
    a = np.concatenate([arm[r] for r in rows])
    b = np.concatenate([x86[c] for c in cols])
    d = np.linalg.norm(a[:, :2] - b[:, :2], axis=1)
    confident = (a[:, 2] >= MIN_PART_SCORE) & (b[:, 2] >= MIN_PART_SCORE)
    return {
        "poses_arm64": len(arm),
        "poses_x86": len(x86),
        "keypoints": int(d.size),
        "max_px": float(d.max()),
        "mean_px": float(d.mean()),
        "confident": int(confident.sum()),
        "max_px_confident": float(d[confident].max(initial=0.0)),
        "max_score_diff": float(np.abs(a[:, 2] - b[:, 2]).max()),
    }


XNNPACK_LINE = "Created TensorFlow Lite XNNPACK delegate"
VERSIONS = (
    "import importlib.metadata as m; print(' '.join(f'{d}=={m.version(d)}' for d in "
    "('ai-edge-litert', 'numpy', 'opencv-python-headless')))"
)


def run_args(source: str, jsonl: str) -> list[str]:
    # -v: edgepose hides LiteRT's native notices, among them the XNNPACK line the proof checks for.
    return ["-v", "run", "--model", MODEL, "--source", source, "--jsonl", jsonl, "--quiet"]


# -- Dockerfile.arm64 with podman -------------------------------------------------------------
# No registry is reachable from a build host like this one, so python:3.11-slim-bookworm cannot be
# pulled: the base is the same debootstrapped Bookworm root, made to look like that image where
# the Dockerfile relies on it (`python` on PATH, pip allowed to install system-wide).
STANDIN = "localhost/edgepose-python-standin:3.11-bookworm"
IMAGE_TAG = "localhost/edgepose:arm64"
CONTAINER = "edgepose-arm64-proof"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def image_id(tag: str) -> str | None:
    res = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True, check=False
    )
    return res.stdout.strip() or None


@contextlib.contextmanager
def replacing(tag: str) -> Iterator[None]:
    """Remove the image ``tag`` named before, once a new one carries the name (reruns leave no orphans)."""
    old = image_id(tag)
    yield
    if old and image_id(tag) != old:
        subprocess.run(["podman", "rmi", old], capture_output=True, check=False)


def import_base(root: Path) -> None:
    ctr = sh(
        ["buildah", "from", "--arch", "arm64", "--os", "linux", "scratch"], capture_output=True, text=True
    ).stdout.strip()
    try:
        mnt = Path(sh(["buildah", "mount", ctr], capture_output=True, text=True).stdout.strip())
        sh(["cp", "-a", f"{root}/.", str(mnt)])
        (mnt / ".edgepose-arm64-root").unlink(missing_ok=True)
        (mnt / "usr/bin/python").symlink_to("python3")
        sh(
            [
                "buildah",
                "config",
                "--arch",
                "arm64",
                "--os",
                "linux",
                "--env",
                "LANG=C.UTF-8",
                "--env",
                "PIP_BREAK_SYSTEM_PACKAGES=1",
                "--cmd",
                "python3",
                ctr,
            ]
        )
        sh(["buildah", "commit", "--quiet", ctr, STANDIN], capture_output=True, text=True)
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


def build_args() -> list[str]:
    """podman build flags; each works around something of this kind of host, not of the image.

    ``--isolation chroot``: RUN steps without an OCI runtime (crun 1.8 refuses hybrid cgroup v1/v2
    hosts). The host's CA bundle is mounted for RUN steps only (nothing of it stays in the image):
    pip inside the build reaches PyPI through whatever TLS proxy the host itself trusts.
    ``--format docker`` keeps the HEALTHCHECK, which the OCI format drops.
    """
    args = [
        "podman",
        "build",
        "--platform",
        "linux/arm64",
        "--pull=never",
        "--isolation",
        "chroot",
        "--format",
        "docker",
        "--layers=false",
        "--build-arg",
        f"PYTHON_IMAGE={STANDIN}",
        "-f",
        "Dockerfile.arm64",
        "--ignorefile",
        "Dockerfile.arm64.dockerignore",
        "-t",
        IMAGE_TAG,
    ]
    if HOST_CA.exists():
        args += ["-v", f"{HOST_CA}:{HOST_CA}:ro"]
    return [*args, "."]


def run_container_args(cpuinfo: Path, *cmd: str, entrypoint: str | None = None) -> list[str]:
    """podman run flags: runc (crun 1.8 refuses hybrid cgroups), ulimits no higher than this
    host's hard limits (podman's defaults exceed them and raising needs CAP_SYS_RESOURCE), no
    network, and the same Pi 4 cpuinfo and QEMU_CPU as the chroot."""
    nofile = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    nproc = min(4096, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    args = [
        "podman",
        "run",
        "--runtime",
        "runc",
        "--rm",
        "--name",
        CONTAINER,
        "--platform",
        "linux/arm64",
        "--ulimit",
        f"nofile={nofile}:{nofile}",
        "--ulimit",
        f"nproc={nproc}:{nproc}",
        "--network",
        "none",
        "-v",
        f"{cpuinfo}:/proc/cpuinfo:ro",
        "-v",
        f"{SHARED}:/shared:ro",
        "-e",
        "EDGEPOSE_MODEL_MIRROR=/shared/models",
        "-e",
        f"QEMU_CPU={QEMU_CPU}",
    ]
    if entrypoint:
        args += ["--entrypoint", entrypoint]
    return [*args, IMAGE_TAG, *cmd]


def container_proof(root: Path, work: Path, cpuinfo: Path) -> tuple[dict, dict[str, float]]:
    """Build Dockerfile.arm64 for linux/arm64 with podman and run its `edgepose run` once.

    Returns an outcome (``ok``, or the failing stage and its error) and the stage times.
    """
    times: dict[str, float] = {}
    stage = "tools"
    try:
        for tool in ("podman", "buildah", "runc"):
            if shutil.which(tool) is None:
                raise ProofError(f"`{tool}` not found; apt-get install podman buildah runc")
        stage = "import base (buildah)"
        t0 = time.perf_counter()
        with replacing(STANDIN):
            import_base(root)
        times["image: import base (buildah)"] = time.perf_counter() - t0

        stage = "podman build Dockerfile.arm64"
        log(f"podman build --platform linux/arm64 -f Dockerfile.arm64 (base {STANDIN})")
        t0 = time.perf_counter()
        with replacing(IMAGE_TAG):
            sh(build_args(), cwd=REPO, capture_output=True, text=True, timeout=3600)
        times["image: podman build"] = time.perf_counter() - t0

        stage = "podman run"
        machine = sh(
            run_container_args(cpuinfo, "-m", entrypoint="uname"), capture_output=True, text=True, timeout=300
        ).stdout.strip()
        if machine != "aarch64":
            raise ProofError(f"uname -m in the container says {machine!r}")
        t0 = time.perf_counter()
        res = sh(
            run_container_args(cpuinfo, *run_args(f"/shared/{IMAGE}", "-")),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        times["container run (emulated)"] = time.perf_counter() - t0
        (work / "container.jsonl").write_text(res.stdout)
        return {"ok": True, "uname -m": machine, "xnnpack": XNNPACK_LINE in res.stderr}, times
    except (ProofError, subprocess.TimeoutExpired) as e:
        return {"ok": False, "failed": stage, "error": str(e)}, times
    finally:
        subprocess.run(["podman", "rm", "-f", "--ignore", CONTAINER], capture_output=True, check=False)


# -- the proof ---------------------------------------------------------------------------------


def prove(args: argparse.Namespace) -> dict:
    if os.geteuid() != 0:
        raise ProofError(
            "run as root (chroot, mount and binfmt_misc need it): sudo .venv/bin/python tests/arm64/prove_arm64.py"
        )
    for tool in ("debootstrap", "chroot", "unshare", "qemu-aarch64-static"):
        if shutil.which(tool) is None:
            raise ProofError(f"`{tool}` not found; apt-get install debootstrap qemu-user-static")
    if not (SHARED / IMAGE).exists():
        raise ProofError(f"{SHARED / IMAGE} is missing: ../shared must sit beside the repository")
    times: dict[str, float | None] = {}
    ensure_binfmt()
    if args.container and args.suite != "bookworm":
        raise ProofError(
            "--container builds Dockerfile.arm64, whose base is Bookworm's python:3.11: use it with --suite bookworm"
        )
    times["root build"] = build_root(args.root, args.mirror, args.suite)

    work = Path(tempfile.mkdtemp(prefix="edgepose-arm64-", dir=args.work_dir))
    summary: dict = {"suite": args.suite, "root": str(args.root), "work": str(work)}
    try:
        bundle = work / "bundle"
        t0 = time.perf_counter()
        if args.bundle:
            shutil.copytree(args.bundle, bundle, symlinks=True)
        else:
            make_bundle(bundle, SUITES[args.suite])
        times["bundle (x86)"] = time.perf_counter() - t0

        # A throwaway copy: the cached root stays a stock image for the next run.
        root = work / "root"
        t0 = time.perf_counter()
        sh(["cp", "-a", "--reflink=auto", str(args.root), str(root)])
        times["copy root"] = time.perf_counter() - t0
        boot = root / BOOT_BUNDLE
        shutil.copytree(bundle, boot, symlinks=True)
        firstboot = find_firstboot(boot)
        proof = root / PROOF_DIR
        (proof / "bin").mkdir(parents=True)
        for name, text in (("apt-get", APT_STANDIN), ("systemctl", SYSTEMCTL_STANDIN)):
            (proof / "bin" / name).write_text(text.format(proof=PROOF_DIR, pi_os_only="|".join(PI_OS_ONLY)))
            (proof / "bin" / name).chmod(0o755)
        (proof / "calls.log").touch()

        cpuinfo = work / "cpuinfo"
        cpuinfo.write_text(pi4_cpuinfo(possible_cpus()))
        with mounted(root, SHARED, cpuinfo):
            machine = in_root(root, ["uname", "-m"], capture_output=True, text=True).stdout.strip()
            summary["uname -m"] = machine
            if machine != "aarch64":
                raise ProofError(f"uname -m in the root says {machine!r}, not aarch64")
            py = in_root(
                root,
                ["python3", "-c", "import platform; print(platform.python_version())"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            summary["python"] = py

            log(f"first boot: bash /{firstboot.relative_to(root)} (offline)")
            t0 = time.perf_counter()
            in_root(
                root,
                ["bash", f"/{firstboot.relative_to(root)}"],
                env={"PATH": f"/{PROOF_DIR}/bin:{CLEAN_PATH}"},
                timeout=3600,
            )
            times["install (firstboot.sh)"] = time.perf_counter() - t0
            summary["standin calls"] = (proof / "calls.log").read_text().splitlines()

            versions = in_root(
                root, ["/opt/edgepose/venv/bin/python", "-c", VERSIONS], capture_output=True, text=True
            ).stdout.strip()
            summary["arm64 versions"] = versions

            log("edgepose run under the chroot (aarch64, emulated)")
            t0 = time.perf_counter()
            res = in_root(
                root,
                ["/opt/edgepose/venv/bin/edgepose", *run_args(f"/{SHARED_IN_ROOT}/{IMAGE}", "/tmp/arm64.jsonl")],
                env={"EDGEPOSE_MODEL_MIRROR": f"/{SHARED_IN_ROOT}/models", "EDGEPOSE_CACHE_DIR": "/var/cache/edgepose"},
                capture_output=True,
                text=True,
                timeout=1800,
            )
            times["run arm64 (emulated)"] = time.perf_counter() - t0
            summary["xnnpack arm64"] = XNNPACK_LINE in res.stderr
        arm_jsonl = work / "arm64.jsonl"
        shutil.copy(root / "tmp" / "arm64.jsonl", arm_jsonl)

        log("the same command on this host")
        x86_jsonl = work / "x86.jsonl"
        t0 = time.perf_counter()
        x86_env = dict(
            os.environ, EDGEPOSE_MODEL_MIRROR=str(SHARED / "models"), EDGEPOSE_CACHE_DIR=str(work / "x86-cache")
        )
        res = sh(
            [*EDGEPOSE_CLI, *run_args(str(SHARED / IMAGE), str(x86_jsonl))], env=x86_env, capture_output=True, text=True
        )
        times[f"run {platform.machine()}"] = time.perf_counter() - t0
        summary["xnnpack x86"] = XNNPACK_LINE in res.stderr
        summary["x86 versions"] = sh([sys.executable, "-c", VERSIONS], capture_output=True, text=True).stdout.strip()

        x86_poses = read_poses(x86_jsonl)
        summary["comparison"] = compare(read_poses(arm_jsonl), x86_poses)
        if args.container:
            outcome, ctimes = container_proof(args.root, work, cpuinfo)
            times.update(ctimes)
            if outcome["ok"]:
                outcome["comparison"] = compare(read_poses(work / "container.jsonl"), x86_poses)
            summary["container"] = outcome
        summary["times_s"] = times
        summary["tolerance_px"] = TOLERANCE_PX
        c = summary["comparison"]
        summary["ok"] = bool(c["keypoints"] > 0 and c["max_px"] <= TOLERANCE_PX)
        return summary
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            remove_tree(work)


def table(summary: dict) -> str:
    c = summary["comparison"]
    rows = [("stage", "wall time")]
    for stage, t in summary["times_s"].items():
        rows.append((stage, "cached" if t is None else f"{t:.1f} s"))
    rows += [
        ("", ""),
        ("check", "result"),
        ("Debian release of the root", summary["suite"]),
        ("uname -m in the root", summary["uname -m"]),
        ("python in the root", summary["python"]),
        ("arm64 venv", summary["arm64 versions"]),
        (f"{platform.machine()} (this host)", summary["x86 versions"]),
        ("XNNPACK delegate arm64 / x86", f"{summary['xnnpack arm64']} / {summary['xnnpack x86']}"),
        ("first-boot apt/systemctl calls", "; ".join(summary["standin calls"]) or "none"),
        ("poses arm64 / x86", f"{c['poses_arm64']} / {c['poses_x86']}"),
        ("keypoints compared", str(c["keypoints"])),
        ("max / mean difference", f"{c['max_px']:.2f} / {c['mean_px']:.2f} px (tolerance {summary['tolerance_px']:g})"),
        (f"max, part score >= {MIN_PART_SCORE}", f"{c['max_px_confident']:.2f} px over {c['confident']} keypoints"),
        ("max part-score difference", f"{c['max_score_diff']:.3f}"),
        ("verdict", "PASS" if summary["ok"] else "FAIL"),
    ]
    if "container" in summary:
        o = summary["container"]
        if o["ok"]:
            cc = o["comparison"]
            rows += [
                ("Dockerfile.arm64 container", f"built and ran, uname -m {o['uname -m']}, XNNPACK {o['xnnpack']}"),
                (
                    "container vs x86",
                    (
                        f"{cc['poses_arm64']} / {cc['poses_x86']} poses, {cc['keypoints']} keypoints, "
                        f"max {cc['max_px']:.2f} px, mean {cc['mean_px']:.2f} px, "
                        f"max {cc['max_px_confident']:.2f} px at part score >= {MIN_PART_SCORE}"
                    ),
                ),
            ]
        else:
            rows.append(("Dockerfile.arm64 container", f"FAILED at {o['failed']}: {o['error']}"))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"{a:<{w}}  {b}" for a, b in rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--suite",
        choices=sorted(SUITES),
        default="bookworm",
        help="Debian release of the root and Python of the bundle: bookworm (3.11, default) or trixie (3.13)",
    )
    p.add_argument(
        "--root",
        type=Path,
        help="cached arm64 root; built with debootstrap when absent (default: ~/.cache/edgepose/arm64-root, -trixie for Trixie)",
    )
    p.add_argument("--mirror", default="http://deb.debian.org/debian", help="Debian mirror for debootstrap")
    p.add_argument("--bundle", type=Path, help="use this bundle folder instead of running `edgepose bundle`")
    p.add_argument("--work-dir", type=Path, help="where the throwaway work folder goes (default: $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (bundle, installed root, JSONL)")
    p.add_argument("--summary", type=Path, help="also write the summary as JSON here")
    p.add_argument(
        "--container",
        action="store_true",
        help="also build Dockerfile.arm64 with podman on the same root and run its `edgepose run`",
    )
    args = p.parse_args(argv)
    if args.root is None:
        args.root = (
            Path.home()
            / ".cache"
            / "edgepose"
            / ("arm64-root" if args.suite == "bookworm" else f"arm64-root-{args.suite}")
        )
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the mounts are always undone.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        summary = prove(args)
    except (ProofError, subprocess.TimeoutExpired) as e:
        print(f"arm64-proof: error: {e}", file=sys.stderr)
        return 1
    print(table(summary))
    if args.summary:
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    container = summary.get("container", {"ok": True, "comparison": {"max_px": 0.0}})
    container_ok = container["ok"] and container["comparison"]["max_px"] <= TOLERANCE_PX
    return 0 if summary["ok"] and container_ok else 1


if __name__ == "__main__":
    sys.exit(main())
