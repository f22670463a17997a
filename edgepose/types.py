"""The one data model used everywhere after decoding: :class:`Pose` and :class:`Keypoint`.

A pose keeps its 17 keypoints as two small numpy arrays (coordinates and
scores), because every consumer downstream (tracking, actions, drawing,
serialisation) works on whole arrays; :class:`Keypoint` is the named,
per-part view of the same data for code that wants one part at a time.
Coordinates are ``(x, y)`` in pixels of the *source* image.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, NamedTuple, Sequence

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


#: The track id a :class:`PoseBlock` stores for "none" (``track_id=None``); an id equal to it cannot be stored.
NO_TRACK_ID = -(2**63)
_ID_MAX = 2**63


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


class Pose:
    """One person in one frame.

    ``keypoints`` is a ``(17, 2)`` float32 array of ``(x, y)`` source-image
    pixels, ``scores`` a ``(17,)`` float32 array in ``[0, 1]`` and ``score``
    the pose score in ``[0, 1]``. ``track_id`` is set by the tracker.

    The poses a decoder finds in one frame are rows of one :class:`PoseBlock`: their arrays are views
    of the block's, and setting ``score`` or ``track_id`` writes through, so code that has the whole
    frame at once (tracker, encoders) reads the block instead of 17x3 values per person. Assigning new
    ``keypoints`` or ``scores`` arrays takes the pose out of its block (it then owns them); writing into
    the arrays in place keeps it in.
    """

    __slots__ = ("_kp", "_sc", "_score", "_id", "_block", "_row", "extra")

    def __init__(self, keypoints: Any, scores: Any, score: float, track_id: int | None = None, extra: dict[str, Any] | None = None) -> None:
        self._kp = _keypoints(keypoints)
        self._sc = _scores(scores)
        self._score = float(score)
        self._id = track_id
        self._block: PoseBlock | None = None
        self._row = 0
        self.extra: dict[str, Any] = {} if extra is None else extra

    @property
    def keypoints(self) -> np.ndarray:
        return self._kp

    @keypoints.setter
    def keypoints(self, value: Any) -> None:
        if value is not self._kp:  # ``pose.keypoints += d`` wrote in place: still the block's row
            self._kp = _keypoints(value)
            self._detach()

    @property
    def scores(self) -> np.ndarray:
        return self._sc

    @scores.setter
    def scores(self, value: Any) -> None:
        if value is not self._sc:
            self._sc = _scores(value)
            self._detach()

    @property
    def score(self) -> float:
        return self._score

    @score.setter
    def score(self, value: float) -> None:
        self._score = float(value)
        if self._block is not None:
            self._block.score[self._row] = self._score

    @property
    def track_id(self) -> int | None:
        return self._id

    @track_id.setter
    def track_id(self, value: int | None) -> None:
        self._id = value
        b = self._block
        if b is not None:
            if type(value) is int and -_ID_MAX < value < _ID_MAX:  # the tracker's ids: the one store per pose and frame
                b.ids[self._row] = value
            else:
                b.store_id(self._row, value)

    def _detach(self) -> None:
        """Leave the block: the encoders' one-call path no longer describes this frame."""
        if self._block is not None:
            self._block.valid = False
            self._block = None

    def __repr__(self) -> str:
        return f"Pose(score={self._score:.4f}, track_id={self._id!r}, keypoints=<17x2>)"

    def __iter__(self) -> Iterator[Keypoint]:
        for i, name in enumerate(KEYPOINT_NAMES):
            yield Keypoint(name, float(self._kp[i, 0]), float(self._kp[i, 1]), float(self._sc[i]))

    def __len__(self) -> int:
        return NUM_KEYPOINTS

    def __getitem__(self, key: int | str) -> Keypoint:
        i = KEYPOINT_INDEX[key] if isinstance(key, str) else int(key)
        return Keypoint(KEYPOINT_NAMES[i], float(self._kp[i, 0]), float(self._kp[i, 1]), float(self._sc[i]))

    def visible(self, min_score: float) -> np.ndarray:
        """Boolean mask of keypoints whose score reaches ``min_score``."""
        return self._sc >= min_score

    def to_dict(self, ndigits: int = 1) -> dict[str, Any]:
        """JSON-ready form (the ``person`` object of the JSONL and MQTT schemas)."""
        d: dict[str, Any] = {"score": round(self._score, 4)}
        if self._id is not None:
            d["id"] = int(self._id)
        d["keypoints"] = {
            name: [round(float(x), ndigits), round(float(y), ndigits), round(float(s), 3)]
            for name, (x, y), s in zip(KEYPOINT_NAMES, self._kp.tolist(), self._sc.tolist())
        }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Pose:
        kps = d["keypoints"]
        arr = np.array([kps[name] for name in KEYPOINT_NAMES], dtype=np.float32)
        return cls(arr[:, :2], arr[:, 2], d.get("score", float(arr[:, 2].mean())), d.get("id"))

    def scaled(self, sx: float, sy: float, dx: float = 0.0, dy: float = 0.0) -> Pose:
        """A copy with coordinates mapped by ``x*sx+dx, y*sy+dy``."""
        kp = self._kp * np.array([sx, sy], np.float32) + np.array([dx, dy], np.float32)
        return Pose(kp, self._sc.copy(), self._score, self._id, dict(self.extra))


