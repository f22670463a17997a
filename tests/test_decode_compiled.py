"""The compiled (numba) multi-pose decoder: agreement with the numpy reference on real frames,
choosing the decoder, the fallback without numba, and where its compiled code is cached."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose.decode import Heads, QuantizedHeads, compiled, multi, select_decoder
from edgepose.errors import ModelError
from edgepose.model.posenet import load_posenet
from tests.procs import edgepose

from .conftest import REPO, SHARED, coral_model
from .procs import NO_NUMBA, run_py

VIDEO = SHARED / "video" / "openpose_video.avi"
COUPLE = SHARED / "images" / "test_couple.jpg"


@pytest.fixture(scope="module")
def video_heads():
    """Heads of every third frame of the shared video (481x641 Coral model)."""
    model = load_posenet(coral_model("481_641"), threads=2)
    cap = cv2.VideoCapture(str(VIDEO))
    heads = []
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % 3 == 0:
            heads.append(model.infer(frame)[0])
        i += 1
    cap.release()
    assert len(heads) >= 60
    return heads


@pytest.mark.parametrize("max_poses,score,radius", [(10, 0.25, 20.0), (10, 0.1, 10.0), (3, 0.5, 30.0), (1, 0.25, 20.0)])
def test_decoders_agree_pose_for_pose_on_the_shared_video(video_heads, max_poses, score, radius):
    counts = []
    for h in video_heads:
        a = multi.decode_multiple_poses(h, max_poses, score, radius)
        b = compiled.decode_multiple_poses(h, max_poses, score, radius)
        assert len(a) == len(b)
        assert (
            b.keypoints_yx.dtype == np.float32
            and b.keypoint_scores.dtype == np.float32
            and b.pose_scores.dtype == np.float32
        )
        # Same poses in the same order: the compiled decoder mirrors the reference's float32 arithmetic.
        np.testing.assert_allclose(b.keypoints_yx, a.keypoints_yx, atol=1e-3)
        np.testing.assert_allclose(b.keypoint_scores, a.keypoint_scores, atol=1e-5)
        np.testing.assert_allclose(b.pose_scores, a.pose_scores, atol=1e-5)
        counts.append(len(a))
    # Not vacuous: crowded frames, and max_poses reached.
    assert max(counts) >= min(max_poses, 8) and sum(counts) >= len(video_heads)


def test_quantized_heads_decode_to_the_bits_of_their_float_heads(video_heads):
    """A quantized model's heads go to the compiled decoder as the model output them (dequantized only where
    read): the poses are bit for bit those of the float heads numpy dequantizes, for every threshold."""
    assert all(isinstance(h, QuantizedHeads) and h.raw[0].dtype == np.uint8 for h in video_heads)
    for h in video_heads[::4]:
        f = Heads(h.heatmaps, h.offsets, h.displacements, h.stride)  # numpy's dequantization (lazily, once)
        for score in (0.05, 0.25, 0.5, 0.9):
            a = compiled.decode_multiple_poses(f, 10, score, 20.0)
            b = compiled.decode_multiple_poses(h, 10, score, 20.0)
            for x, y in (
                (a.keypoints_yx, b.keypoints_yx),
                (a.keypoint_scores, b.keypoint_scores),
                (a.pose_scores, b.pose_scores),
            ):
                np.testing.assert_array_equal(x, y)


def test_raw_threshold_is_the_first_stored_value_that_reaches_the_logit():
    for dtype, scale, zero in (("|u1", 0.39, 131), ("|i1", 0.05, -3), ("<i2", 0.001, 0)):
        info = np.iinfo(np.dtype(dtype))
        v = np.arange(info.min, info.max + 1)
        real = (v.astype(np.float32) - np.float32(zero)) * np.float32(scale)
        for thr in (-1.0986123, 0.0, 2.1972246, float(real[7]), float(real[-1]) + 1.0):
            t = compiled._raw_threshold(dtype, np.float32(scale), np.float32(zero), np.float32(thr))
            np.testing.assert_array_equal(v >= t, real >= np.float32(thr))


def test_decoder_is_chosen_by_argument_and_environment(monkeypatch):
    monkeypatch.delenv("EDGEPOSE_DECODER", raising=False)
    assert select_decoder()[0] == "numba"
    assert select_decoder("numpy") == ("numpy", multi.decode_multiple_poses)
    monkeypatch.setenv("EDGEPOSE_DECODER", "NumPy")
    assert select_decoder()[0] == "numpy"
    assert select_decoder("numba")[0] == "numba"  # the argument wins
    monkeypatch.setenv("EDGEPOSE_DECODER", "cython")
    with pytest.raises(ModelError, match="unknown decoder 'cython'"):
        select_decoder()


def test_model_decodes_with_the_chosen_decoder(monkeypatch):
    monkeypatch.setenv("EDGEPOSE_DECODER", "numpy")
    image = cv2.imread(str(COUPLE))
    slow = load_posenet(coral_model("353_481"), threads=2)
    fast = load_posenet(coral_model("353_481"), threads=2, decoder="numba")
    assert (slow.decoder_name, fast.decoder_name) == ("numpy", "numba")
    assert slow.info().extra["decoder"] == "numpy"
    a, b = slow.estimate(image), fast.estimate(image)
    assert len(a) == len(b) == 2
    for p, q in zip(a, b):
        np.testing.assert_allclose(q.keypoints, p.keypoints, atol=1e-3)


def test_device_config_chooses_the_decoder_over_the_environment(monkeypatch):
    from edgepose.config import load_config
    from edgepose.pipeline import Pipeline

    monkeypatch.setenv("EDGEPOSE_DECODER", "numba")
    cfg = load_config(None, {"model": {"path": str(coral_model("353_481")), "decoder": "numpy"}})
    assert Pipeline(cfg).model.decoder_name == "numpy"
    monkeypatch.setenv("EDGEPOSE_DECODER", "numpy")
    assert Pipeline(load_config(None, {"model": {"path": str(coral_model("353_481"))}})).model.decoder_name == "numpy"
    with pytest.raises(Exception, match="decoder"):
        load_config(None, {"model": {"decoder": "cuda"}})


@pytest.mark.integration
def test_without_numba_the_numpy_decoder_runs():
    code = NO_NUMBA + (
        "import cv2\nfrom edgepose.model.posenet import load_posenet\n"
        f"m = load_posenet({str(coral_model('353_481'))!r})\n"
        f"print(m.decoder_name, len(m.estimate(cv2.imread({str(COUPLE)!r}))))\n"
    )
    r = run_py(code)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["numpy", "2"]


@pytest.mark.integration
def test_asking_for_numba_without_it_is_one_line_with_the_fix(tmp_path):
    out = tmp_path / "out.jsonl"
    code = NO_NUMBA + (
        "from edgepose.cli import main\n"
        f"sys.exit(main(['run', '--model', {str(coral_model('353_481'))!r}, '--source', {str(COUPLE)!r}, '--jsonl', {str(out)!r}, '--quiet']))\n"
    )
    r = run_py(code, EDGEPOSE_DECODER="numba")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if "numba" in ln]
    assert len(err) == 1 and "EDGEPOSE_DECODER=numpy" in err[0], r.stderr
    assert not out.exists()


WARM = (
    "import json\nfrom edgepose.decode import compiled\nfrom edgepose.paths import numba_cache_dir\n"
    "how = [compiled.warm_up(d)[1] for d in compiled.COMMON_DTYPES]\n"
    "print(json.dumps([*how, str(numba_cache_dir())]))\n"
)


@pytest.mark.integration
def test_compiled_code_is_cached_in_edgepose_cache_dir_and_loaded_next_start(tmp_path):
    """Under systemd's ProtectSystem=strict the install is read-only: the cache must follow EDGEPOSE_CACHE_DIR
    (the unit's CacheDirectory) or NUMBA_CACHE_DIR. First boot compiles the decoder with `edgepose compile`;
    a start after that must load it instead of compiling."""
    cache = tmp_path / "cache"
    first = edgepose(
        "compile",
        timeout=600,
        cwd=REPO,
        env={"NUMBA_CACHE_DIR": None, "EDGEPOSE_DECODER": None, "EDGEPOSE_CACHE_DIR": str(cache)},
    )
    assert first.returncode == 0, first.stderr[-2000:]
    assert [ln.split(" in ")[0] for ln in first.stdout.splitlines()] == [
        "multi-pose decoder (float32 heads): compiled",
        "multi-pose decoder (uint8 heads): compiled",
    ]
    assert all(ln.endswith(f"({cache / 'numba'})") for ln in first.stdout.splitlines())
    assert any(p.suffix == ".nbi" for p in (cache / "numba").rglob("*"))  # numba's cache index
    second = run_py(WARM, EDGEPOSE_CACHE_DIR=str(cache))
    assert json.loads(second.stdout.splitlines()[-1]) == ["loaded from cache"] * 2 + [str(cache / "numba")]
    # NUMBA_CACHE_DIR (set by the systemd unit too) wins over EDGEPOSE_CACHE_DIR.
    third = run_py(WARM, EDGEPOSE_CACHE_DIR=str(tmp_path / "elsewhere"), NUMBA_CACHE_DIR=str(cache / "numba"))
    assert json.loads(third.stdout.splitlines()[-1]) == ["loaded from cache"] * 2 + [str(cache / "numba")]


@pytest.mark.integration
def test_numba_disable_jit_turns_the_compiled_decoder_off():
    """NUMBA_DISABLE_JIT=1 would run the kernel as (very slow) Python: edgepose takes its numpy decoder instead."""
    code = (
        "from edgepose.model.posenet import load_posenet\n"
        f"m = load_posenet({str(coral_model('353_481'))!r})\n"
        "print(m.decoder_name)\n"
    )
    r = run_py(code, NUMBA_DISABLE_JIT="1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["numpy"]
