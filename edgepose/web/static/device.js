// Device page: the stream is an <img> on /stream.mjpg; status and events are polled as JSON.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const set = (id, text) => { $(id).textContent = text; };

  function fmtTime(ts) {
    return new Date(ts * 1000).toLocaleTimeString();
  }

  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  async function pollStatus() {
    try {
      const s = await getJSON("api/status");
      set("device", s.device);
      document.title = "edgepose " + s.device;
      set("s-model", s.model || "–");
      set("s-camera", s.camera + (s.camera_error ? " (" + s.camera_error + ")" : ""));
      set("s-fps", s.fps.toFixed(1));
      set("s-ms", Object.entries(s.ms).map(([k, v]) => k + " " + v.toFixed(1)).join(", ") || "–");
      set("s-people", String(s.people));
      if (s.mqtt) {
        set("s-mqtt", (s.mqtt.connected ? "connected to " : "not connected to ") + s.mqtt.broker);
        $("s-mqtt").className = s.mqtt.connected ? "ok" : "bad";
        set("s-outbox", s.mqtt.outbox + " pending");
      }
      set("s-frames", String(s.frames));
      $("privacy-note").hidden = s.privacy !== "skeleton";
      set("conn", "live");
      $("conn").className = "badge ok";
    } catch (e) {
      set("conn", "unreachable");
      $("conn").className = "badge bad";
    }
  }

  let shown = -1;
  async function pollEvents() {
    try {
      const d = await getJSON("api/events");
      if (d.total === shown) return;
      shown = d.total;
      const ol = $("events");
      ol.replaceChildren();
      for (const e of d.events.slice(-30).reverse()) {
        const li = document.createElement("li");
        const what = e.action + " " + e.kind + (e.count != null ? " ×" + e.count : "");
        li.textContent = fmtTime(e.ts) + "  #" + e.track_id + "  " + what + "  (" + Math.round(e.confidence * 100) + " %)";
        ol.appendChild(li);
      }
    } catch (e) { /* shown by the status badge */ }
  }

  // A stream that ends (service restart) is reopened.
  $("stream").addEventListener("error", () => {
    setTimeout(() => { $("stream").src = "stream.mjpg?" + Date.now(); }, 2000);
  });
  pollStatus(); pollEvents();
  setInterval(pollStatus, 1000);
  setInterval(pollEvents, 1000);
})();
