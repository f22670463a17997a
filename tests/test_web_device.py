"""The device page of ``edgepose serve`` in a real browser: live stream, privacy mode, metrics, auth and binding."""

from __future__ import annotations

import base64
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgepose.draw import PALETTE
from edgepose.errors import ConfigError
from edgepose.web.config import HttpConfig
from edgepose.web.device import PRIVACY_BACKGROUND, DeviceWeb
from tests.conftest import SHARED
from tests.conftest_mqtt import TEST_MODEL, frame
from tests.conftest_web import element_image, get, get_json, new_browser
from tests.procs import edgepose, finish, free_port, serve, wait_until, write_device_config

VIDEO = SHARED / "video" / "openpose_video.avi"
DEVICE = "door-pi"
#: Saturated track colours (BGR) that the street clip itself hardly contains (grey and beige are left out).
VIVID = np.array([PALETTE[i] for i in (0, 1, 2, 3, 4, 6, 9)], np.int16)


def write_config(path: Path, mqtt_port: int, http_port: int, **http) -> Path:
    return write_device_config(
        path,
        DEVICE,
        {
            "model": {"path": TEST_MODEL},
            "source": {"uri": VIDEO, "loop": True},
            "mqtt": {
                "host": "127.0.0.1",
                "port": mqtt_port,
                "outbox_path": path.parent / "outbox.sqlite",
                "status_interval": 1.0,
            },
            "http": {"enabled": True, "port": http_port, **http},
        },
    )


def vivid_fraction(img: np.ndarray, tol: int = 30) -> float:
    d = np.abs(img[:, :, None, :].astype(np.int16) - VIVID[None, None]).max(axis=-1)
    return float((d <= tol).any(axis=-1).mean())


def background_fraction(img: np.ndarray, tol: int = 14) -> float:
    return float((np.abs(img.astype(np.int16) - np.array(PRIVACY_BACKGROUND, np.int16)).max(axis=-1) <= tol).mean())


def metrics(url: str, headers: dict | None = None) -> dict[str, float]:
    code, body, hdrs = get(url + "metrics", headers)
    assert code == 200 and hdrs["Content-Type"].startswith("text/plain; version=")
    out = {}
    for fam in text_string_to_metric_families(body.decode()):  # prometheus_client's own parser
        for s in fam.samples:
            key = s.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
            out[key] = s.value
    return out


def open_page(drv, url: str):
    from selenium.webdriver.common.by import By

    drv.get(url)
    img = drv.find_element(By.ID, "stream")
    wait_until(
        lambda: drv.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img), 30, "the stream"
    )
    return img


@pytest.mark.integration
def test_device_page_shows_the_live_annotated_stream(broker, tmp_path, browser):
    from selenium.webdriver.common.by import By

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = serve("--config", str(write_config(tmp_path / "device.toml", broker.port, port)))
    try:
        st = wait_until(lambda: (s := get_json(url + "api/status"))["frames"] >= 5 and s, 90, "frames on /api/status")
        assert st["device"] == DEVICE and st["model"] == TEST_MODEL.stem and st["camera"] == "ok"
        wait_until(lambda: get_json(url + "api/status")["mqtt"]["connected"], 20, "MQTT connected")
        m0 = metrics(url)
        assert m0["edgepose_stream_frames_encoded_total"] == 0  # nobody watches: nothing encoded

        img = open_page(browser, url)
        time.sleep(1.0)
        a = element_image(img)
        time.sleep(1.5)
        b = element_image(img)
        assert a.shape == b.shape and a.shape[1] >= 600
        assert float(np.abs(a.astype(np.int16) - b).mean()) > 2.0, "the stream does not move"
        assert background_fraction(a) < 0.1  # camera pixels, not a plain background
        assert max(vivid_fraction(a), vivid_fraction(b)) > 0.0015, "no skeleton-coloured pixels"

        # The status panel is filled from /api/status.
        wait_until(
            lambda: browser.find_element(By.ID, "s-mqtt").text.startswith("connected to 127.0.0.1"),
            10,
            "MQTT in the page",
        )
        assert browser.find_element(By.ID, "device").text == DEVICE
        assert "invoke" in browser.find_element(By.ID, "s-ms").text
        assert int(browser.find_element(By.ID, "s-people").text) >= 0
        # Events with their track ids (the clip's people stand and walk: posture events within seconds).
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#events li"), 60, "events in the page")
        assert "#" in browser.find_element(By.CSS_SELECTOR, "#events li").text

        m = metrics(url)
        assert m["edgepose_frames_total"] > m0["edgepose_frames_total"] >= 5
        assert m["edgepose_stream_viewers"] == 1 and m["edgepose_stream_frames_encoded_total"] > 5
        assert m["edgepose_mqtt_connected"] == 1 and "edgepose_outbox_depth" in m
        assert m["edgepose_invoke_milliseconds_count"] == m["edgepose_frames_total"]
        # Publishing is timed per frame like the model's stages (the serve loop, around the MQTT sink).
        assert m["edgepose_publish_milliseconds_count"] == m["edgepose_frames_total"]
        assert 0 < m["edgepose_publish_milliseconds_sum"] < m["edgepose_invoke_milliseconds_sum"]
        assert "publish" in get_json(url + "api/status")["ms"]
        assert m["edgepose_frame_milliseconds_sum"] > m["edgepose_invoke_milliseconds_sum"] > 0
        assert m["edgepose_invoke_milliseconds_bucket{le=+Inf}"] == m["edgepose_invoke_milliseconds_count"]
        assert any(k.startswith("edgepose_events_total{action=") for k in m)
        assert m["edgepose_camera_reconnects_total"] == 0 and m["edgepose_people"] >= 0
        ev = get_json(url + "api/events")
        assert ev["total"] >= 1 and {"track_id", "action", "kind", "ts"} <= set(ev["events"][0])

        # The viewer leaves: encoding stops.
        browser.get("about:blank")
        wait_until(lambda: metrics(url)["edgepose_stream_viewers"] == 0, 10, "the viewer to leave")

        def settled() -> bool:  # a frame being encoded as the viewer left may still be counted
            before = metrics(url)["edgepose_stream_frames_encoded_total"]
            time.sleep(0.3)
            return metrics(url)["edgepose_stream_frames_encoded_total"] == before

        wait_until(settled, 10, "encoding to stop")
        n = metrics(url)["edgepose_stream_frames_encoded_total"]
        time.sleep(1.0)
        assert metrics(url)["edgepose_stream_frames_encoded_total"] == n
        assert get(url + "healthz")[0] == 200
    finally:
        err = finish(proc, terminate=True)[1]
    assert proc.returncode == 0, err[-3000:]


