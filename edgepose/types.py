"""The one data model used everywhere after decoding: :class:`Pose` and :class:`Keypoint`.

A pose keeps its 17 keypoints as two small numpy arrays (coordinates and
scores), because every consumer downstream (tracking, actions, drawing,
serialisation) works on whole arrays; :class:`Keypoint` is the named,
per-part view of the same data for code that wants one part at a time.
Coordinates are ``(x, y)`` in pixels of the *source* image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple

import numpy as np

#: PoseNet / COCO-17 keypoint order.
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
KEYPOINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(KEYPOINT_NAMES)}

#: The 16 edges of the PoseNet part tree (parent, child), in the order of the
#: model's displacement channels (forward edge e maps parent -> child,
#: backward edge e maps child -> parent).
POSE_EDGES: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b])
    for a, b in (
        ("nose", "left_eye"),
        ("left_eye", "left_ear"),
        ("nose", "right_eye"),
        ("right_eye", "right_ear"),
        ("nose", "left_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"),
        ("left_shoulder", "left_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
        ("nose", "right_shoulder"),
        ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"),
        ("right_shoulder", "right_hip"),
        ("right_hip", "right_knee"),
        ("right_knee", "right_ankle"),
    )
)

#: Limbs drawn as a skeleton (COCO convention: the face is drawn as points).
SKELETON: tuple[tuple[int, int], ...] = tuple(
    (KEYPOINT_INDEX[a], KEYPOINT_INDEX[b])
    for a, b in (
        ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"),
        ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"),
        ("left_hip", "right_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"),
        ("right_hip", "right_knee"),
        ("right_knee", "right_ankle"),
    )
)


class Keypoint(NamedTuple):
    """One body part of one pose."""

    name: str
    x: float
    y: float
    score: float


def _keypoints(value: Any) -> np.ndarray:
    a = np.asarray(value, dtype=np.float32)
    if a.size != 2 * NUM_KEYPOINTS:
        raise ValueError(f"a pose's keypoints are {NUM_KEYPOINTS} (x, y) pairs; got an array of shape {a.shape}")
    return a.reshape(NUM_KEYPOINTS, 2)


def _scores(value: Any) -> np.ndarray:
    a = np.asarray(value, dtype=np.float32)
    if a.size != NUM_KEYPOINTS:
        raise ValueError(f"a pose has {NUM_KEYPOINTS} keypoint scores; got an array of shape {a.shape}")
    return a.reshape(NUM_KEYPOINTS)


# eq=False: poses are compared by identity (numpy arrays have no single truth value).
@dataclass(slots=True, eq=False)
class Pose:
    """One person in one frame.

    ``keypoints`` is a ``(17, 2)`` float32 array of ``(x, y)`` source-image
    pixels, ``scores`` a ``(17,)`` float32 array in ``[0, 1]`` and ``score``
    the pose score in ``[0, 1]``. ``track_id`` is set by the tracker.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    score: float
    track_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.keypoints = _keypoints(self.keypoints)
        self.scores = _scores(self.scores)
        self.score = float(self.score)

    def __repr__(self) -> str:
        return f"Pose(score={self.score:.4f}, track_id={self.track_id!r}, keypoints=<17x2>)"

    def __iter__(self) -> Iterator[Keypoint]:
        for i, name in enumerate(KEYPOINT_NAMES):
            yield Keypoint(name, float(self.keypoints[i, 0]), float(self.keypoints[i, 1]), float(self.scores[i]))

    def __len__(self) -> int:
        return NUM_KEYPOINTS

    def __getitem__(self, key: int | str) -> Keypoint:
        i = KEYPOINT_INDEX[key] if isinstance(key, str) else int(key)
        return Keypoint(
            KEYPOINT_NAMES[i], float(self.keypoints[i, 0]), float(self.keypoints[i, 1]), float(self.scores[i])
        )

    def visible(self, min_score: float) -> np.ndarray:
        """Boolean mask of keypoints whose score reaches ``min_score``."""
        return self.scores >= min_score

    def to_dict(self, ndigits: int = 1) -> dict[str, Any]:
        """JSON-ready form (the ``person`` object of the JSONL and MQTT schemas)."""
        d: dict[str, Any] = {"score": round(self.score, 4)}
        if self.track_id is not None:
            d["id"] = int(self.track_id)
        d["keypoints"] = {
            name: [round(float(x), ndigits), round(float(y), ndigits), round(float(s), 3)]
            for name, (x, y), s in zip(KEYPOINT_NAMES, self.keypoints.tolist(), self.scores.tolist())
        }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pose:
        kps = d["keypoints"]
        arr = np.array([kps[name] for name in KEYPOINT_NAMES], dtype=np.float32)
        return cls(arr[:, :2], arr[:, 2], d.get("score", float(arr[:, 2].mean())), d.get("id"))

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Pose:
        """A copy with coordinates mapped by ``x*sx+dx, y*sy+dy``."""
        kp = self.keypoints * np.array([sx, sy], np.float32) + np.array([dx, dy], np.float32)
        return Pose(kp, self.scores.copy(), self.score, self.track_id, dict(self.extra))


