"""``edgepose view`` in a real browser: three devices replaying a recording of the shared video, one killed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from edgepose.web.fleet import compact_people, subscription
from tests.conftest import SHARED
from tests.conftest_mqtt import TEST_MODEL
from tests.conftest_web import get, get_json
from tests.procs import edgepose, edgepose_process, finish, free_port, wait_until

VIDEO = SHARED / "video" / "openpose_video.avi"
KEEPALIVE = 5


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frame records of the shared clip by the real model (tracking and actions on), as ``edgepose run --jsonl`` writes them."""
    from edgepose.config import load_config
    from edgepose.pipeline import Pipeline

    cfg = load_config(overrides={"model": {"path": str(TEST_MODEL)}, "source": {"uri": str(VIDEO)}})
    path = tmp_path_factory.mktemp("rec") / "street.jsonl"
    with path.open("w") as f:
        for res in Pipeline(cfg).stream(max_frames=75):
            f.write(json.dumps(res.to_dict()) + "\n")
    return path


def device_config(path: Path, device: str, port: int) -> Path:
    path.write_text(
        "\n".join(
            [
                f'device_id = "{device}"',
                "[mqtt]",
                'host = "127.0.0.1"',
                f"port = {port}",
                f"keepalive = {KEEPALIVE}",
                f'outbox_path = "{path.parent / (device + ".sqlite")}"',
                "status_interval = 1.0",
            ]
        )
        + "\n"
    )
    return path


def cli(*args: str) -> subprocess.Popen:
    return edgepose_process(*args)


def tiles(drv) -> dict[str, str]:
    return drv.execute_script(
        "const o = {}; for (const t of document.querySelectorAll('.tile')) o[t.dataset.device] = t.className; return o;"
    )


def painted(drv, device: str) -> float:
    """Fraction of a tile's canvas pixels that differ from its background (skeletons drawn)."""
    return drv.execute_script(
        """
        const c = document.querySelector(`.tile[data-device="${arguments[0]}"] canvas`);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i] - 0x20) + Math.abs(d[i+1] - 0x28) + Math.abs(d[i+2] - 0x30) > 40) n++;
        return n / (d.length / 4);""",
        device,
    )


@pytest.mark.integration
def test_fleet_page_shows_live_tiles_and_a_killed_device_going_offline(broker, tmp_path, recording, browser):
    from selenium.webdriver.common.by import By

    names = ["hall", "kitchen", "porch"]
    devices = {
        n: cli(
            "serve",
            "--config",
            str(device_config(tmp_path / f"{n}.toml", n, broker.port)),
            "--replay",
            str(recording),
            "--replay-loop",
            "--replay-fps",
            "15",
        )
        for n in names
    }
    http_port = free_port()
    view = cli(
        "view",
        "--config",
        str(device_config(tmp_path / "view.toml", "viewer", broker.port)),
        "--http-port",
        str(http_port),
    )
    url = f"http://127.0.0.1:{http_port}/"
    try:
        wait_until(lambda: get(url + "healthz")[0] == 200, 30, "edgepose view to serve")
        wait_until(
            lambda: (
                all(d.get("online") for d in get_json(url + "api/fleet")["devices"])
                and len(get_json(url + "api/fleet")["devices"]) == 3
            ),
            60,
            "three devices online",
        )
        browser.get(url)
        wait_until(
            lambda: len(tiles(browser)) == 3 and all("online" in c.split() for c in tiles(browser).values()),
            30,
            "three tiles",
        )
        assert sorted(tiles(browser)) == names  # one tile per device, sorted
        seen = lambda: browser.execute_script("return {...window.edgeposeStats.frames}")  # noqa: E731
        frames0 = seen()
        # Live: poses keep arriving on every tile (a device on a busy machine may take a moment to start its replay).
        wait_until(
            lambda: all(seen().get(n, 0) >= frames0.get(n, 0) + 5 for n in names), 30, "live poses on every tile"
        )
        for n in names:
            wait_until(lambda n=n: painted(browser, n) > 0.002, 10, f"skeletons on the canvas of {n}")
        # The merged log: events of every device (the recording has posture events), with device and track id.
        log_lines = lambda: browser.execute_script(  # noqa: E731 - the list changes under us: read it in one go
            "return [...document.querySelectorAll('#events li')].map(li => [li.dataset.device, li.textContent])"
        )
        wait_until(lambda: {dev for dev, _ in log_lines()} == set(names), 60, "events of all three devices in the log")
        assert all(f"{dev}  #" in text for dev, text in log_lines())

        # The `state` summary on each tile: what its people are doing now (and FALL), as the device says it.
        def now_matches() -> bool:
            states = {d["device"]: d.get("state") or {} for d in get_json(url + "api/fleet")["devices"]}
            shown = browser.execute_script(
                "const o = {}; for (const t of document.querySelectorAll('.tile')) o[t.dataset.device] = t.querySelector('.now').textContent; return o;"
            )
            want = {
                n: " · ".join(
                    (["FALL"] if st.get("fall") else []) + ([", ".join(st["actions"])] if st.get("actions") else [])
                )
                for n, st in states.items()
            }
            return shown == want and any(want.values())

        wait_until(now_matches, 30, "each tile showing its device's current actions")

        # SIGKILL: no goodbye; the broker publishes the Last Will and the tile turns offline within the keepalive.
        t0 = time.monotonic()
        devices["kitchen"].send_signal(signal.SIGKILL)
        devices["kitchen"].wait(10)
        wait_until(
            lambda: "offline" in tiles(browser)["kitchen"].split(), 1.5 * KEEPALIVE, "the killed device's tile offline"
        )
        took = time.monotonic() - t0
        assert took <= 1.5 * KEEPALIVE
        badge = browser.find_element(By.CSS_SELECTOR, '.tile[data-device="kitchen"] .state').text
        assert badge == "offline (connection lost)"
        assert all("online" in tiles(browser)[n].split() for n in ("hall", "porch"))
        assert browser.find_element(By.ID, "summary").text == "3 devices, 2 online"
    finally:
        errs = {n: finish(p, terminate=True)[1] for n, p in devices.items()}
        view_err = finish(view, terminate=True)[1]
    assert view.returncode == 0, view_err[-2000:]
    for n in ("hall", "porch"):
        assert devices[n].returncode == 0, errs[n][-2000:]