@pytest.mark.integration
def test_privacy_mode_shows_skeletons_and_no_camera_pixels(broker, tmp_path, browser):
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = serve("--config", str(write_config(tmp_path / "device.toml", broker.port, port, privacy="skeleton")))
    try:
        wait_until(lambda: get_json(url + "api/status")["frames"] >= 5, 90, "frames")
        img = open_page(browser, url)
        shots = []
        for _ in range(3):
            time.sleep(0.8)
            shots.append(element_image(img))
        # A camera frame of this clip is at most 3 % background-coloured; the skeletons (scaled and anti-aliased by
        # the browser) cover about 10 % of a frame when the people come close, so the bound sits between the two.
        for s in shots:
            assert background_fraction(s) > 0.75, "camera pixels in privacy mode"
        assert max(vivid_fraction(s) for s in shots) > 0.0015, "no skeletons"
        assert float(np.abs(shots[0].astype(np.int16) - shots[-1]).mean()) > 0.05, "the skeletons do not move"
        assert get_json(url + "api/status")["privacy"] == "skeleton"
        from selenium.webdriver.common.by import By

        wait_until(lambda: browser.find_element(By.ID, "privacy-note").is_displayed(), 10, "the privacy note")
    finally:
        err = finish(proc, terminate=True)[1]
    assert proc.returncode == 0, err[-3000:]


def test_privacy_mode_never_stores_an_image(real_poses):
    """Even a result that carries a camera image (a caller kept it) is stored without it."""
    web = DeviceWeb(HttpConfig(port=0, privacy="skeleton"), DEVICE)
    try:
        fr = frame(0, real_poses)
        fr.image = np.full((fr.height, fr.width, 3), 200, np.uint8)
        web.on_frame(fr)
        assert web._latest is not None and web._latest[1] is None and not web.keep_image
    finally:
        web.server.server_close()


def test_ongoing_action_stays_on_the_stream_until_it_ends(real_poses):
    """Events arrive on one frame; the stream (at most stream_fps of the frames) shows the action until its end."""
    from edgepose.types import ActionEvent

    web = DeviceWeb(HttpConfig(port=0), DEVICE)
    try:
        web.on_frame(frame(0, real_poses, [ActionEvent(1, "waving", "start", 0.0)]))
        for i in range(1, 30):
            web.on_frame(frame(i, real_poses))
            assert web._latest is not None and web._latest[2] == {1: ["waving"]}, i
        web.on_frame(frame(30, real_poses, [ActionEvent(1, "waving", "end", 1.0)]))
        assert web._latest is not None and web._latest[2] == {}
    finally:
        web.server.server_close()


def _feed(web: DeviceWeb, poses, stop_ev: threading.Event) -> None:
    i = 0
    while not stop_ev.is_set():
        shifted = [p.scaled(1.0, 1.0, dx=5.0 * (i % 40)) for p in poses]
        web.on_frame(frame(i, shifted, ts=time.time()))
        i += 1
        time.sleep(0.05)


def test_binding_default_is_loopback():
    web = DeviceWeb(HttpConfig(port=0), DEVICE)
    try:
        assert web.server.server_address[0] == "127.0.0.1" and not web.server.auth.required
    finally:
        web.server.server_close()


