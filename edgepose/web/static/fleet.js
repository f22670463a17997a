// Fleet page: one EventSource on /sse; a tile per device with its skeletons drawn on a canvas.
"use strict";
(function () {
  // Same limbs and colours as edgepose/types.py SKELETON and edgepose/draw.py PALETTE (tests compare them).
  const SKELETON = [[5, 6], [5, 7], [7, 9], [6, 8], [8, 10], [5, 11], [6, 12], [11, 12], [11, 13], [13, 15], [12, 14], [14, 16]];
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"];
  const UNTRACKED = "#00ffff";
  const MIN_PART = 0.25;
  const MAX_EVENTS = 100;
  const MAX_LATENCIES = 20000;

  // Read by the benchmark and the tests: publish-to-browser latencies (s) and frames drawn per device.
  const stats = window.edgeposeStats = { latencies: [], frames: {}, events: 0, snapshots: 0 };
  const tiles = new Map();
  const $ = (id) => document.getElementById(id);

  function tile(dev) {
    let t = tiles.get(dev);
    if (t) return t;
    const node = $("tile").content.firstElementChild.cloneNode(true);
    node.dataset.device = dev;
    node.querySelector(".name").textContent = dev;
    const names = [...tiles.keys(), dev].sort();
    const after = names[names.indexOf(dev) + 1];
    $("tiles").insertBefore(node, after ? tiles.get(after).node : null);
    t = { node, canvas: node.querySelector("canvas"), badge: node.querySelector(".state"), meta: node.querySelector(".meta"),
      now: node.querySelector(".now"), poses: null, status: null, state: null, dirty: false, online: null };
    tiles.set(dev, t);
    summary();
    return t;
  }

  function summary() {
    let on = 0;
    for (const t of tiles.values()) if (t.online) on++;
    $("summary").textContent = tiles.size + " devices, " + on + " online";
  }

  function setStatus(dev, online, st) {
    const t = tile(dev);
    t.online = online;
    t.status = st;
    t.node.classList.toggle("online", online);
    t.node.classList.toggle("offline", !online);
    t.badge.textContent = online ? "online" : "offline" + (st && st.reason ? " (" + st.reason + ")" : "");
    t.badge.className = "badge state " + (online ? "ok" : "bad");
    meta(t);
    summary();
  }

  // The device's `state` summary (retained, sent when it changes): a fall, and what people are doing now.
  function setState(dev, st) {
    const t = tile(dev);
    t.state = st;
    const fall = !!(st && st.fall);
    t.node.classList.toggle("fall", fall);
    const parts = [];
    if (fall) parts.push("FALL");
    if (st && st.actions && st.actions.length) parts.push(st.actions.join(", "));
    t.now.textContent = parts.join(" · ");
  }

  function meta(t) {
    const s = t.status || {};
    const parts = [];
    if (s.model) parts.push(s.model);
    if (s.fps != null) parts.push(Number(s.fps).toFixed(1) + " FPS");
    if (t.poses) parts.push(t.poses.people.length + " people", "frame " + t.poses.frame);
    t.meta.textContent = parts.join(" · ");
  }

  function onPoses(p) {
    const t = tile(p.device);
    t.poses = p;
    t.dirty = true;
    stats.frames[p.device] = (stats.frames[p.device] || 0) + 1;
    if (p.ts) {
      stats.latencies.push(Date.now() / 1000 - p.ts);
      if (stats.latencies.length > MAX_LATENCIES) stats.latencies.splice(0, MAX_LATENCIES / 2);
    }
  }

  function draw(t) {
    const p = t.poses, c = t.canvas, g = c.getContext("2d");
    const w = p.width || 1280, h = p.height || 720;
    const ch = Math.round(c.width * h / w);
    if (c.height !== ch) c.height = ch;
    g.fillStyle = "#202830";
    g.fillRect(0, 0, c.width, c.height);
    const s = c.width / w;
    g.lineWidth = 2;
    for (const person of p.people) {
      const k = person.k;
      const col = person.id == null ? UNTRACKED : PALETTE[person.id % PALETTE.length];
      g.strokeStyle = col;
      g.fillStyle = col;
      g.beginPath();
      for (const [a, b] of SKELETON) {
        if (k[a * 3 + 2] < MIN_PART || k[b * 3 + 2] < MIN_PART) continue;
        g.moveTo(k[a * 3] * s, k[a * 3 + 1] * s);
        g.lineTo(k[b * 3] * s, k[b * 3 + 1] * s);
      }
      g.stroke();
      for (let i = 0; i < 17; i++) {
        if (k[i * 3 + 2] < MIN_PART) continue;
        g.beginPath();
        g.arc(k[i * 3] * s, k[i * 3 + 1] * s, 2.5, 0, 2 * Math.PI);
        g.fill();
      }
      if (person.id != null) {
        g.font = "12px sans-serif";
        g.fillText("#" + person.id, k[0] * s + 4, k[1] * s - 6);
      }
    }
    meta(t);
  }

  function frame() {
    for (const t of tiles.values()) {
      if (t.dirty) { t.dirty = false; draw(t); }
    }
    requestAnimationFrame(frame);
  }

  function addEvent(e) {
    stats.events++;
    const ol = $("events");
    const li = document.createElement("li");
    li.dataset.device = e.device;
    const when = e.ts ? new Date(e.ts * 1000).toLocaleTimeString() : "";
    li.textContent = when + "  " + e.device + "  #" + e.track_id + "  " + e.action + " " + e.kind + (e.count != null ? " ×" + e.count : "");
    ol.insertBefore(li, ol.firstChild);
    while (ol.children.length > MAX_EVENTS) ol.removeChild(ol.lastChild);
  }

  function connect() {
    const es = new EventSource("sse");
    es.addEventListener("snapshot", (m) => {
      const snap = JSON.parse(m.data);
      stats.snapshots++;
      $("events").replaceChildren();
      for (const d of snap.devices) {
        if (d.status) setStatus(d.device, !!d.online, d.status); else tile(d.device);
        if (d.poses) onPoses(d.poses);
        if (d.state) setState(d.device, d.state);
      }
      for (const e of snap.events) addEvent(e);
      $("conn").textContent = snap.connected ? "broker " + snap.broker : "broker " + snap.broker + " unreachable";
      $("conn").className = "badge " + (snap.connected ? "ok" : "bad");
    });
    es.addEventListener("poses", (m) => { for (const p of JSON.parse(m.data)) onPoses(p); });
    es.addEventListener("status", (m) => { const d = JSON.parse(m.data); setStatus(d.device, d.online, d.status); });
    es.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
    es.addEventListener("state", (m) => { const d = JSON.parse(m.data); setState(d.device, d.state); });
    // A device the hub forgot (not heard for a day, or pushed out by too many others): its tile goes too.
    es.addEventListener("gone", (m) => {
      const d = JSON.parse(m.data), t = tiles.get(d.device);
      if (t) { t.node.remove(); tiles.delete(d.device); summary(); }
    });
    es.onerror = () => { $("conn").textContent = "view server unreachable (retrying)"; $("conn").className = "badge bad"; };
  }

  connect();
  requestAnimationFrame(frame);
})();
