// The live view of `eeg2arm stream --view`: one WebSocket (/ws) brings the stream's messages (described in
// eeg2arm/realtime/view/events.py); this draws them. Plain JavaScript, nothing fetched from elsewhere.
"use strict";

const COLORS = ["#58a6ff", "#f778ba", "#3fb950", "#d29922", "#a371f7", "#ff7b72", "#39c5cf", "#e3b341"];
const $ = (id) => document.getElementById(id);

let meta = null;      // the stream and the model (the "meta" message)
let history = [];     // [{t, probs, decision}] of the last meta.history_s seconds
let latest = null;    // the last "decision" message
let pageDropped = 0;  // decisions this page missed because it fell behind
let ended = false;
let drawing = false;

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.onmessage = (message) => receive(JSON.parse(message.data), socket);
  socket.onclose = () => {
    if (ended) return;
    setStatus("lost", "connection lost: retrying");
    setTimeout(connect, 1000);
  };
}

function receive(m, socket) {
  if (m.type === "meta") start(m);
  else if (m.type === "decision") decided(m);
  else if (m.type === "skipped") pageDropped += m.n;
  else if (m.type === "end") finish(m, socket);
}

function start(m) {
  meta = m;
  history = [];
  latest = null;
  pageDropped = 0;
  setStatus("live", "live");
  $("about").textContent =
    `${m.source} · ${m.backend} · enter ${m.enter} / exit ${m.exit} over ${m.min_frames} frames`;
  $("window").textContent = `(last ${m.history_s} s; dashed: enter ${m.enter}, dotted: exit ${m.exit})`;
  $("legend").replaceChildren(...m.classes.map((name, k) => {
    const span = document.createElement("span");
    span.textContent = `■ ${name}`;
    span.style.color = COLORS[k % COLORS.length];
    return span;
  }));
  $("channels").replaceChildren(...m.channels.map((name) => {
    const cell = document.createElement("div");
    cell.className = "channel";
    cell.dataset.name = name;
    cell.append(name, Object.assign(document.createElement("span"), { className: "sd" }),
      Object.assign(document.createElement("div"), { className: "bar" }));
    return cell;
  }));
  $("decision").textContent = "waiting for the first decision";
  $("decision").className = "decision undecided";
}

function decided(m) {
  latest = m;
  history.push({ t: m.t, probs: m.probs, decision: m.decision });
  while (history.length && history[0].t < m.t - meta.history_s) history.shift();
  const el = $("decision");
  el.textContent = m.label;
  el.dataset.index = m.index;
  el.className = m.decision < 0 ? "decision undecided" : "decision";
  el.style.color = m.decision < 0 ? "" : COLORS[m.decision % COLORS.length];
  $("held").textContent = `for ${m.held_s.toFixed(1)} s`;
  $("conf").textContent = m.decision < 0 ? "no class above the thresholds"
    : `probability ${m.probs[m.decision].toFixed(3)}`;
  stats(m);
  health(m);
  $("arm-text").textContent =
    `x = ${(m.arm.x * 100).toFixed(1)} cm · vx = ${(m.arm.vx * 100).toFixed(2)} cm/s (${m.label})`;
  if (!drawing) {
    drawing = true;
    requestAnimationFrame(() => { drawing = false; drawTraces(); drawArm(); });
  }
}

function stats(m) {
  const s = m.stats;
  $("t").textContent = `${m.t.toFixed(2)} s`;
  $("count").textContent = m.index + 1;
  $("fps").textContent = s.frames_per_s === null ? "–" : s.frames_per_s.toFixed(1);
  $("latency").textContent = s.latency_ms === null ? "–"
    : `${s.latency_ms.last.toFixed(1)} ms (p50 ${s.latency_ms.p50.toFixed(1)}, max ${s.latency_ms.max.toFixed(1)})`;
  $("gaps").textContent = s.gaps;
  $("lost").textContent = s.frames_lost;
  $("dropped").textContent = s.view_dropped + pageDropped;
}

