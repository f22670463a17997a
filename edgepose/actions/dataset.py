"""Labelled keypoint sequences for training: the actions-9class skeletons and edgepose JSONL recordings.

Both sources become :class:`Sequence` objects (one person, one label,
frames at a steady rate) grouped by source video, so evaluation can keep a
video on one side of a split only.

Label file for JSONL recordings (CSV with a header; ``#`` starts a comment)::

    file,track_id,start,end,label
    kitchen.jsonl,3,12.0,19.5,wave
    kitchen.jsonl,*,30.0,41.0,sit

``file`` is the recording, relative to the label file; ``track_id`` the
``id`` of the person in the recording (``*``: every track seen in the range,
handy for one-person recordings); ``start``/``end`` are recording timestamps
(the ``ts`` field) in seconds, inclusive; ``label`` the action name.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..types import NUM_KEYPOINTS

#: OpenPose-18 index of each PoseNet/COCO-17 part (the neck, OpenPose 1, has no PoseNet part).
OPENPOSE18_TO_COCO17 = np.array([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10])

#: Frame rate of the actions-9class recordings (the README: about 10 frames per second).
SKELETONS_FPS = 10.0


@dataclass
class Sequence:
    """Consecutive frames of one person doing one action, sampled at a steady rate."""

    keypoints: np.ndarray  # (N, 17, 2) float32 pixels
    visible: np.ndarray  # (N, 17) bool
    label: str
    group: str  # source video: never on both sides of a split
    source: str = ""


def load_skeletons(path: str | Path) -> list[Sequence]:
    """Clips of ``skeletons_info.txt`` (actions-9class) as sequences, joints mapped to PoseNet order."""
    p = Path(path)
    try:
        rows = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{p} does not exist.", "pass the path of actions-9class/skeletons_info.txt.") from None
    except ValueError as e:
        raise DatasetError(
            f"{p} is not a JSON list of skeleton rows ({e}).", "pass the original skeletons_info.txt."
        ) from None
    if not isinstance(rows, list) or not rows or len(rows[0]) != 5 + 36:
        raise DatasetError(
            f"{p} does not have rows of 5 fields + 36 coordinates.", "pass the original skeletons_info.txt."
        )
    seqs: list[Sequence] = []
    cur_key: tuple | None = None
    cur_rows: list[list] = []

    def flush() -> None:
        if not cur_rows:
            return
        xy = np.array([r[5:] for r in cur_rows], np.float32).reshape(-1, 18, 2)[:, OPENPOSE18_TO_COCO17]
        vis = ~((xy[..., 0] == 0) & (xy[..., 1] == 0))
        first = cur_rows[0]
        seqs.append(
            Sequence(xy, vis, str(first[3]), str(first[4]).split("/")[0], f"{p.name}:clip{first[0]}-{first[1]}")
        )

    for r in rows:
        key = (r[0], r[1])
        if key != cur_key:
            flush()
            cur_key, cur_rows = key, []
        cur_rows.append(r)
    flush()
    return seqs


def resample(
    ts: np.ndarray,
    keypoints: np.ndarray,
    visible: np.ndarray,
    fps: float,
    t0: float | None = None,
    t1: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample a track at ``fps`` from ``t0`` to ``t1`` by nearest earlier frame.

    Recordings run at any camera rate; the classifier was trained at one rate,
    so both training and the device take the newest frame at or before each
    tick. Ticks before the first frame get no visible parts.
    """
    ts = np.asarray(ts, np.float64)
    t0 = float(ts[0]) if t0 is None else t0
    t1 = float(ts[-1]) if t1 is None else t1
    n = int(np.floor((t1 - t0) * fps + 1e-6)) + 1
    ticks = t0 + np.arange(max(n, 0)) / fps
    idx = np.searchsorted(ts, ticks + 1e-6, side="right") - 1
    kp = keypoints[np.clip(idx, 0, None)].copy()
    vis = visible[np.clip(idx, 0, None)].copy()
    vis[idx < 0] = False
    return kp, vis


