"""Model registry: real downloads from ../shared/models served as a folder, a file:// URL
and a real HTTP server on 127.0.0.1 (no internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgepose.cli import main as cli_main
from edgepose.errors import DownloadError, ModelError
from edgepose.model import zoo
from tests.conftest import SHARED
from tests.procs import free_port

MIRROR = SHARED / "models"
DEFAULT_REL = "coral/posenet_mobilenet_v1_075_353_481_quant.tflite"
DEFAULT_SHA = "d589f727ee72effba3e8211b04c284fc65fc0a22907c161e2d6c080244d5c264"

needs_shared = pytest.mark.skipif(not (MIRROR / DEFAULT_REL).exists(), reason="../shared/models not present")


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(root))
    monkeypatch.delenv("EDGEPOSE_MODEL_MIRROR", raising=False)
    monkeypatch.setenv("EDGEPOSE_DOWNLOAD_TIMEOUT", "5")
    monkeypatch.setattr(zoo, "BACKOFF", 0.01)
    return root


# ----------------------------------------------------------------- registry contents


def test_default_model_is_the_raw_quant_353_481_and_matches_config_default():
    from edgepose.config import ModelConfig

    entry = zoo.lookup(zoo.DEFAULT_MODEL)
    assert entry is not None and entry.name == "coral/posenet_mobilenet_v1_075_353_481_quant"
    assert entry.kind == "tflite" and entry.input_size == (353, 481) and entry.output_stride == 16
    assert entry.primary.path == DEFAULT_REL and entry.primary.sha256 == DEFAULT_SHA
    assert ModelConfig().path == zoo.DEFAULT_MODEL
    # aliases and spellings people will type
    for alias in (
        "posenet",
        "posenet-353x481",
        "posenet_mobilenet_v1_075_353_481_quant.tflite",
        "Coral/Posenet_Mobilenet_V1_075_353_481_Quant",
    ):
        assert zoo.lookup(alias) is entry, alias


@needs_shared
def test_every_checksummed_entry_matches_the_official_file():
    verified = [e for e in zoo.REGISTRY.values() if e.verified]
    assert {e.kind for e in verified} == {"tflite", "tflite+decoder", "edgetpu"}
    assert len(verified) == 7
    for e in verified:
        (f,) = e.files
        local = MIRROR / f.path
        assert local.stat().st_size == f.size, f.path
        assert sha256(local) == f.sha256, f.path
        assert f.url.startswith("https://github.com/google-coral/project-posenet/raw/master/models/mobilenet/")
        assert f.url.endswith("/" + Path(f.path).name)


def test_tfjs_entries_cover_the_published_checkpoints_and_are_unverified():
    tfjs = {n: e for n, e in zoo.REGISTRY.items() if e.kind == "tfjs"}
    assert len(tfjs) == 3 * 2 * 3 + 2 * 3  # mobilenet mult x stride x quant + resnet stride x quant
    e = tfjs["tfjs/mobilenet_v1_075_stride16_float"]
    assert (
        e.primary.url
        == "https://storage.googleapis.com/tfjs-models/savedmodel/posenet/mobilenet/float/075/model-stride16.json"
    )
    r = tfjs["tfjs/resnet50_stride32_quant2"]
    assert (
        r.primary.url
        == "https://storage.googleapis.com/tfjs-models/savedmodel/posenet/resnet50/quant2/model-stride32.json"
    )
    assert not any(x.verified for x in tfjs.values())
    assert all(x.primary.sha256 is None and x.manifest for x in tfjs.values())


# ----------------------------------------------------------------- fetching


@needs_shared
def test_fetch_from_a_local_folder_mirror_then_served_from_cache(cache, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(MIRROR))
    p = zoo.fetch(zoo.DEFAULT_MODEL)
    assert p == cache / "models" / DEFAULT_REL
    assert sha256(p) == DEFAULT_SHA
    assert (p.parent / (p.name + ".sha256")).read_text().split()[0] == DEFAULT_SHA
    # Cached: no mirror needed any more, and resolve_model gives the same file.
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(cache / "nowhere"))
    assert zoo.resolve_model("posenet") == p
    assert zoo.resolve_model(zoo.DEFAULT_MODEL) == p
    assert leftovers(cache) == []


@needs_shared
def test_fetch_over_http_shows_progress_and_writes_a_verified_file(cache, monkeypatch, file_server, capsys):
    srv = file_server(MIRROR)
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", srv.url)
    name = "coral/posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu"
    p = zoo.fetch(name, progress=True)
    assert srv.requests == ["/coral/posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu.tflite"]
    assert sha256(p) == zoo.REGISTRY[name].primary.sha256
    err = capsys.readouterr().err
    assert "posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu.tflite" in err and "1.60M" in err  # tqdm bar
    assert leftovers(cache) == []
    # A second fetch is a cache hit: no request; force downloads again.
    zoo.fetch(name)
    assert len(srv.requests) == 1
    zoo.fetch(name, force=True)
    assert len(srv.requests) == 2


@needs_shared
def test_file_url_mirror(cache, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", MIRROR.as_uri())
    p = zoo.fetch("posenet-721x1281-decoder")
    assert p.name == "posenet_mobilenet_v1_075_721_1281_quant_decoder.tflite"
    assert sha256(p) == zoo.REGISTRY["coral/posenet_mobilenet_v1_075_721_1281_quant_decoder"].primary.sha256


def _corrupt_mirror(tmp_path: Path) -> Path:
    bad = tmp_path / "badmirror"
    (bad / "coral").mkdir(parents=True)
    data = bytearray((MIRROR / DEFAULT_REL).read_bytes())
    for i in (1000, 500_000, len(data) - 10):
        data[i] ^= 0xFF
    (bad / DEFAULT_REL).write_bytes(bytes(data))
    return bad


@needs_shared
@pytest.mark.parametrize("via", ["folder", "http"])
def test_corrupted_mirror_file_leaves_no_cached_file(cache, monkeypatch, tmp_path, file_server, via):
    bad = _corrupt_mirror(tmp_path)
    actual = sha256(bad / DEFAULT_REL)
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(bad) if via == "folder" else file_server(bad).url)
    with pytest.raises(DownloadError) as ei:
        zoo.fetch(zoo.DEFAULT_MODEL)
    msg = str(ei.value)
    assert "checksum mismatch" in msg and DEFAULT_SHA in msg and actual in msg
    assert "EDGEPOSE_MODEL_MIRROR" in ei.value.fix and "raw/master/models/mobilenet/components/" in ei.value.fix
    assert not (cache / "models" / DEFAULT_REL).exists()
    assert leftovers(cache) == []
    # resolve_model refuses the same way (nothing half-done to trip over later)
    with pytest.raises(DownloadError):
        zoo.resolve_model(zoo.DEFAULT_MODEL)


@needs_shared
def test_corrupt_cached_file_is_replaced_by_a_good_download(cache, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(MIRROR))
    p = zoo.fetch(zoo.DEFAULT_MODEL)
    p.write_bytes(b"truncated")
    assert zoo.resolve_model(zoo.DEFAULT_MODEL) == p
    assert sha256(p) == DEFAULT_SHA


@needs_shared
def test_concurrent_fetches_never_expose_a_partial_file(cache, monkeypatch, file_server):
    def slow(handler, n):  # stream in small pieces so the downloads overlap for real
        data = (MIRROR / DEFAULT_REL).read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for i in range(0, len(data), 128 * 1024):
            handler.wfile.write(data[i : i + 128 * 1024])
            time.sleep(0.01)
        return True

    srv = file_server(MIRROR, slow)
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", srv.url)
    with ThreadPoolExecutor(6) as ex:
        paths = list(ex.map(lambda _: zoo.fetch(zoo.DEFAULT_MODEL, progress=False), range(6)))
    assert len(set(paths)) == 1 and sha256(paths[0]) == DEFAULT_SHA
    assert len(srv.requests) == 6  # all six really downloaded at the same time

    # Forced re-downloads while a reader keeps opening the file: it only ever sees the whole file.
    stop = threading.Event()
    seen: list[str] = []

    def reader():
        while not stop.is_set():
            seen.append(sha256(paths[0]))

    t = threading.Thread(target=reader)
    t.start()
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda _: zoo.fetch(zoo.DEFAULT_MODEL, force=True, progress=False), range(4)))
    stop.set()
    t.join()
    assert seen and set(seen) == {DEFAULT_SHA}
    assert leftovers(cache) == []


@pytest.mark.integration
@needs_shared
def test_concurrent_fetches_from_separate_processes(cache, monkeypatch, file_server):
    import subprocess
    import sys

    def slow(handler, n):
        data = (MIRROR / DEFAULT_REL).read_bytes()
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        for i in range(0, len(data), 256 * 1024):
            handler.wfile.write(data[i : i + 256 * 1024])
            time.sleep(0.05)
        return True

    srv = file_server(MIRROR, slow)
    env = dict(os.environ, EDGEPOSE_MODEL_MIRROR=srv.url, EDGEPOSE_CACHE_DIR=str(cache))
    code = "from edgepose.model import zoo; print(zoo.fetch('posenet', progress=False))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True) for _ in range(3)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert set(outs) == {str(cache / "models" / DEFAULT_REL)}
    assert sha256(Path(outs[0])) == DEFAULT_SHA and leftovers(cache) == []
    assert len(srv.requests) >= 2  # at least two overlapped (each download takes ~0.3 s)


# ----------------------------------------------------------------- failures


def _point_default_at(monkeypatch, url: str):
    e = zoo.REGISTRY[zoo.lookup(zoo.DEFAULT_MODEL).name]
    f = dataclasses.replace(e.primary, url=url)
    monkeypatch.setitem(zoo.REGISTRY, e.name, dataclasses.replace(e, files=(f,)))


def test_network_failure_names_the_url_and_suggests_a_mirror(cache, monkeypatch, caplog):
    url = f"http://127.0.0.1:{free_port()}/coral/x.tflite"
    _point_default_at(monkeypatch, url)
    with pytest.raises(DownloadError) as ei:
        zoo.fetch(zoo.DEFAULT_MODEL)
    assert url in ei.value.problem and "EDGEPOSE_MODEL_MIRROR" in ei.value.fix
    assert sum("attempt" in r.message for r in caplog.records) == zoo.ATTEMPTS  # retried
    assert not (cache / "models" / DEFAULT_REL).exists() and leftovers(cache) == []


def test_a_stalled_server_times_out(cache, monkeypatch):
    # Accepts connections but never answers.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    monkeypatch.setenv("EDGEPOSE_DOWNLOAD_TIMEOUT", "0.3")
    monkeypatch.setattr(zoo, "ATTEMPTS", 2)
    _point_default_at(monkeypatch, f"http://127.0.0.1:{lsock.getsockname()[1]}/m.tflite")
    t0 = time.monotonic()
    try:
        with pytest.raises(DownloadError, match="timed out"):
            zoo.fetch(zoo.DEFAULT_MODEL)
    finally:
        lsock.close()
    assert time.monotonic() - t0 < 5


@needs_shared
def test_retry_after_a_server_error_and_a_truncated_body(cache, monkeypatch, file_server):
    def flaky(handler, n):
        if n == 1:
            handler.send_error(503)
            return True
        if n == 2:  # promises the whole file, sends a third, hangs up
            data = (MIRROR / DEFAULT_REL).read_bytes()
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 3])
            handler.close_connection = True
            return True
        return False

    srv = file_server(MIRROR, flaky)
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", srv.url)
    p = zoo.fetch(zoo.DEFAULT_MODEL)
    assert len(srv.requests) == 3 and sha256(p) == DEFAULT_SHA


def test_missing_file_on_an_http_mirror_is_not_retried(cache, monkeypatch, file_server, tmp_path):
    srv = file_server(tmp_path)  # empty mirror
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", srv.url)
    with pytest.raises(DownloadError) as ei:
        zoo.fetch(zoo.DEFAULT_MODEL)
    assert len(srv.requests) == 1
    assert "HTTP 404" in ei.value.problem and DEFAULT_REL in ei.value.problem
    assert (
        "EDGEPOSE_MODEL_MIRROR" in ei.value.fix
        and "components/posenet_mobilenet_v1_075_353_481_quant.tflite" in ei.value.fix
    )


def test_unknown_name_lists_close_matches(cache):
    with pytest.raises(ModelError) as ei:
        zoo.resolve_model("posenet_mobilenet_v1_075_353_418")
    assert "not a known model name" in ei.value.problem
    assert "posenet_mobilenet_v1_075_353_481" in ei.value.fix and "edgepose models list" in ei.value.fix
    with pytest.raises(ModelError, match="no model file at 'missing/dir/model.tflite'"):
        zoo.resolve_model("missing/dir/model.tflite")
    with pytest.raises(ModelError, match="empty name"):
        zoo.resolve_model("")
    assert not cache.exists()  # nothing was fetched or created


@needs_shared
def test_existing_path_is_returned_as_is(cache):
    p = MIRROR / "coral" / "posenet_mobilenet_v1_075_481_641_quant.tflite"
    assert zoo.resolve_model(str(p)) == p
    assert zoo.resolve_model(p) == p
    assert not cache.exists()


def test_cache_dir_override_and_platform_default(cache, monkeypatch):
    from platformdirs import user_cache_dir

    assert zoo.models_dir() == cache / "models"
    monkeypatch.delenv("EDGEPOSE_CACHE_DIR")
    assert zoo.models_dir() == Path(user_cache_dir("edgepose")) / "models"


def test_unwritable_cache_gives_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("EDGEPOSE_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(MIRROR))
    with pytest.raises(DownloadError) as ei:
        zoo.fetch(zoo.DEFAULT_MODEL)
    assert "cannot write to the model cache" in ei.value.problem and "EDGEPOSE_CACHE_DIR" in ei.value.fix


# ----------------------------------------------------------------- unverified multi-file (TF.js) entries


def _tfjs_mirror(root: Path, paths=("group1-shard1of2.bin", "group1-shard2of2.bin")) -> dict[str, bytes]:
    """A TF.js graph-model layout: model.json naming its weight shards (the format tfjs-models serves)."""
    d = root / "tfjs" / "mobilenet" / "float" / "075"
    d.mkdir(parents=True)
    files = {
        "model-stride16.json": json.dumps(
            {
                "format": "graph-model",
                "modelTopology": {"node": []},
                "weightsManifest": [
                    {"paths": list(paths), "weights": [{"name": "w", "shape": [3], "dtype": "float32"}]}
                ],
            }
        ).encode()
    }
    for i, p in enumerate(paths):
        files[p] = os.urandom(50_000 + i)
    for n, b in files.items():
        if "/" not in n:
            (d / n).write_bytes(b)
    return files


def test_unverified_tfjs_model_needs_opt_in_then_is_recorded(cache, monkeypatch, tmp_path, file_server, capsys):
    files = _tfjs_mirror(tmp_path / "m")
    srv = file_server(tmp_path / "m")
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", srv.url)
    name = "tfjs/mobilenet_v1_075_stride16_float"

    with pytest.raises(DownloadError) as ei:
        zoo.fetch(name)
    assert "no published sha256" in ei.value.problem and "--allow-unverified" in ei.value.fix
    assert srv.requests == [] and not cache.exists()

    p = zoo.fetch(name, allow_unverified=True, progress=False)
    assert p == cache / "models" / "tfjs/mobilenet/float/075/model-stride16.json"
    err = capsys.readouterr().err
    for n, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        assert (p.parent / n).read_bytes() == data
        assert (p.parent / (n + ".sha256")).read_text().split()[0] == digest
        assert f"sha256 {digest}" in err
    assert sorted(srv.requests) == sorted("/tfjs/mobilenet/float/075/" + n for n in files)

    info = {m.name: m for m in zoo.list_models()}[name]
    assert info.cached and not info.verified and info.size_bytes == sum(len(b) for b in files.values())

    # Later uses need neither the flag nor the network, and are checked against the record.
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(tmp_path / "gone"))
    assert zoo.resolve_model(name) == p
    (p.parent / "group1-shard2of2.bin").write_bytes(b"tampered")
    with pytest.raises(DownloadError, match="changed since it was downloaded"):
        zoo.resolve_model(name)


def test_tfjs_manifest_cannot_write_outside_the_cache(cache, monkeypatch, tmp_path):
    _tfjs_mirror(tmp_path / "m", paths=("../../../../../escape.bin",))
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(tmp_path / "m"))
    with pytest.raises(DownloadError, match="unsafe weight path"):
        zoo.fetch("tfjs/mobilenet_v1_075_stride16_float", allow_unverified=True, progress=False)
    assert not list(tmp_path.rglob("escape.bin"))
    # The refused manifest and its recorded sha256 are not left in the cache.
    assert not [p for p in (cache / "models").rglob("*") if p.is_file()], list((cache / "models").rglob("*"))


@needs_shared
def test_corrupt_cached_file_is_deleted_even_when_the_new_download_fails(cache, monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(MIRROR))
    p = zoo.fetch(zoo.DEFAULT_MODEL)
    p.write_bytes(b"truncated")
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(tmp_path / "no-such-mirror"))
    with pytest.raises(DownloadError):
        zoo.resolve_model(zoo.DEFAULT_MODEL)
    assert not p.exists() and not p.with_name(p.name + ".sha256").exists()


# ----------------------------------------------------------------- CLI


@needs_shared
def test_cli_list_fetch_rm(cache, monkeypatch, capsys):
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(MIRROR))
    assert cli_main(["models", "fetch", "posenet-481x641", "--no-progress"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(cache / "models" / "coral/posenet_mobilenet_v1_075_481_641_quant.tflite")

    assert cli_main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "INPUT", "HxW", "KIND", "SIZE", "MB", "CACHED", "VERIFIED"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:] if ln.startswith(("coral/", "tfjs/"))}
    assert len(rows) == len(zoo.REGISTRY)
    assert rows["coral/posenet_mobilenet_v1_075_481_641_quant"][1:] == ["481x641", "tflite", "1.3", "yes", "sha256"]
    assert rows["coral/posenet_mobilenet_v1_075_353_481_quant"][1:3] == ["(default)", "353x481"]
    assert rows["coral/posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu"][-3:] == ["1.7", "no", "sha256"]
    assert rows["tfjs/resnet50_stride32_float"][1:] == ["any", "tfjs", "?", "no", "no"]

    assert cli_main(["models", "list", "--json", "--kind", "edgetpu"]) == 0
    (doc,) = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    assert doc["input_size"] == [481, 641] and doc["verified"] and not doc["cached"]

    assert cli_main(["models", "rm", "posenet-481x641"]) == 0
    assert not (cache / "models/coral/posenet_mobilenet_v1_075_481_641_quant.tflite").exists()


def test_cli_errors_are_one_line(cache, capsys):
    assert cli_main(["models", "fetch", "posenet-353x418"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "posenet-353x481" in err and err.startswith("edgepose models: error:")
    assert cli_main(["models", "fetch", "tfjs/resnet50_stride16_float"]) == 2
    assert "--allow-unverified" in capsys.readouterr().err


@needs_shared
@pytest.mark.parametrize(
    "name, hw, decoder, edgetpu",
    [
        ("posenet", (353, 481), False, False),
        ("posenet-721x1281-decoder", (721, 1281), True, False),
        ("posenet-481x641-edgetpu", (481, 641), True, True),
    ],
)
def test_cli_info_reports_what_the_runtime_detects(cache, monkeypatch, capsys, name, hw, decoder, edgetpu):
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", str(MIRROR))
    assert cli_main(["models", "info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["input_height"], info["input_width"]) == hw
    assert info["input_dtype"] == "uint8" and info["output_stride"] == 16 and info["edgetpu"] is edgetpu
    assert set(info["outputs"]) == {"heatmaps", "short_offsets", "mid_offsets"}
    assert info["registry"]["name"] == zoo.lookup(name).name and info["registry"]["verified"]
    if decoder:  # Coral's PosenetDecoderOp settings, read from the op's flexbuffer options
        assert info["decoder_op"] == {"max_detections": 10, "score_threshold": 0.2, "nms_radius": 10.0, "stride": 16}
    else:
        assert info["decoder_op"] is None
    # The table form for a path shows the same facts.
    assert cli_main(["models", "info", info["path"]]) == 0
    out = capsys.readouterr().out
    assert f"{hw[0]}x{hw[1]} (HxW) uint8" in out and f"edge tpu       {'yes' if edgetpu else 'no'}" in out
    assert "registry       -" in out


def test_cli_info_on_a_non_model_file_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"<html>not found</html>")
    assert cli_main(["models", "info", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a TFLite model" in err and err.count("\n") == 1