@pytest.mark.integration
def test_view_refuses_other_address_without_credentials(tmp_path):
    proc = edgepose(
        "view", "--broker", "127.0.0.1:1", "--http-host", "0.0.0.0", "--http-port", str(free_port()), timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "serves beyond this machine" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_subscription_for_topic_prefixes():
    assert subscription("edgepose/{device_id}")[0] == "edgepose/+/#"
    f, rx = subscription("site3/cam-{device_id}/pose")
    assert f == "site3/+/pose/#"
    m = rx.match("site3/cam-door/pose/status")
    assert m is not None and m["device"] == "door" and m["kind"] == "status"
    assert rx.match("site3/other/pose/status") is None
    f, rx = subscription("edgepose/hall")  # no {device_id}: the one device
    assert f == "edgepose/hall/#" and rx.match("edgepose/hall/poses")["device"] == "hall"


def test_compact_people_keeps_coco_order():
    from edgepose.types import KEYPOINT_NAMES

    p = {"id": 3, "score": 0.9, "keypoints": {n: [i, 2 * i, 0.5] for i, n in enumerate(KEYPOINT_NAMES)}}
    (c,) = compact_people([p])
    assert c["id"] == 3 and c["k"][3 * 5 : 3 * 5 + 3] == [5, 10, 0.5] and len(c["k"]) == 51


def test_fleet_js_draws_with_the_python_skeleton_and_palette():
    import re

    from edgepose.draw import PALETTE
    from edgepose.types import SKELETON

    js = (Path(__file__).resolve().parents[1] / "edgepose" / "web" / "static" / "fleet.js").read_text()
    skel = json.loads(re.search(r"const SKELETON = (\[.*?\]\]);", js).group(1))
    pal = re.findall(r'"(#[0-9a-f]{6})"', re.search(r"const PALETTE = \[(.*?)\];", js, re.S).group(1))
    assert [tuple(e) for e in skel] == list(SKELETON)
    assert pal == [f"#{r:02x}{g:02x}{b:02x}" for b, g, r in PALETTE]


def test_view_beyond_loopback_serves_with_the_token_only(monkeypatch):
    from edgepose.mqtt.config import MqttConfig
    from edgepose.web.config import HttpConfig
    from edgepose.web.fleet import FleetHub

    monkeypatch.setenv("VIEW_TOKEN", "v13w-" + "y" * 24)
    port = free_port()
    hub = FleetHub(
        HttpConfig(host="0.0.0.0", port=port, token_env="VIEW_TOKEN"),
        MqttConfig(host="127.0.0.1", port=free_port()),
        client_id="test-view",
    ).start()
    url = f"http://127.0.0.1:{port}/"
    try:
        for path in ("", "sse", "api/fleet", "static/fleet.js"):
            assert get(url + path)[0] == 401, path  # no token: refused
        code, body, _ = get(url, {"Authorization": "Bearer v13w-" + "y" * 24})
        assert code == 200 and b"edgepose fleet" in body  # token: served
        assert get_json(url + "api/fleet", {"Authorization": "Bearer v13w-" + "y" * 24})["connected"] is False
        assert get(url + "healthz")[0] == 503  # no broker: the probe says so
    finally:
        hub.close()
