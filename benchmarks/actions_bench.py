"""Learned actions: video-grouped accuracy after full training, and per-window latency on one core.

    python benchmarks/actions_bench.py [--kind conv] [--epochs 40] [--folds 5] [--no-baseline] [--report-dir DIR]

Data: ../shared/datasets/actions-9class (9 actions, 24 source videos; windows of 15 frames at 10 fps).
Accuracy is per window on folds grouped by source video (a video is never on both sides); the float Keras model
and the exported int8 .tflite (what the device runs) are both scored on every test fold. A random split of
windows leaks neighbouring windows and is not reported.

Baseline, same process and folds: gradient boosting (scikit-learn HistGradientBoosting) on the same
normalised 15-frame features, flattened (the issue's reference measured 82.6 % for such a model).

Latency: one window on one core: feature extraction (numpy), int8 interpreter invoke, and the two together;
median over 2,000 windows.

    python benchmarks/actions_bench.py --stage [--model actions.tflite] [--seconds 20] [--repeat 3] [--no-serve]

The ``actions`` stage per frame as a user gets it (no TensorFlow needed). 1: ``edgepose serve``'s own
objects (config defaults + ``[actions] enabled = true``, the service's pipeline from ``frames_factory``,
``Service`` publishing to a Mosquitto started here on loopback) on the full-size seed clip; each frame's
tracked people go through the batched engine and the per-person reference (``tests/actions_reference.py``)
in alternating order, so both see the same poses under the same load; then a second pass with the
pipeline untouched reports what serve itself times as ``actions`` (beside ``invoke``). 2: crowds of 1, 4
and 8 tracked people replaying actions-9class clips (``edgepose.actions.synthetic.crowd``, 30 fps):
rules alone, the learned classifier alone (its feature building and invokes timed inside), and both;
every figure is wall time per frame, the mean over the run, median of ``--repeat`` runs, reference and
batched engine alternating run by run, with the ratio reference / batched of each run (range shown).
The classifier is ``--model``, else benchmarks/out/actions.tflite, else one trained there (20 epochs,
needs TensorFlow), else the classifier columns are left out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.baselines.tables import table  # noqa: E402
from edgepose.actions import dataset as ds  # noqa: E402
from edgepose.actions.classifier import ActionClassifier  # noqa: E402
from edgepose.actions.features import batch_features, window_features  # noqa: E402
from edgepose_convert.actions.report import confusion_png, confusion_text  # noqa: E402
from edgepose_convert.actions.train import TrainSettings, export_tflite, grouped_folds, train  # noqa: E402

SKELETONS = ROOT.parent / "shared/datasets/actions-9class/skeletons_info.txt"


def median_us(fn, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return 1e6 * float(np.median(times))


def main() -> int:
    if "--stage" in sys.argv[1:]:
        return stage_main([a for a in sys.argv[1:] if a != "--stage"])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", action="store_true", help="time the actions stage per frame instead (see above)")
    ap.add_argument("--kind", default="conv")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--no-baseline", action="store_true", help="skip the gradient-boosting baseline")
    ap.add_argument("--report-dir", default="benchmarks/out/actions")
    args = ap.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    seqs = ds.load_skeletons(SKELETONS)
    kp, vis, labels, groups = ds.make_windows(seqs, 15)
    classes = sorted(set(labels))
    y = np.array([classes.index(lb) for lb in labels])
    settings = TrainSettings(kind=args.kind, epochs=args.epochs, width=args.width, augment=not args.no_augment)
    folds = grouped_folds(labels, groups, args.folds, settings.seed)
    feats_all = batch_features(kp, vis)
    res = {"float": [], "int8": [], "baseline": []}
    cm = np.zeros((len(classes), len(classes)), np.int64)
    lat_base = None
    for i, (tr, te) in enumerate(folds):
        t0 = time.perf_counter()
        m = train(kp[tr], vis[tr], y[tr], classes, settings)
        pf = m.predict(kp[te], vis[te])
        buf = export_tflite(m, m.standardise(feats_all[tr]))
        clf = ActionClassifier(buf, threads=1)
        pq = clf.predict_batch(kp[te], vis[te]).argmax(axis=1)
        res["float"].append(float((pf == y[te]).mean()))
        res["int8"].append(float((pq == y[te]).mean()))
        np.add.at(cm, (y[te], pq), 1)
        line = f"fold {i + 1}/{len(folds)}: float {res['float'][-1]:.1%}  int8 {res['int8'][-1]:.1%}"
        if not args.no_baseline:
            from sklearn.ensemble import HistGradientBoostingClassifier

            hgb = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=0)
            hgb.fit(feats_all[tr].reshape(len(tr), -1), y[tr])
            pb = hgb.predict(feats_all[te].reshape(len(te), -1))
            res["baseline"].append(float((pb == y[te]).mean()))
            line += f"  gradient boosting {res['baseline'][-1]:.1%}"
            if lat_base is None:
                lat_base = median_us(
                    lambda j: hgb.predict(window_features(kp[te[j % len(te)]], vis[te[j % len(te)]]).reshape(1, -1)),
                    300,
                )
        print(
            line + f"  ({time.perf_counter() - t0:.0f} s; test videos: {', '.join(sorted({groups[j] for j in te}))})",
            flush=True,
        )

    # Full training on all videos: the model a user would deploy; its latency.
    m = train(kp, vis, y, classes, settings)
    buf = export_tflite(m, m.standardise(feats_all))
    out = Path(args.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "actions.tflite").write_bytes(buf)
    clf = ActionClassifier(buf, threads=1)
    n = min(2000, len(y))
    xs = [clf.standardise(window_features(kp[j], vis[j]))[None] for j in range(n)]
    feat_us = median_us(lambda j: window_features(kp[j], vis[j]), n)
    inv_us = median_us(lambda j: clf._run(xs[j]), n)
    total_us = median_us(lambda j: clf.predict(kp[j], vis[j]), n)

    cells = []
    for key, name in (("float", "float (Keras)"), ("int8", "int8 .tflite (device)"), ("baseline", "gradient boosting")):
        a = np.array(res[key])
        if len(a):
            cells.append([name, f"{a.mean():.1%}", f"{a.std():.1%}", " ".join(f"{v:.1%}" for v in a)])
    table(
        f"model: {args.kind}, width {args.width}, {args.epochs} epochs, augmentation {'off' if args.no_augment else 'on'}; "
        f"{len(y)} windows, {len(set(groups))} videos, {len(folds)} video-grouped folds",
        ["", "mean", "std", "per fold"],
        cells,
        "lrrl",
    )
    print("\nper-class recall, int8, folds pooled:")
    with np.errstate(invalid="ignore"):
        rec = np.diag(cm) / cm.sum(axis=1)
    for c, r in zip(classes, rec):
        print(f"  {c:8s} {r:.1%}")
    print("\n" + confusion_text(classes, cm))
    confusion_png(
        classes,
        cm,
        out / "confusion.png",
        f"{args.kind} int8, {len(folds)} video-grouped folds: {np.mean(res['int8']):.1%} ± {np.std(res['int8']):.1%}",
    )
    (out / "confusion.txt").write_text(confusion_text(classes, cm) + "\n")
    print(f"\nlatency per window, one core (model {len(buf) / 1024:.0f} KiB):")
    print(f"  {'features (numpy)':28s} {feat_us:8.0f} us")
    print(f"  {'int8 invoke':28s} {inv_us:8.0f} us")
    print(f"  {'features + invoke':28s} {total_us:8.0f} us")
    if lat_base is not None:
        print(
            f"  {'gradient boosting (baseline)':28s} {lat_base:8.0f} us   (edgepose int8 = {total_us / lat_base:.2f} x baseline)"
        )
    print(f"wrote {out / 'confusion.png'}, {out / 'confusion.txt'}, {out / 'actions.tflite'}")
    return 0


# ---------------------------------------------------------------------- --stage: the actions stage per frame

VIDEO = ROOT.parent / "shared/video/openpose_video.avi"
DEFAULT_MODEL = ROOT / "benchmarks/out/actions.tflite"


def stage_model(path: str | None) -> str | None:
    """The classifier to time: ``--model``, the default file, or one trained to it now (needs TensorFlow)."""
    if path:
        return path
    if DEFAULT_MODEL.exists():
        return str(DEFAULT_MODEL)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print(f"no classifier: pass --model, or train one to {DEFAULT_MODEL} (needs TensorFlow); timing the rules only")
        return None
    from edgepose.cli import main as cli

    print(f"training a classifier to {DEFAULT_MODEL} (20 epochs) ...", flush=True)
    DEFAULT_MODEL.parent.mkdir(parents=True, exist_ok=True)
    if cli(["actions", "train", "--skeletons", str(SKELETONS), "--epochs", "20", "--out", str(DEFAULT_MODEL)]) != 0:
        raise SystemExit("training the classifier failed")
    return str(DEFAULT_MODEL)


class Paired:
    """Stands in for the pipeline's ActionEngine: every frame goes through the batched engine and the reference,
    which goes first alternating frame by frame; the batched engine's events are the stage's."""

    def __init__(self, new, ref):
        self.engines = {"batched": new, "reference": ref}
        self.classifier = new.classifier
        self.times: dict[str, list[float]] = {"batched": [], "reference": []}
        # Thread CPU time too: on a shared machine the wall time also counts other processes' turns.
        self.cpu: dict[str, list[float]] = {"batched": [], "reference": []}
        self.events: dict[str, list] = {"batched": [], "reference": []}
        self._k = 0

    def update(self, poses, t):
        names = ["batched", "reference"] if self._k % 2 == 0 else ["reference", "batched"]
        self._k += 1
        out = []
        for name in names:
            t0, c0 = time.perf_counter(), time.thread_time()
            ev = self.engines[name].update(poses, t)
            self.cpu[name].append(time.thread_time() - c0)
            self.times[name].append(time.perf_counter() - t0)
            self.events[name] += ev
            if name == "batched":
                out = ev
        return out

    def close(self):
        for name, eng in self.engines.items():
            self.events[name] += eng.close()
        return []


class FrameLog:
    """A Service observer: each frame's stage timings and people."""

    def __init__(self):
        self.timings: list[dict[str, float]] = []
        self.people: list[int] = []

    def on_frame(self, result) -> None:
        self.timings.append(dict(result.timings))
        self.people.append(len(result.poses))

    def on_camera(self, state, error=None) -> None:
        pass