def read_jsonl_tracks(
    path: str | Path, min_part_score: float = 0.2
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per track id: ``(timestamps, keypoints (N,17,2), visible (N,17))`` from an edgepose JSONL recording."""
    from ..sinks.jsonl import read_frame_records

    tracks: dict[int, list] = {}
    for fr in read_frame_records(
        path,
        error=DatasetError,
        missing_fix="fix the path (label files name recordings relative to themselves).",
        bad_fix="record with `edgepose run --jsonl` with tracking enabled, or remove the line.",
    ):
        for pose in fr.poses:
            if pose.track_id is not None:
                tracks.setdefault(int(pose.track_id), []).append(
                    (fr.timestamp, np.concatenate([pose.keypoints, pose.scores[:, None]], axis=1))
                )
    out = {}
    for tid, items in tracks.items():
        items.sort(key=lambda it: it[0])
        times = np.array([it[0] for it in items])
        arr = np.stack([it[1] for it in items])
        out[tid] = (times, arr[:, :, :2].copy(), arr[:, :, 2] >= min_part_score)
    return out


def load_labelled_recordings(
    label_file: str | Path, fps: float = SKELETONS_FPS, min_part_score: float = 0.2
) -> list[Sequence]:
    """Sequences cut from JSONL recordings by a label CSV (format in the module doc)."""
    lf = Path(label_file)
    try:
        text = lf.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"label file {lf} does not exist.", "pass a CSV with columns file,track_id,start,end,label."
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    need = {"file", "track_id", "start", "end", "label"}
    if reader.fieldnames is None or not need <= {f.strip() for f in reader.fieldnames}:
        raise DatasetError(
            f"{lf} has columns {reader.fieldnames}, not file,track_id,start,end,label.",
            "add that header line (see edgepose/actions/README.md).",
        )
    cache: dict[Path, dict] = {}
    seqs: list[Sequence] = []
    for i, row in enumerate(reader, 2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        rec = (lf.parent / row["file"]).resolve()
        try:
            start, end = float(row["start"]), float(row["end"])
        except ValueError:
            raise DatasetError(
                f"{lf}:{i}: start/end must be seconds, got {row['start']!r}, {row['end']!r}.",
                "write numbers such as 12.5.",
            ) from None
        if end <= start or not row["label"]:
            raise DatasetError(f"{lf}:{i}: needs end > start and a label.", "fix that row.")
        if rec not in cache:
            cache[rec] = read_jsonl_tracks(rec, min_part_score)
        tracks = cache[rec]
        if row["track_id"] == "*":
            ids = list(tracks)
        else:
            try:
                ids = [int(row["track_id"])]
            except ValueError:
                raise DatasetError(
                    f"{lf}:{i}: track_id must be an integer or *, got {row['track_id']!r}.", "fix that row."
                ) from None
        found = False
        for tid in ids:
            if tid not in tracks:
                continue
            ts, kp, vis = tracks[tid]
            sel = (ts >= start) & (ts <= end)
            if sel.sum() < 2:
                continue
            found = True
            rk, rv = resample(ts[sel], kp[sel], vis[sel], fps)
            seqs.append(Sequence(rk, rv, row["label"], rec.name, f"{rec.name}:track{tid}:{start}-{end}"))
        if not found:
            raise DatasetError(
                f"{lf}:{i}: no frames of track {row['track_id']} between {start} and {end} s in {rec.name}.",
                "check the track id and times against the recording's `id` and `ts` fields.",
            )
    return seqs


def make_windows(
    seqs: list[Sequence], length: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """All full windows of ``length`` frames: ``(keypoints (N,T,17,2), visible (N,T,17), labels, groups)``."""
    kps, viss, labels, groups = [], [], [], []
    for s in seqs:
        for end in range(length, len(s.keypoints) + 1, stride):
            kps.append(s.keypoints[end - length : end])
            viss.append(s.visible[end - length : end])
            labels.append(s.label)
            groups.append(s.group)
    if not kps:
        return np.zeros((0, length, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, length, NUM_KEYPOINTS), bool), [], []
    return np.stack(kps), np.stack(viss), labels, groups
