// The explorer page: every control edits `state`; a change sends one render request, and changes
// made while it runs are sent together when it returns (the server coalesces too).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
const state = { directions: {}, pad: { x: 0, y: 0 } };
let inFlight = false, dirty = false;
window.explorer = { renders: 0, last: null, error: null };  // read by the browser tests

async function api(path, body) {
  const opts = body === undefined ? {} : { method: "POST", body: body instanceof Blob ? body : JSON.stringify(body) };
  const res = await fetch(path, opts);
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await res.json() : await res.blob();
  if (!res.ok) throw new Error(data.error || res.statusText);
  return data;
}

function request() {
  const num = (id) => ($(id).value === "" ? null : Number($(id).value));
  const r = {
    seed: num("seed"), psi: Number($("psi").value), cutoff: num("cutoff"),
    noise_mode: $("noise-mode").value, noise_strength: Number($("noise-strength").value),
    mix_seed: num("mix-seed"), mix_layers: [num("mix-first"), num("mix-last")],
    directions: state.directions, layer: $("layer").value || null, view: $("view").value,
    torgb: $("torgb").checked, source: $("use-projection").checked ? "projection" : "seed",
  };
  if (info.c_dim) r.class = Number($("class").value);
  if (info.directions.length >= 2) r.pad = { x: state.pad.x, y: state.pad.y, dirs: [Number($("pad-x").value), Number($("pad-y").value)] };
  return r;
}

async function render() {
  if (inFlight) { dirty = true; return; }
  inFlight = true;
  dirty = false;
  const req = request();
  try {
    const out = await api("/api/render", req);
    if (!out.superseded) {
      $("image").src = out.image;
      $("status").textContent = `${out.ms.toFixed(0)} ms per image`;
      $("features").hidden = !out.features;
      if (out.features) {
        $("features").src = out.features;
        $("feature-caption").textContent = `${req.layer}: ${out.feature_shape.join(" x ")} (${req.view === "channels" ? "first 64 channels, each scaled to its range" : "L2 norm over channels"})`;
      } else $("feature-caption").textContent = "";
      $("torgb-images").innerHTML = "";
      for (const [name, src] of Object.entries(out.torgb)) {
        const fig = document.createElement("figure");
        fig.innerHTML = `<img src="${src}" alt="${name}"><figcaption>${name}</figcaption>`;
        $("torgb-images").appendChild(fig);
      }
      window.explorer.last = { request: req, response: out };
      window.explorer.error = null;
    }
  } catch (e) {
    $("status").textContent = "error: " + e.message;
    window.explorer.error = e.message;
  }
  window.explorer.renders += 1;
  inFlight = false;
  if (dirty) render();
}

function drawPad() {
  const c = $("pad"), ctx = c.getContext("2d"), s = c.width / 10;
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.strokeStyle = "#ccc";
  ctx.beginPath(); ctx.moveTo(c.width / 2, 0); ctx.lineTo(c.width / 2, c.height);
  ctx.moveTo(0, c.height / 2); ctx.lineTo(c.width, c.height / 2); ctx.stroke();
  ctx.fillStyle = "#c33";
  ctx.beginPath(); ctx.arc(c.width / 2 + state.pad.x * s, c.height / 2 - state.pad.y * s, 5, 0, 2 * Math.PI); ctx.fill();
  $("pad-value").textContent = `(${state.pad.x.toFixed(1)}, ${state.pad.y.toFixed(1)})`;
}

function setupPad() {
  const c = $("pad");
  const move = (e) => {
    const r = c.getBoundingClientRect(), s = r.width / 10;
    state.pad.x = Math.max(-5, Math.min(5, (e.clientX - r.left - r.width / 2) / s));
    state.pad.y = Math.max(-5, Math.min(5, -(e.clientY - r.top - r.height / 2) / s));
    drawPad(); render();
  };
  c.addEventListener("pointerdown", (e) => { c.setPointerCapture(e.pointerId); move(e); });
  c.addEventListener("pointermove", (e) => { if (e.buttons) move(e); });
  $("pad-reset").addEventListener("click", () => { state.pad = { x: 0, y: 0 }; drawPad(); render(); });
  drawPad();
}

