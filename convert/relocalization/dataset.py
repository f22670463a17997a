"""Relocalization datasets in the Cambridge Landmarks / 7-Scenes ``dataset_*.txt`` format.

The format (Kendall et al.'s Cambridge Landmarks; 7-Scenes conversions use it too)::

    Visual Landmark Dataset V1
    ImageFile, Camera Position [X Y Z W P Q R]

    seq1/frame00001.png 1.23 -0.40 5.60 0.70 0.01 0.71 -0.02

one image per line: its path relative to the text file, the camera centre
``X Y Z`` and the world-to-camera quaternion ``W P Q R`` (= w, x, y, z).
A data directory holds ``dataset_train.txt`` and ``dataset_test.txt``
(``scene.json`` beside them, when present, names the scene and its units).
No TensorFlow here: the device-side ``edgepose reloc eval`` reads it too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from edgepose.errors import DatasetError
from edgepose.progress import bar as progress_bar
from edgepose.relocalization.estimator import crop_to_input
from edgepose.relocalization.geometry import normalize_quaternion
from edgepose.sources.images import read_image

HEADER = "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"
SPLITS = ("train", "test")


@dataclass
class PoseDataset:
    """Images and their camera poses (positions ``(N, 3)``, unit quaternions ``(N, 4)`` with ``w >= 0``)."""

    images: list[Path]
    positions: np.ndarray
    orientations: np.ndarray
    source: Path
    scene: str = "scene"
    units: str = "m"
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def split_file(data: str | Path, split: str) -> Path:
    """``data`` itself if it is a ``.txt`` file, else ``data/dataset_<split>.txt``."""
    p = Path(data)
    if p.is_file():
        return p
    f = p / f"dataset_{split}.txt"
    if not f.is_file():
        raise DatasetError(
            f"{f} does not exist.",
            f"pass a folder with dataset_{split}.txt (Cambridge Landmarks / 7-Scenes format), or create one with 'edgepose reloc synth --out {p}'.",
        )
    return f


def _parse_line(line: str) -> tuple[str, list[float]] | None:
    parts = line.rsplit(maxsplit=7)
    if len(parts) != 8:
        return None
    try:
        nums = [float(v) for v in parts[1:]]
    except ValueError:
        return None
    if not all(np.isfinite(nums)):
        return None
    return parts[0], nums


def read_dataset(path: str | Path, check_images: bool = True) -> PoseDataset:
    """Read one ``dataset_*.txt``; image paths are resolved against its folder."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(
            f"{path} does not exist.", "pass the dataset_train.txt / dataset_test.txt file or its folder."
        ) from None
    except UnicodeDecodeError:
        raise DatasetError(
            f"{path} is not a text file.", "pass a dataset_*.txt in the Cambridge Landmarks format."
        ) from None
    images: list[Path] = []
    vals: list[list[float]] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parsed = _parse_line(line.strip())
        if parsed is None:
            if not images and no <= 3:  # the format's header lines
                continue
            raise DatasetError(
                f"{path}:{no}: expected 'IMAGE X Y Z W P Q R' (an image path and 7 numbers), got {line.strip()[:80]!r}.",
                "fix or delete that line.",
            )
        rel, nums = parsed
        if np.linalg.norm(nums[3:]) < 1e-6:
            raise DatasetError(
                f"{path}:{no}: the quaternion of {rel} is zero.", "give the orientation as a unit quaternion W P Q R."
            )
        images.append((path.parent / rel).resolve())
        vals.append(nums)
    if not images:
        raise DatasetError(f"{path} has no samples.", "add lines 'IMAGE X Y Z W P Q R' after the 3 header lines.")
    if check_images:
        missing = [p for p in images if not p.is_file()]
        if missing:
            raise DatasetError(
                f"{len(missing)} of {len(images)} images listed in {path} are missing (first: {missing[0]}).",
                "image paths are relative to the text file's folder: move the file or fix the paths.",
            )
    arr = np.asarray(vals, np.float64)
    info = {}
    meta = path.parent / "scene.json"
    if meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
    return PoseDataset(
        images,
        arr[:, :3],
        normalize_quaternion(arr[:, 3:]),
        path,
        scene=str(info.get("scene", path.parent.name)),
        units=str(info.get("units", "m")),
        info=info,
    )