def serve_pass(model: str | None, paired: bool, broker_port: int, tmp: Path):
    """One run of the seed clip through serve's own objects; the frame log and the Paired stage (or None)."""
    from edgepose.cli.serve import frames_factory
    from edgepose.config import load_config
    from edgepose.mqtt.sink import MqttSink
    from edgepose.service.runner import Service
    from tests.actions_reference import ReferenceActionEngine

    actions = {"enabled": True, **({"model_path": model} if model else {})}
    cfg = load_config(
        None,
        {
            "source": {"uri": str(VIDEO)},
            "actions": actions,
            "device_id": "actions-bench",
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "outbox_path": str(tmp / "outbox.sqlite")},
        },
    )
    service_ref: list = []
    frames, pipeline = frames_factory(argparse.Namespace(replay=None), cfg, service_ref)
    pair = None
    if paired:
        pair = Paired(pipeline.actions, ReferenceActionEngine(cfg.actions, classifier=pipeline.actions.classifier))
        pipeline.actions = pair
    sink = MqttSink(cfg.mqtt, cfg.device_id, model=Path(cfg.model.path).stem)
    service = Service(sink, frames, status_interval=cfg.mqtt.status_interval, finish=pipeline.finish)
    service_ref.append(service)
    log = FrameLog()
    service.observers.append(log)
    if service.run() != 0:
        raise SystemExit(f"serve failed: {service.fatal}")
    return log, pair