function health(m) {
  const cells = $("channels").children;
  for (let c = 0; c < cells.length; c++) {
    const name = meta.channels[c], sd = m.sd_uv[c], why = m.bad[name];
    const cell = cells[c];
    cell.classList.toggle("bad", why !== undefined);
    cell.title = `${name}: ${sd === null ? "no signal" : sd + " µV"}${why ? " (" + why + ", replaced)" : ""}`;
    cell.children[0].textContent = sd === null ? "–" : why ? why : sd.toFixed(0);
    // the bar spans the verdicts' range: 0.1 µV (flat) to 1000 µV (noisy), on a log scale
    const level = sd === null ? 0 : Math.min(1, Math.max(0, (Math.log10(Math.max(sd, 0.1)) + 1) / 4));
    cell.lastChild.style.width = `${(level * 100).toFixed(0)}%`;
  }
  const bad = Object.entries(m.bad);
  $("bad").textContent = "bad channels: " + (bad.length ? bad.map(([n, w]) => `${n} (${w})`).join(", ") : "none");
  $("bad").className = bad.length ? "some" : "";
}

function canvas(id) {
  const el = $(id), ratio = window.devicePixelRatio || 1;
  const w = el.clientWidth, h = el.clientHeight;
  if (el.width !== Math.round(w * ratio)) { el.width = Math.round(w * ratio); el.height = Math.round(h * ratio); }
  const g = el.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  return [g, w, h];
}

function drawTraces() {
  if (!meta) return;
  const [g, w, h] = canvas("traces");
  const pad = 24, top = 10, end = latest ? latest.t : 0, span = meta.history_s;
  const x = (t) => pad + (w - pad - 4) * (1 - (end - t) / span);
  const y = (p) => top + (h - top - 26) * (1 - p);
  g.font = "11px system-ui";
  g.fillStyle = "#8b95a3";
  for (const p of [0, 0.5, 1]) g.fillText(p.toFixed(1), 0, y(p) + 4);
  g.fillText(`${span} s ago`, pad, h - 2);
  g.fillText("now", w - 26, h - 2);
  for (const [level, dash] of [[meta.enter, [6, 4]], [meta.exit, [2, 3]]]) {
    g.strokeStyle = "#8b95a3";
    g.setLineDash(dash);
    g.beginPath(); g.moveTo(pad, y(level)); g.lineTo(w - 4, y(level)); g.stroke();
  }
  g.setLineDash([]);
  for (let i = 1; i < history.length; i++) {  // the decision as a band under the traces
    const d = history[i].decision;
    if (d < 0) continue;
    g.fillStyle = COLORS[d % COLORS.length];
    g.fillRect(x(history[i - 1].t), h - 19, x(history[i].t) - x(history[i - 1].t), 5);
  }
  g.lineWidth = 2;
  meta.classes.forEach((_, k) => {
    g.strokeStyle = COLORS[k % COLORS.length];
    g.beginPath();
    history.forEach((d, i) => (i ? g.lineTo : g.moveTo).call(g, x(d.t), y(d.probs[k])));
    g.stroke();
  });
  g.lineWidth = 1;
}

function drawArm() {
  if (!meta || !latest) return;
  const [g, w, h] = canvas("arm");
  const reach = meta.arm.reach, mid = w / 2, scale = (w / 2 - 30) / reach, rail = h / 2 + 10;
  g.strokeStyle = "#8b95a3";
  g.lineWidth = 3;
  g.beginPath(); g.moveTo(mid - reach * scale, rail); g.lineTo(mid + reach * scale, rail); g.stroke();
  g.lineWidth = 1;
  g.fillStyle = "#8b95a3";
  g.font = "11px system-ui";
  g.fillText(`−${reach * 100} cm`, mid - reach * scale - 10, rail + 18);
  g.fillText(`+${reach * 100} cm`, mid + reach * scale - 20, rail + 18);
  const px = mid + latest.arm.x * scale;
  g.fillStyle = latest.decision < 0 ? "#8b95a3" : COLORS[latest.decision % COLORS.length];
  g.fillRect(px - 12, rail - 22, 24, 18);  // the gripper
  if (latest.arm.vx !== 0) {  // the commanded velocity
    const tip = px + Math.sign(latest.arm.vx) * (20 + 400 * Math.abs(latest.arm.vx));
    g.strokeStyle = g.fillStyle;
    g.lineWidth = 2;
    g.beginPath(); g.moveTo(px, rail - 30); g.lineTo(tip, rail - 30); g.stroke();
  }
}

function finish(m, socket) {
  ended = true;
  socket.close();
  setStatus("ended", { ended: "stream ended", interrupted: "stream interrupted" }[m.how] || "stream stopped");
  const box = $("ended");
  box.textContent = `The stream ${m.how === "error" ? "stopped: " + m.error : m.how}. ${m.summary}`;
  box.hidden = false;
}

function setStatus(kind, text) {
  $("status").className = `status ${kind}`;
  $("status").textContent = text;
}

window.addEventListener("resize", () => { drawTraces(); drawArm(); });
connect();
