"""Relocalization without TensorFlow: quaternions, the renderer's geometry, the dataset reader, the config."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgepose.relocalization.geometry import (
    mean_quaternion,
    normalize_quaternion,
    orientation_errors_deg,
    position_errors,
    quaternion_to_rotation,
    rotation_to_quaternion,
)
from edgepose_convert.relocalization import scene as sc
from edgepose_convert.relocalization.dataset import (
    DatasetError,
    read_dataset,
    split_file,
    write_dataset,
    write_synthetic,
)
from tests.conftest import SHARED

IMAGES = SHARED / "images"


# --------------------------------------------------------------------------- quaternions


def test_quaternion_round_trip_and_sign():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = normalize_quaternion(rng.normal(size=4))
        r = quaternion_to_rotation(q)
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1.0)
        assert np.allclose(rotation_to_quaternion(r), q, atol=1e-9)
        # -q is the same rotation; the canonical form has w >= 0
        assert np.allclose(quaternion_to_rotation(-q), r)
        assert normalize_quaternion(-q)[0] >= 0


def test_orientation_error_known_angles():
    ident = np.array([1.0, 0, 0, 0])
    yaw90 = rotation_to_quaternion(sc.rotation_from_euler(90, 0, 0))
    assert orientation_errors_deg(yaw90, ident) == pytest.approx(90.0, abs=1e-6)
    assert orientation_errors_deg(-yaw90, yaw90) == pytest.approx(0.0, abs=1e-5)  # sign does not matter
    assert orientation_errors_deg(2 * yaw90, yaw90) == pytest.approx(0.0, abs=1e-5)  # nor the norm
    assert position_errors(np.array([[1.0, 2, 2]]), np.zeros((1, 3)))[0] == pytest.approx(3.0)


def test_mean_quaternion_is_sign_invariant():
    qs = np.array([rotation_to_quaternion(sc.rotation_from_euler(y, 0, 0)) for y in (-20, 0, 20)])
    qs[1] *= -1  # the component mean of these would be wrong; the eigenvector mean is not
    m = mean_quaternion(qs)
    assert orientation_errors_deg(m, np.array([1.0, 0, 0, 0])) == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- camera and renderer


def test_projection_of_known_points():
    k = np.array([[100.0, 0, 160], [0, 100.0, 120], [0, 0, 1]])
    c = np.zeros(3)
    assert np.allclose(sc.project(k, np.eye(3), c, [[1.0, 0.5, 2.0]]), [[210.0, 145.0]])
    # yaw +90: the camera looks along world +x, so a point on +x is at the image centre...
    r = sc.rotation_from_euler(90, 0, 0)
    assert np.allclose(sc.project(k, r, c, [[2.0, 0.0, 0.0]]), [[160.0, 120.0]], atol=1e-9)
    # ...and world +z (previously ahead) is now to the camera's left, i.e. x_cam < 0
    assert (r @ np.array([0, 0, 1.0]))[0] < 0
    # pitch +30 looks up (world -y): a point above the horizon moves to the centre
    r = sc.rotation_from_euler(0, 30, 0)
    assert np.allclose(sc.project(k, r, c, [[0.0, -np.tan(np.radians(30)), 1.0]]), [[160.0, 120.0]], atol=1e-9)
    # moving the camera moves the point the other way
    assert np.allclose(sc.project(k, np.eye(3), np.array([0.5, 0, 0]), [[1.0, 0.5, 2.0]]), [[185.0, 145.0]])


MARKERS = {  # texture fraction (s, t) -> BGR colour of a small square
    (0.15, 0.2): (0, 0, 255),
    (0.5, 0.15): (0, 255, 0),
    (0.85, 0.25): (255, 0, 0),
    (0.2, 0.8): (0, 255, 255),
    (0.55, 0.7): (255, 0, 255),
    (0.8, 0.85): (255, 255, 0),
}


def _marker_wall() -> sc.Scene:
    tex = np.full((300, 400, 3), 128, np.uint8)
    for (s, t), col in MARKERS.items():
        x, y = round(s * 399), round(t * 299)
        tex[y - 6 : y + 7, x - 6 : x + 7] = col
    quad = sc.Quad(np.array([-2.0, -1.5, 3.0]), np.array([4.0, 0, 0]), np.array([0, 3.0, 0]), tex, "wall")
    return sc.Scene([quad], "markers")


def test_render_then_pnp_recovers_the_pose():
    """The renderer puts texture points where the camera model projects them: solvePnP on the rendered
    markers gives back the pose that was rendered."""
    scene = _marker_wall()
    quad = scene.quads[0]
    size = (320, 240)
    k = sc.intrinsics(*size)
    pose = sc.CameraPose6(np.array([0.4, -0.2, -2.5]), sc.rotation_from_euler(8, -5, 4))
    img = sc.render(scene, pose, size)
    obj, found = [], []
    for (s, t), col in MARKERS.items():
        mask = np.all(np.abs(img.astype(int) - col) < 60, axis=2)
        assert mask.sum() > 3, f"marker {col} not visible"
        ys, xs = np.nonzero(mask)
        found.append([xs.mean() + 0.5, ys.mean() + 0.5])  # pixel centres are at +0.5
        obj.append(quad.point(s, t))
        # and the projection of the marker agrees with where it was rendered
        assert np.linalg.norm(sc.project(k, pose.r, pose.c, [quad.point(s, t)])[0] - found[-1]) < 1.0
    ok, rvec, tvec = cv2.solvePnP(np.array(obj), np.array(found), k, None, flags=cv2.SOLVEPNP_ITERATIVE)
    assert ok
    r = cv2.Rodrigues(rvec)[0]
    c = -r.T @ tvec.ravel()
    assert np.linalg.norm(c - pose.c) < 0.05
    assert orientation_errors_deg(rotation_to_quaternion(r), pose.quaternion) < 1.0


def test_depth_test_keeps_the_nearer_plane():
    red = np.full((10, 10, 3), (0, 0, 255), np.uint8)
    blue = np.full((10, 10, 3), (255, 0, 0), np.uint8)
    far = sc.Quad(np.array([-5.0, -5, 6]), np.array([10.0, 0, 0]), np.array([0, 10.0, 0]), red)
    near = sc.Quad(np.array([-0.5, -0.5, 3]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), blue)
    for quads in ([far, near], [near, far]):  # order must not matter
        img = sc.render(sc.Scene(quads), sc.CameraPose6(np.zeros(3), np.eye(3)), (64, 48))
        assert tuple(img[24, 32]) == (255, 0, 0)  # centre: the near quad
        assert tuple(img[2, 2]) == (0, 0, 255)  # corner: the far one
    # a camera that has turned around sees nothing of planes behind it (no mirrored ghosts)
    img = sc.render(sc.Scene([far, near]), sc.CameraPose6(np.zeros(3), sc.rotation_from_euler(180, 0, 0)), (64, 48))
    assert img.max() == 0


@pytest.fixture(scope="module")
def room() -> sc.Scene:
    return sc.load_room(IMAGES)


def test_room_renders_photos_everywhere_inside(room):
    for pose in sc.random_poses(room, 6, seed=3):
        img = sc.render(room, pose, (96, 72))
        black = np.all(img == 0, axis=2).mean()
        assert black < 0.01  # every ray from inside the closed room hits a wall, floor or ceiling
        assert img.std() > 10
    p, q = sc.pose_arrays(sc.walk_poses(room, 20))
    lo, hi = room.bounds
    assert np.all(p >= lo - 1e-9) and np.all(p <= hi + 1e-9)
    assert np.all(q[:, 0] > 0.3)  # the yaw range keeps every quaternion in the w >= 0 hemisphere, away from the flip


# --------------------------------------------------------------------------- dataset format


def test_synthetic_dataset_round_trips_through_the_reader(tmp_path):
    files = write_synthetic(tmp_path / "room", IMAGES, n_train=6, n_test=4, size=(64, 48), progress=False)
    ds = read_dataset(files["train"])
    assert len(ds) == 6 and ds.scene == "synthetic-room-0" and ds.units == "m"
    assert all(p.is_file() for p in ds.images)
    assert np.allclose(np.linalg.norm(ds.orientations, axis=1), 1.0) and np.all(ds.orientations[:, 0] >= 0)
    room = sc.load_room(IMAGES)
    p, q = sc.pose_arrays(sc.random_poses(room, 6, seed=0))
    assert np.allclose(ds.positions, p, atol=1e-5) and np.allclose(ds.orientations, q, atol=1e-5)
    # the image on disk is the render of that pose
    img = cv2.imread(str(ds.images[2]))
    assert (
        np.abs(img.astype(int) - sc.render(room, sc.random_poses(room, 6, seed=0)[2], (64, 48)).astype(int)).max() <= 1
    )
    assert split_file(tmp_path / "room", "test").name == "dataset_test.txt"


def test_reader_cambridge_format(tmp_path):
    (tmp_path / "seq 1").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "seq 1" / f"frame{i}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    text = (
        "Visual Landmark Dataset V1\nImageFile, Camera Position [X Y Z W P Q R]\n\n"
        "seq 1/frame0.png 1.0 2.0 3.0 0.5 0.5 0.5 0.5\n"
        "seq 1/frame1.png -1.5 0 2e-1 0 0 0 -2\n"  # unnormalised, w <= 0
        "\n"
        "seq 1/frame2.png 0 0 0 1 0 0 0\n"
    )
    (tmp_path / "dataset_train.txt").write_text(text)
    ds = read_dataset(tmp_path / "dataset_train.txt")
    assert [p.name for p in ds.images] == ["frame0.png", "frame1.png", "frame2.png"]
    assert np.allclose(ds.positions, [[1, 2, 3], [-1.5, 0, 0.2], [0, 0, 0]])
    assert np.allclose(ds.orientations, [[0.5, 0.5, 0.5, 0.5], [0, 0, 0, 1], [1, 0, 0, 0]])
    # written back and read again: the same
    write_dataset(tmp_path / "copy.txt", [f"seq 1/frame{i}.png" for i in range(3)], ds.positions, ds.orientations)
    again = read_dataset(tmp_path / "copy.txt")
    assert np.allclose(again.positions, ds.positions) and np.allclose(again.orientations, ds.orientations)
    # no header at all is fine too (some 7-Scenes conversions)
    (tmp_path / "noheader.txt").write_text("seq 1/frame0.png 1 2 3 1 0 0 0\n")
    assert len(read_dataset(tmp_path / "noheader.txt")) == 1


@pytest.mark.parametrize(
    "body, needle",
    [
        ("a.png 1 2 3 1 0 0 0\nb.png 1 2 3 1 0 0\n", ":2:"),  # 6 numbers, line 2 is named
        ("a.png 1 2 3 1 0 0 0\nb.png 1 2 x 1 0 0 0\n", ":2:"),
        ("a.png 1 2 3 0 0 0 0\n", "quaternion"),
        ("missing.png 1 2 3 1 0 0 0\n", "missing"),
        ("Visual Landmark Dataset V1\n", "no samples"),
    ],
)
def test_reader_errors_name_the_problem(tmp_path, body, needle):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((4, 4, 3), np.uint8))
    f = tmp_path / "dataset_train.txt"
    f.write_text(body)
    with pytest.raises(DatasetError) as e:
        read_dataset(f)
    assert needle in str(e.value) and "Fix:" in str(e.value)


def test_missing_split_says_how_to_make_one(tmp_path):
    with pytest.raises(DatasetError, match="reloc synth"):
        split_file(tmp_path, "train")


# --------------------------------------------------------------------------- config


def test_config_section():
    from pydantic import ValidationError

    from edgepose.relocalization import RelocalizationConfig

    c = RelocalizationConfig()
    assert not c.enabled and c.every_n_frames >= 1
    assert RelocalizationConfig(enabled=True, model="reloc.tflite", every_n_frames=3).every_n_frames == 3
    with pytest.raises(ValidationError, match="no model"):
        RelocalizationConfig(enabled=True)
    with pytest.raises(ValidationError):
        RelocalizationConfig(every_n_frames=0)
    with pytest.raises(ValidationError):
        RelocalizationConfig(modle="x")


def test_parallel_rendering_gives_the_same_dataset(tmp_path):
    a = write_synthetic(tmp_path / "a", IMAGES, n_train=4, n_test=2, size=(48, 36), progress=False, workers=1)
    b = write_synthetic(tmp_path / "b", IMAGES, n_train=4, n_test=2, size=(48, 36), progress=False, workers=2)
    for split in ("train", "test"):
        assert a[split].read_text() == b[split].read_text()
        for pa, pb in zip(read_dataset(a[split]).images, read_dataset(b[split]).images):
            assert np.array_equal(cv2.imread(str(pa)), cv2.imread(str(pb)))