function setupDirections() {
  const box = $("directions");
  box.innerHTML = "";
  state.directions = {};
  $("pad-x").innerHTML = $("pad-y").innerHTML = "";
  for (const d of info.directions) {
    const row = document.createElement("label");
    row.className = "direction";
    row.innerHTML = `<span>#${d.index} (${d.value.toPrecision(3)})</span><input type="range" min="-5" max="5" step="0.1" value="0" id="dir-${d.index}"><output>0</output>`;
    const input = row.querySelector("input");
    input.addEventListener("input", () => {
      state.directions[d.index] = Number(input.value);
      row.querySelector("output").textContent = input.value;
      render();
    });
    box.appendChild(row);
    $("pad-x").add(new Option(`#${d.index}`, d.index));
    $("pad-y").add(new Option(`#${d.index}`, d.index));
  }
  if (info.directions.length) {
    const d = info.directions[0];
    $("dir-method").textContent = `(${d.method}, w layers ${d.layers[0]}-${d.layers[1]})`;
  }
  if (info.directions.length > 1) $("pad-y").value = 1;
}

function setupNetwork() {
  $("network-name").textContent = `${info.network}: ${info.resolution}x${info.resolution}, ${info.channels} channel(s), ${info.num_ws} w layers, ${info.architecture}`;
  $("psi").value = info.default_psi;
  $("psi-value").textContent = Number(info.default_psi).toFixed(2);
  $("cutoff").max = info.num_ws;
  $("cutoff").value = info.default_cutoff === null ? "" : info.default_cutoff;
  $("mix-first").max = $("mix-last").max = info.num_ws - 1;
  $("mix-last").value = Math.min(3, info.num_ws - 1);
  $("class-box").hidden = !info.c_dim;
  $("class").innerHTML = "";
  for (let c = 0; c < info.c_dim; c++) $("class").add(new Option(String(c), String(c)));
  $("layer").innerHTML = '<option value="">(none)</option>';
  for (const name of info.layers) $("layer").add(new Option(name, name));
  $("torgb-box").hidden = info.torgb_layers.length < 2;
  $("torgb").checked = false;
  $("project-box").hidden = !info.projection;
  $("use-projection").checked = false;
  $("use-projection").disabled = true;
  $("network").hidden = info.networks.length === 0;
  $("network").innerHTML = "";
  if (!info.networks.includes(info.network)) $("network").add(new Option(`${info.network} (open)`, ""));
  for (const n of info.networks) $("network").add(new Option(n, n));
  $("network").value = info.networks.includes(info.network) ? info.network : "";
  setupDirections();
}

async function download(what) {
  const blob = await api("/api/download", { what, request: request() });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = what === "png" ? `seed${$("seed").value}.png` : `seed${$("seed").value}-w.npz`;
  a.click();
}

async function pollProjection() {
  const s = await api("/api/project");
  $("project-progress").value = s.step / s.total;
  $("project-status").textContent = s.error ? "error: " + s.error : `step ${s.step}/${s.total}` + (s.distance === null ? "" : `, LPIPS ${s.distance.toFixed(4)}`);
  if (s.running) setTimeout(pollProjection, 500);
  else if (s.done) { $("use-projection").disabled = false; $("use-projection").checked = true; render(); }
}

async function main() {
  info = await api("/api/info");
  setupNetwork();
  setupPad();
  for (const id of ["seed", "psi", "cutoff", "class", "noise-mode", "noise-strength", "mix-seed", "mix-first", "mix-last",
                    "layer", "view", "torgb", "use-projection", "pad-x", "pad-y"]) {
    $(id).addEventListener("input", () => {
      $("psi-value").textContent = Number($("psi").value).toFixed(2);
      $("noise-value").textContent = $("noise-strength").value;
      render();
    });
  }
  $("random").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2 ** 32); render(); });
  $("network").addEventListener("change", async () => {
    if (!$("network").value) return;
    try { info = await api("/api/network", { name: $("network").value }); setupNetwork(); render(); }
    catch (e) { $("status").textContent = "error: " + e.message; }
  });
  $("download-png").addEventListener("click", () => download("png"));
  $("download-npz").addEventListener("click", () => download("npz"));
  $("project").addEventListener("click", async () => {
    const file = $("upload").files[0];
    if (!file) return;
    try { await api("/api/project", file); pollProjection(); }
    catch (e) { $("project-status").textContent = "error: " + e.message; }
  });
  render();
}

main();