class Timed:
    """Wraps a function and adds up the wall time spent in it."""

    def __init__(self, fn):
        self.fn, self.total = fn, 0.0

    def __call__(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return self.fn(*a, **kw)
        finally:
            self.total += time.perf_counter() - t0


def crowd_run(impl: str, frames, cfg, clf):
    """One run of an engine over the crowd: per-frame seconds; thread CPU seconds, seconds in feature building and in invokes."""
    from edgepose.actions import classifier as clf_mod
    from edgepose.actions.engine import ActionEngine
    from edgepose.types import Pose
    from tests import actions_reference as reference

    mod = clf_mod if impl == "batched" else reference
    feats = Timed(mod.batch_features)
    mod.batch_features = feats
    inv = None
    if clf is not None:
        inv = Timed(type(clf).invoke.__get__(clf))
        clf.invoke = inv
    eng = (ActionEngine if impl == "batched" else reference.ReferenceActionEngine)(cfg, classifier=clf)
    per, cpu = [], 0.0
    try:
        for t, poses in frames:
            poses = [
                Pose(p.keypoints.copy(), p.scores.copy(), p.score, track_id=p.track_id) for p in poses
            ]  # fresh, not timed
            t0, c0 = time.perf_counter(), time.thread_time()
            eng.update(poses, t)
            cpu += time.thread_time() - c0
            per.append(time.perf_counter() - t0)
    finally:
        mod.batch_features = feats.fn
        if clf is not None:
            del clf.invoke
    return np.array(per), cpu, feats.total, inv.total if inv is not None else 0.0


def stage_main(argv: list[str]) -> int:
    import tempfile

    from edgepose.actions import ActionsConfig
    from edgepose.actions.synthetic import crowd

    ap = argparse.ArgumentParser(
        prog="actions_bench.py --stage", description="the actions stage per frame (module doc)"
    )
    ap.add_argument(
        "--model", help="action classifier .tflite (default: benchmarks/out/actions.tflite, trained if missing)"
    )
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each crowd run at 30 fps")
    ap.add_argument("--repeat", type=int, default=3, help="runs per crowd cell (reference and batched alternating)")
    ap.add_argument("--people", default="1,4,8")
    ap.add_argument("--no-serve", action="store_true", help="skip the serve runs on the seed clip")
    args = ap.parse_args(argv)
    os.environ.setdefault("EDGEPOSE_MODEL_MIRROR", str(ROOT.parent / "shared/models"))
    model = stage_model(args.model)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; classifier: {model or 'none'}")

    if not args.no_serve:
        from tests.mosquitto import Mosquitto

        with tempfile.TemporaryDirectory() as d:
            broker = Mosquitto(Path(d) / "broker").start()
            try:
                log, pair = serve_pass(model, True, broker.port, Path(d))
                log2, _ = serve_pass(model, False, broker.port, Path(d))
            finally:
                broker.stop()
        assert pair is not None
        same = pair.events["batched"] == pair.events["reference"]
        ref_ms, new_ms = (1e3 * np.array(pair.times[k]) for k in ("reference", "batched"))
        ref_cpu, new_cpu = (1e3 * np.array(pair.cpu[k]) for k in ("reference", "batched"))
        act = 1e3 * np.array([t.get("actions", 0.0) for t in log2.timings])
        inv = 1e3 * np.array([t.get("invoke", 0.0) for t in log2.timings])
        ppl = np.array(log2.people)

        def row(name, ms, cpu=None, ratio=""):
            cells = [f"{ms.mean():.2f}", f"{np.percentile(ms, 95):.2f}", f"{ms[1:].max():.1f}", f"{ms[0]:.1f}"]
            return [name, *cells, f"{cpu.mean():.2f}" if cpu is not None else "", ratio]

        rows = [
            row("reference (per person), paired", ref_ms, ref_cpu),
            row(
                "batched, paired",
                new_ms,
                new_cpu,
                f"{ref_ms.sum() / new_ms.sum():.1f}x wall, {ref_cpu.sum() / new_cpu.sum():.1f}x CPU",
            ),
            row("batched, serve's own 'actions' timing", act),
        ]
        table(
            f"1. edgepose serve on {VIDEO.name}, full size: {len(ppl)} frames, {ppl.mean():.1f} people a frame (max {ppl.max()}); "
            f"invoke beside it {np.median(inv):.0f} ms median; events {len(pair.events['batched'])}, "
            f"{'the same' if same else 'DIFFERENT'} from both engines",
            [
                "actions stage",
                "ms/frame mean",
                "p95",
                "max after the 1st",
                "1st frame",
                "CPU ms/frame",
                "reference / batched",
            ],
            rows,
        )

    seqs = ds.load_skeletons(SKELETONS)
    clf = None
    if model:
        clf = ActionClassifier(model, threads=1)
    variants = [("rules", ActionsConfig(), None)]
    if clf is not None:
        variants += [("classifier", ActionsConfig(rules=[]), clf), ("rules + classifier", ActionsConfig(), clf)]
    rows = []
    for n in [int(v) for v in args.people.split(",")]:
        frames = crowd(seqs, n, seconds=args.seconds)
        cell: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
        for rep in range(args.repeat):
            for name, cfg, c in variants:
                for impl in ("reference", "batched") if rep % 2 == 0 else ("batched", "reference"):
                    per, cpu_s, f_s, i_s = crowd_run(impl, frames, cfg, c)
                    cell.setdefault((name, impl), []).append(
                        (per.mean(), np.percentile(per, 95), cpu_s / len(per), f_s / len(per), i_s / len(per))
                    )
        for name, _, c in variants:
            ratios = [r[0] / b[0] for r, b in zip(cell[(name, "reference")], cell[(name, "batched")])]
            for impl in ("reference", "batched"):
                runs = np.array(cell[(name, impl)])
                mean, p95, cpu_ms, f_ms, i_ms = (1e3 * np.median(runs[:, k]) for k in range(5))
                rows.append(
                    [
                        str(n),
                        name,
                        impl,
                        f"{mean:.3f}",
                        f"{1e3 * runs[:, 0].min():.3f}-{1e3 * runs[:, 0].max():.3f}",
                        f"{p95:.3f}",
                        f"{cpu_ms:.3f}",
                        f"{f_ms:.3f}" if c is not None else "",
                        f"{i_ms:.3f}" if c is not None else "",
                        f"{np.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f})" if impl == "batched" else "",
                    ]
                )
    table(
        f"2. crowds replaying actions-9class clips at 30 fps, {args.seconds:g} s, {args.repeat} runs each (median; range of the means)",
        [
            "people",
            "stage",
            "engine",
            "ms/frame",
            "range",
            "p95",
            "CPU ms/frame",
            "of it: features",
            "invoke",
            "reference / batched",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