def poses_of(keypoints: np.ndarray, scores: np.ndarray, score: np.ndarray) -> list[Pose]:
    """One :class:`Pose` per row of ``(n, 17, 2)`` keypoints, ``(n, 17)`` scores and ``(n,)`` pose scores
    (a decoder's output); each pose's arrays are views of these."""
    kp = np.asarray(keypoints, np.float32).reshape(-1, NUM_KEYPOINTS, 2)
    sc = np.asarray(scores, np.float32).reshape(len(kp), NUM_KEYPOINTS)
    return [Pose(k, s, v) for k, s, v in zip(kp, sc, np.asarray(score, np.float64).reshape(len(kp)).tolist())]


@dataclass
class Frame:
    """One captured image. ``image`` is BGR uint8 (OpenCV order), ``timestamp`` seconds (epoch for live sources, media time for files)."""

    index: int
    timestamp: float
    image: np.ndarray

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass
class ActionEvent:
    """Something a tracked person did: emitted by the action recognisers, published on ``events``.

    ``kind`` is ``start`` (an action began), ``end`` (it ended; ``end`` time set),
    ``instant`` (a one-off such as a fall) or ``count`` (a repetition counter moved;
    ``count`` set).
    """

    track_id: int
    action: str
    kind: str
    start: float
    end: float | None = None
    confidence: float = 1.0
    count: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "track_id": int(self.track_id),
            "action": self.action,
            "kind": self.kind,
            "start": round(float(self.start), 4),
            "end": None if self.end is None else round(float(self.end), 4),
            "confidence": round(float(self.confidence), 4),
        }
        if self.count is not None:
            d["count"] = int(self.count)
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionEvent:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(d["track_id"]),
            str(d["action"]),
            str(d["kind"]),
            float(d["start"]),
            None if d.get("end") is None else float(d["end"]),
            float(d.get("confidence", 1.0)),
            None if d.get("count") is None else int(d["count"]),
            dict(d.get("extra") or {}),
        )


@dataclass
class FrameResult:
    """What the pipeline produces for one frame; the unit every sink consumes."""

    index: int
    timestamp: float
    poses: list[Pose]
    width: int
    height: int
    image: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    events: list[ActionEvent] = field(default_factory=list)
    #: Outputs of other model types (e.g. ``camera_pose`` from the relocalization model).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines record (schema: ``schemas/frame.schema.json``)."""
        d: dict[str, Any] = {
            "v": 1,
            "frame": self.index,
            "ts": round(self.timestamp, 4),
            "width": self.width,
            "height": self.height,
            "people": [p.to_dict() for p in self.poses],
        }
        if self.events:
            d["events"] = [e.to_dict() for e in self.events]
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FrameResult:
        """Inverse of :meth:`to_dict` (keys it does not know go to ``extra``, as ``camera_pose`` came from there)."""
        return cls(
            index=int(d["frame"]),
            timestamp=float(d["ts"]),
            poses=[Pose.from_dict(p) for p in d.get("people", [])],
            width=int(d["width"]),
            height=int(d["height"]),
            events=[ActionEvent.from_dict(e) for e in d.get("events", [])],
            extra={k: v for k, v in d.items() if k not in FRAME_KEYS},
        )


#: The keys of a frame record that are FrameResult fields; the rest is ``extra``.
FRAME_KEYS = frozenset({"v", "frame", "ts", "width", "height", "people", "events"})