def write_dataset(path: str | Path, rel_images: Sequence[str], positions: np.ndarray, orientations: np.ndarray) -> Path:
    """Write a ``dataset_*.txt`` (header and one line per image)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [HEADER.rstrip("\n") + "\n"]
    for rel, x, q in zip(rel_images, np.asarray(positions), np.asarray(orientations)):
        rows.append(f"{rel} " + " ".join(f"{v:.6f}" for v in (*x, *q)))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def load_images(
    ds: PoseDataset, size: tuple[int, int], progress: bool | None = None, desc: str = "loading"
) -> np.ndarray:
    """All images cropped to the model input (``crop_to_input``, as on the device): ``(N, h, w, 3)`` RGB uint8."""
    out = np.empty((len(ds), size[0], size[1], 3), np.uint8)
    for i, p in enumerate(progress_bar(desc=desc, unit="img", progress=progress, items=ds.images, leave=False)):
        out[i] = crop_to_input(read_image(p, error=DatasetError), size)
    return out


def read_bgr(ds: PoseDataset, progress: bool | None = False) -> list[np.ndarray]:
    """The dataset's images as full-size BGR arrays (what a camera would deliver)."""
    out = []
    for p in progress_bar(desc="reading", unit="img", progress=progress, items=ds.images, leave=False):
        out.append(read_image(p, error=DatasetError))
    return out


def _render_chunk(job: tuple[str, str, int, list, tuple[int, int], float]) -> int:
    """Render and save one chunk of poses (runs in a worker process)."""
    from . import scene as sc

    image_folder, out, seed, items, size, hfov_deg = job
    room = sc.load_room(image_folder, name=f"synthetic-room-{seed}")
    for rel, c, r in items:
        cv2.imwrite(str(Path(out) / rel), sc.render(room, sc.CameraPose6(np.asarray(c), np.asarray(r)), size, hfov_deg))
    return len(items)


def write_synthetic(
    out_dir: str | Path,
    image_folder: str | Path,
    n_train: int = 1500,
    n_test: int = 300,
    size: tuple[int, int] = (224, 168),
    seed: int = 0,
    hfov_deg: float = 60.0,
    progress: bool | None = None,
    workers: int = 1,
) -> dict[str, Path]:
    """Render the photo-textured room (``scene.py``) into a dataset folder: random training poses, a held-out walk for testing.

    ``workers`` > 1 renders in that many processes.
    """
    from . import scene as sc

    out = Path(out_dir)
    room = sc.load_room(image_folder, name=f"synthetic-room-{seed}")
    splits = {"train": sc.random_poses(room, n_train, seed=seed), "test": sc.walk_poses(room, n_test, seed=seed + 1000)}
    files = {}
    items = []
    for split, poses in splits.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        rels = [f"{split}/frame{i:05d}.png" for i in range(len(poses))]
        items += [(rel, p.c.tolist(), p.r.tolist()) for rel, p in zip(rels, poses)]
        pos, q = sc.pose_arrays(poses)
        files[split] = write_dataset(out / f"dataset_{split}.txt", rels, pos, q)
    chunk = 50
    jobs = [
        (str(image_folder), str(out), seed, items[i : i + chunk], tuple(size), hfov_deg)
        for i in range(0, len(items), chunk)
    ]
    with progress_bar(len(items), "rendering", "img", progress) as bar:
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as ex:
                for n in ex.map(_render_chunk, jobs):
                    bar.update(n)
        else:
            for job in jobs:
                bar.update(_render_chunk(job))
    info = {
        "scene": room.name,
        "units": "m",
        "image_size": list(size),
        "hfov_deg": hfov_deg,
        "photos": str(image_folder),
        "generator": "edgepose synthetic room (convert/relocalization/scene.py)",
        "seed": seed,
        "train": "uniform random poses",
        "test": "held-out smooth walk",
    }
    (out / "scene.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return files