@pytest.mark.integration
def test_other_address_without_credentials_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("EP_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="serves beyond this machine"):
        DeviceWeb(HttpConfig(host="0.0.0.0", port=0), DEVICE)
    with pytest.raises(ConfigError, match="EP_TOKEN, which is not set"):
        DeviceWeb(HttpConfig(host="0.0.0.0", port=0, token_env="EP_TOKEN"), DEVICE)
    # Through the command: one line naming the problem and the fix, exit 2, no traceback, before the model loads.
    cfg = write_config(tmp_path / "device.toml", free_port(), free_port(), host="0.0.0.0")
    proc = edgepose("serve", "--config", str(cfg), timeout=60)
    assert proc.returncode == 2
    assert (
        "http.host = '0.0.0.0' serves beyond this machine" in proc.stderr and "Fix: set http.token_env" in proc.stderr
    )
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_token_required_beyond_loopback(monkeypatch, caplog, real_poses, tmp_path):
    token = "t0k3n-" + "x" * 30
    monkeypatch.setenv("EP_TOKEN", token)
    monkeypatch.setenv("EP_PASS", "pa55word")
    caplog.set_level(logging.DEBUG)
    port = free_port()
    web = DeviceWeb(
        HttpConfig(host="0.0.0.0", port=port, token_env="EP_TOKEN", username="ops", password_env="EP_PASS"),
        DEVICE,
        model="test",
    ).start()
    stop_ev = threading.Event()
    feeder = threading.Thread(target=_feed, args=(web, real_poses, stop_ev), daemon=True)
    feeder.start()
    url = f"http://127.0.0.1:{port}/"
    basic = lambda u, p: "Basic " + base64.b64encode(f"{u}:{p}".encode()).decode()  # noqa: E731
    try:
        assert web.server.server_address[0] == "0.0.0.0"
        for path in ("", "metrics", "api/status", "api/events", "stream.mjpg", "static/device.js"):
            code, _, hdrs = get(url + path)
            assert code == 401 and hdrs["WWW-Authenticate"].startswith("Basic"), path  # no token: refused
            assert get(url + path, {"Authorization": "Bearer wrong"})[0] == 401
            assert get(url + path, {"Authorization": basic("ops", "wrong")})[0] == 401
        assert get(url + "healthz")[0] == 200  # probes need no credentials and learn nothing
        code, page, _ = get(url, {"Authorization": f"Bearer {token}"})
        assert code == 200 and b'<img id="stream"' in page and token.encode() not in page  # token: served
        assert get(url + "api/status", {"Authorization": basic("ops", "pa55word")})[0] == 200
        assert get(url + "api/status", {"Authorization": basic("anyone", token)})[0] == 200
        assert "edgepose_frames_total" in metrics(url, {"Authorization": f"Bearer {token}"})

        # A browser without credentials is refused; with them (as a reverse proxy would add) sees the live stream.
        drv = new_browser(tmp_path / "p1")
        try:
            from selenium.webdriver.common.by import By

            drv.get(url)  # 401 with a basic-auth challenge: headless Chromium dismisses the prompt and shows nothing
            assert not drv.find_elements(By.ID, "stream") and "edgepose" not in drv.title
        finally:
            drv.quit()
        drv = new_browser(tmp_path / "p2", {"Authorization": f"Bearer {token}"})
        try:
            img = open_page(drv, url)
            time.sleep(0.6)
            a = element_image(img)
            time.sleep(0.8)
            assert float(np.abs(a.astype(np.int16) - element_image(img)).mean()) > 0.05
            assert vivid_fraction(a) > 0.0005 and background_fraction(a) > 0.9  # two skeletons on the plain background
        finally:
            drv.quit()
    finally:
        stop_ev.set()
        feeder.join(2)
        web.close()
    # Nothing edgepose logs carries a credential (Selenium's own debug log of the test's header is not ours).
    ours = [r for r in caplog.records if r.name.startswith("edgepose")]
    assert any("GET /" in r.getMessage() for r in ours)
    logged = "".join(r.getMessage() + str(r.args) for r in ours)
    assert token not in logged and "pa55word" not in logged


def test_camera_reconnects_and_healthz(real_poses, monkeypatch):
    """/healthz: 200 while frames flow or the camera is retried on purpose, 503 once frames stop; reconnects counted."""
    import edgepose.web.device as device

    web = DeviceWeb(HttpConfig(port=0), DEVICE).start()
    url = web.url
    try:
        assert get(url + "healthz")[0] == 200  # starting: waiting for the camera is not a hang
        web.on_camera("ok")
        web.on_frame(frame(0, real_poses))
        assert get(url + "healthz")[0] == 200
        for state in ("unavailable", "ok", "unavailable", "ok"):
            web.on_camera(state, "gone" if state == "unavailable" else None)
        assert metrics(url)["edgepose_camera_reconnects_total"] == 2
        monkeypatch.setattr(device, "STALL_S", 0.2)
        code, body, _ = wait_until(
            lambda: (r := get(url + "healthz"))[0] == 503 and r, 10, "/healthz to report the stall"
        )
        assert body == b"stalled\n"
    finally:
        web.close()