class PoseBlock:
    """The people of one frame as arrays: the storage of their :class:`Pose` objects (one row each).

    ``keypoints`` ``(n, 17, 2)`` float32, ``scores`` ``(n, 17)`` float32, ``score`` ``(n,)`` float64 and
    ``ids`` ``(n,)`` int64 (:data:`NO_TRACK_ID` for none), all C-contiguous. ``members`` are the poses
    of its rows in order; ``valid`` turns False when one of them leaves (new arrays assigned, or a
    track id the int64 array cannot hold).
    """

    __slots__ = ("keypoints", "scores", "score", "ids", "valid", "_rows")

    def __init__(self, keypoints: np.ndarray, scores: np.ndarray, score: np.ndarray) -> None:
        self.keypoints = np.ascontiguousarray(keypoints, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 2)
        n = len(self.keypoints)
        self.scores = np.ascontiguousarray(scores, dtype=np.float32).reshape(n, NUM_KEYPOINTS)
        self.score = np.ascontiguousarray(score, dtype=np.float64).reshape(n)
        self.ids = np.full(n, NO_TRACK_ID, np.int64)
        self.valid = True
        new = Pose.__new__
        rows: list[Pose] = []  # a list: of() compares it with the list a frame holds, without a copy
        for i, (kp, sc, s) in enumerate(zip(self.keypoints, self.scores, self.score.tolist())):
            p = new(Pose)  # the rows as they are: no per-pose conversion
            p._kp, p._sc, p._score, p._id, p._block, p._row, p.extra = kp, sc, s, None, self, i, {}
            rows.append(p)
        self._rows = rows

    @property
    def members(self) -> tuple[Pose, ...]:
        return tuple(self._rows)

    @classmethod
    def poses(cls, keypoints: np.ndarray, scores: np.ndarray, score: np.ndarray) -> list[Pose]:
        """The poses of a new block over these arrays (``(n, 17, 2)``, ``(n, 17)``, ``(n,)``)."""
        return list(cls(keypoints, scores, score)._rows)

    @classmethod
    def pack(cls, poses: Sequence[Pose]) -> list[Pose]:
        """Copies of ``poses`` (arrays, scores, track ids) as one new block's rows, as a decoder hands them over."""
        out = cls.poses(np.array([p.keypoints for p in poses], np.float32).reshape(-1, NUM_KEYPOINTS, 2),
                        np.array([p.scores for p in poses], np.float32).reshape(-1, NUM_KEYPOINTS), np.array([p.score for p in poses]))
        for q, p in zip(out, poses):
            q.track_id = p.track_id
        return out

    @staticmethod
    def of(poses: Sequence[Pose]) -> PoseBlock | None:
        """The block whose rows are exactly ``poses``, in order, and still hold their data; else None."""
        try:
            b = poses[0]._block
        except (IndexError, AttributeError, TypeError):  # no people, or not Poses
            return None
        # Element by element, identity first (Pose defines no __eq__): no per-person Python.
        if b is not None and b.valid and b._rows == (poses if type(poses) is list else list(poses)):
            return b
        return None

    def store_id(self, row: int, value: Any) -> None:
        """Row ``row``'s track id, as the int64 array holds it (None -> :data:`NO_TRACK_ID`)."""
        if value is None:
            self.ids[row] = NO_TRACK_ID
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and -_ID_MAX < value < _ID_MAX:
            self.ids[row] = value
        else:  # the sentinel itself, beyond int64, not an integer: the per-person path writes it as Python does
            self.valid = False


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
        return cls(int(d["track_id"]), str(d["action"]), str(d["kind"]), float(d["start"]), None if d.get("end") is None else float(d["end"]),
                   float(d.get("confidence", 1.0)), None if d.get("count") is None else int(d["count"]), dict(d.get("extra") or {}))


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
