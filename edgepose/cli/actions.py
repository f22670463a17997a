"""``edgepose actions``: train, evaluate and run action recognition.

  edgepose actions train --skeletons ../shared/datasets/actions-9class/skeletons_info.txt --out actions.tflite
  edgepose actions eval  --skeletons ../shared/datasets/actions-9class/skeletons_info.txt --report-dir eval/
  edgepose actions rules --input recording.jsonl [--model actions.tflite]

Training data: the actions-9class skeletons (``--skeletons``) and/or edgepose
JSONL recordings cut by a label CSV (``--labels``, format in edgepose/actions/README.md).
Training and export need TensorFlow (``pip install -e ".[train]"`` in the checkout); the
exported int8 model runs on the device with the TFLite runtime only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EdgeposeError
from ..tflogs import import_tensorflow_for_training


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "actions",
        help="train, evaluate and run action recognition",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    asub = p.add_subparsers(dest="actions_command", metavar="ACTION")
    asub.required = True

    def data_args(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--skeletons", action="append", default=[], help="actions-9class skeletons_info.txt (repeatable)"
        )
        q.add_argument("--labels", action="append", default=[], help="label CSV for JSONL recordings (repeatable)")
        q.add_argument("--classes", help="comma-separated classes to keep (default: all in the data)")
        q.add_argument(
            "--min-part-score", type=float, default=0.2, help="JSONL keypoints scoring less count as missing"
        )

    def model_args(q: argparse.ArgumentParser) -> None:
        from edgepose_convert.actions.train import MODEL_KINDS, TrainSettings

        d = TrainSettings()
        q.add_argument(
            "--kind", choices=MODEL_KINDS, default=d.kind, help=f"model: temporal conv or MLP (default {d.kind})"
        )
        q.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs (default {d.epochs})")
        q.add_argument("--window", type=int, default=d.window, help=f"frames per window (default {d.window})")
        q.add_argument(
            "--fps",
            type=float,
            default=d.fps,
            help=f"window frame rate; recordings are resampled to it (default {d.fps:g})",
        )
        q.add_argument("--width", type=int, default=d.width, help=f"layer width (default {d.width})")
        q.add_argument(
            "--no-augment", action="store_true", help="train without mirror/rotate/scale/jitter/drop augmentation"
        )
        q.add_argument("--seed", type=int, default=d.seed)

    t = asub.add_parser("train", help="train the classifier on all the data and export an int8 .tflite")
    data_args(t)
    model_args(t)
    t.add_argument("--out", "-o", required=True, help="output .tflite")
    t.set_defaults(func=cmd_train)

    e = asub.add_parser("eval", help="cross-validate on folds grouped by source video (or score a trained .tflite)")
    data_args(e)
    model_args(e)
    e.add_argument("--folds", type=int, default=5, help="number of video-grouped folds (default 5)")
    e.add_argument("--model", help="score this exported .tflite on the data instead of cross-validating")
    e.add_argument(
        "--report-dir", default=".", help="where confusion.png and confusion.txt go (default: current directory)"
    )
    e.set_defaults(func=cmd_eval)

    r = asub.add_parser(
        "rules", help="print action events for a JSONL recording (rules, plus the classifier with --model)"
    )
    r.add_argument("--input", "-i", required=True, help="JSONL recording from `edgepose run --jsonl` ('-' for stdin)")
    r.add_argument("--config", "-c", help="device config (TOML) whose [tracking] and [actions] sections to use")
    r.add_argument("--model", help="action classifier .tflite (overrides actions.model_path)")
    r.add_argument("--retrack", action="store_true", help="assign track IDs again even if the recording has them")
    r.add_argument("--json", action="store_true", help="print one JSON object per event instead of a table")
    r.set_defaults(func=cmd_rules)


# --------------------------------------------------------------------------- data


def _load(args: argparse.Namespace):
    from ..actions import dataset as ds

    if not args.skeletons and not args.labels:
        raise EdgeposeError(
            "no training data given.",
            "pass --skeletons ../shared/datasets/actions-9class/skeletons_info.txt and/or --labels labels.csv.",
        )
    seqs = []
    for s in args.skeletons:
        seqs += ds.load_skeletons(s)
    for lf in args.labels:
        seqs += ds.load_labelled_recordings(lf, fps=args.fps, min_part_score=args.min_part_score)
    if args.classes:
        keep = {c.strip() for c in args.classes.split(",") if c.strip()}
        seqs = [s for s in seqs if s.label in keep]
    kp, vis, labels, groups = ds.make_windows(seqs, args.window)
    if len(labels) == 0:
        raise EdgeposeError(
            f"the data has no sequence of {args.window} frames or more.",
            "label longer stretches or pass a smaller --window.",
        )
    if len(set(labels)) < 2:
        raise EdgeposeError(f"the data has only the class {labels[0]!r}.", "label at least two actions.")
    return kp, vis, labels, groups


def _settings(args: argparse.Namespace):
    from edgepose_convert.actions.train import TrainSettings

    if args.epochs < 1 or args.window < 2 or args.fps <= 0 or args.width < 4:
        raise EdgeposeError("--epochs must be >= 1, --window >= 2, --fps > 0 and --width >= 4.", "fix the value.")
    return TrainSettings(
        kind=args.kind,
        window=args.window,
        fps=args.fps,
        epochs=args.epochs,
        width=args.width,
        augment=not args.no_augment,
        seed=args.seed,
    )


# --------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from edgepose_convert.actions.train import export_tflite, train

    from ..actions.features import batch_features
    from ..progress import bar as progress_bar

    kp, vis, labels, groups = _load(args)
    settings = _settings(args)
    import_tensorflow_for_training()
    classes = sorted(set(labels))
    y = np.array([classes.index(lb) for lb in labels])
    print(
        f"training {settings.kind} on {len(y)} windows of {settings.window} frames, {len(classes)} classes, "
        f"{len(set(groups))} source videos",
        file=sys.stderr,
    )
    bar = progress_bar(settings.epochs, "epochs", "epoch")  # a terminal only

    def progress(epoch: int, logs: dict) -> None:
        bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}", acc=f"{logs.get('accuracy', 0):.3f}")
        bar.update(1)

    trained = train(kp, vis, y, classes, settings, progress=progress)
    bar.close()
    cal = trained.standardise(batch_features(kp, vis))
    buf = export_tflite(trained, cal, {"trained_on": {"windows": int(len(y)), "videos": len(set(groups))}})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_bytes(buf)
    tmp.replace(out)  # never leave a half-written model where the device looks for one
    # Check the int8 model against the float one on the training windows: export must not lose the model.
    from ..actions.classifier import ActionClassifier

    clf = ActionClassifier(buf, name=str(out))
    sel = np.random.default_rng(0).permutation(len(y))[:2000]
    q_pred = clf.predict_batch(kp[sel], vis[sel]).argmax(axis=1)
    f_pred = trained.predict(kp[sel], vis[sel])
    print(f"wrote {out} ({len(buf) / 1024:.1f} KiB, int8); classes: {', '.join(classes)}")
    print(
        f"int8 vs float agreement on {len(sel)} training windows: {(q_pred == f_pred).mean():.1%}; "
        f"int8 training accuracy {(q_pred == y[sel]).mean():.1%} (not a test score: use `edgepose actions eval`)"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from edgepose_convert.actions.report import confusion_png, confusion_text, summary_text
    from edgepose_convert.actions.train import EvalReport, FoldResult, cross_validate

    kp, vis, labels, groups = _load(args)
    out_dir = Path(args.report_dir)
    if args.model:
        from ..actions.classifier import ActionClassifier

        clf = ActionClassifier(args.model)
        if clf.window != args.window:
            kp, vis, labels, groups = _load(argparse.Namespace(**{**vars(args), "window": clf.window}))
        unknown = sorted(set(labels) - set(clf.classes))
        if unknown:
            raise EdgeposeError(
                f"the data has classes the model does not know: {unknown}.",
                f"pass --classes with some of {clf.classes}.",
            )
        y = np.array([clf.classes.index(lb) for lb in labels])
        pred = clf.predict_batch(kp, vis).argmax(axis=1)
        report = EvalReport(
            list(clf.classes), [FoldResult(0, sorted(set(groups)), float((pred == y).mean()), len(y), y, pred)]
        )
        title = f"{Path(args.model).name} on {len(y)} windows"
        print(
            f"accuracy of {args.model} on {len(y)} windows: {report.folds[0].accuracy:.1%} (only a test score if the model never saw these videos)"
        )
    else:
        settings = _settings(args)
        import_tensorflow_for_training()
        report = cross_validate(
            kp, vis, labels, groups, settings, args.folds, progress=lambda msg: print(msg, file=sys.stderr, flush=True)
        )
        acc = report.accuracies
        title = f"{settings.kind}, {args.folds} video-grouped folds: {acc.mean():.1%} ± {acc.std():.1%}"
        print(summary_text(report))
    cm = report.confusion()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "confusion.txt").write_text(confusion_text(report.classes, cm) + "\n", encoding="utf-8")
    png = confusion_png(report.classes, cm, out_dir / "confusion.png", title)
    if args.model:
        print(confusion_text(report.classes, cm))
    print(f"wrote {png} and {out_dir / 'confusion.txt'}")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from ..actions import ActionEngine
    from ..config import load_config
    from ..sinks.jsonl import read_frame_records
    from ..tracking import Tracker

    cfg = load_config(args.config)
    acfg = cfg.actions.model_copy(update={"enabled": True, **({"model_path": args.model} if args.model else {})})
    engine = ActionEngine(acfg)
    tracker = Tracker(cfg.tracking)
    n_events = 0
    if not args.json:
        print(f"{'time':>8s} {'track':>5s} {'action':14s} {'kind':8s} {'start':>8s} {'end':>8s} {'conf':>5s} extra")

    def emit(events) -> None:
        nonlocal n_events
        for e in events:
            n_events += 1
            if args.json:
                print(json.dumps(e.to_dict()), flush=True)
            else:
                end = "" if e.end is None else f"{e.end:8.2f}"
                extra = ("count=" + str(e.count) + " " if e.count is not None else "") + (
                    json.dumps(e.extra) if e.extra else ""
                )
                print(
                    f"{now:8.2f} {e.track_id:5d} {e.action:14s} {e.kind:8s} {e.start:8.2f} {end:>8s} {e.confidence:5.2f} {extra}",
                    flush=True,
                )

    now = 0.0
    for fr in read_frame_records(args.input):
        now, poses = fr.timestamp, fr.poses
        if args.retrack or any(p.track_id is None for p in poses):
            poses = tracker.update(poses, now)
        emit(engine.update(poses, now))
    emit(engine.close())
    if not args.json:
        print(f"{n_events} events", file=sys.stderr)
    return 0
