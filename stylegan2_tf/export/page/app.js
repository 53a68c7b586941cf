// The page of a TensorFlow.js export: seed -> z -> the exported generator -> canvas.
//
// z of a seed is numpy.random.RandomState(seed).randn(1, z_dim) cast to float32, the convention of
// run_generator.py: Mersenne Twister MT19937 seeded with init_genrand, doubles of 53 bits, and
// numpy's legacy polar (Marsaglia) Gaussian, which makes two values per accepted pair and returns
// the second first.
//
// Query parameters (all optional): seed, psi, class, backend (webgl|cpu), and inputs=FILE.json
// (named arrays, run through the model as given: any exported part; repeat=N runs them N times and
// reports each time). With report=1 the page writes what it computed as JSON into <pre id="report">
// and POSTs it to /report of the server it came from (the tests and benchmarks/export.py read it there).
"use strict";

class MT19937 {
  constructor(seed) {
    this.mt = new Uint32Array(624);
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const x = this.mt[i - 1] ^ (this.mt[i - 1] >>> 30);
      this.mt[i] = (Math.imul(1812433253, x) + i) >>> 0;
    }
    this.index = 624;
    this.cached = null;
  }
  twist() {
    const mt = this.mt;
    for (let k = 0; k < 624; k++) {
      const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
      let v = mt[(k + 397) % 624] ^ (y >>> 1);
      if (y & 1) v ^= 0x9908b0df;
      mt[k] = v >>> 0;
    }
    this.index = 0;
  }
  uint32() {
    if (this.index >= 624) this.twist();
    let y = this.mt[this.index++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
  double() {  // [0, 1) with 53 random bits
    const a = this.uint32() >>> 5, b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
  gauss() {
    if (this.cached !== null) {
      const g = this.cached;
      this.cached = null;
      return g;
    }
    let x1, x2, r2;
    do {
      x1 = 2 * this.double() - 1;
      x2 = 2 * this.double() - 1;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1 || r2 === 0);
    const f = Math.sqrt(-2 * Math.log(r2) / r2);
    this.cached = f * x1;
    return f * x2;
  }
}

function seedToZ(seed, zDim) {
  const rng = new MT19937(seed);
  const z = new Float32Array(zDim);
  for (let i = 0; i < zDim; i++) z[i] = rng.gauss();
  return z;
}

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let model = null, sig = null, busy = false, again = false;

function report(obj) {  // report=1: the JSON goes into the page and is POSTed to the server's /report
  if (params.get("report") !== "1") return;
  const text = JSON.stringify(obj);
  $("report").textContent = text;
  fetch("report", { method: "POST", body: text, headers: { "Content-Type": "application/json" } }).catch(() => {});
}

function draw(data, [h, w, c]) {  // data: 0..255, HWC
  const canvas = $("image");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let k = 0; k < 3; k++) img.data[4 * p + k] = data[p * c + (c >= 3 ? k : 0)];
    img.data[4 * p + 3] = c === 4 ? data[p * c + 3] : 255;
  }
  ctx.putImageData(img, 0, 0);
}

async function run(feeds) {
  const name = sig.outputs[0].name;
  const t0 = performance.now();
  const out = model.execute(feeds, name);
  const data = await out.data();
  const ms = performance.now() - t0;
  const shape = out.shape;
  out.dispose();
  Object.values(feeds).forEach((t) => t.dispose());
  return { name, shape, data: Array.from(data), ms };
}

async function generate() {
  if (busy) { again = true; return; }  // one image at a time; the latest settings win
  busy = true;
  try {
    const seed = Number($("seed").value) >>> 0, psi = Number($("psi").value);
    $("psi-value").textContent = psi.toFixed(2);
    const z = seedToZ(seed, sig.z_dim);
    const feeds = { z: tf.tensor2d(z, [1, sig.z_dim]), psi: tf.scalar(psi) };
    const cls = Number($("class").value || 0);
    if (sig.c_dim) feeds.class_idx = tf.tensor1d([cls], "int32");
    const out = await run(feeds);
    draw(out.data, out.shape.slice(1));
    $("status").textContent = `seed ${seed}, psi ${psi.toFixed(2)}: ${out.ms.toFixed(1)} ms per image (${tf.getBackend()})`;
    report({ ok: true, seed, psi, class: sig.c_dim ? cls : null, backend: tf.getBackend(), z: Array.from(z), output: out });
  } catch (e) {
    $("status").textContent = "error: " + e.message;
    report({ ok: false, error: String(e && e.stack || e) });
  }
  busy = false;
  if (again) { again = false; generate(); }
}

async function runInputs(file) {  // tests: named arrays in, the output reported
  const inputs = await (await fetch(file)).json();
  const feeds = {};
  for (const spec of sig.inputs) {
    const a = inputs[spec.name];
    feeds[spec.name] = tf.tensor(a.data, a.shape, spec.dtype === "int32" ? "int32" : "float32");
  }
  const times = [];
  let out = null;
  for (let r = 0; r < Number(params.get("repeat") || 1); r++) {
    const copies = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.clone()]));
    out = await run(copies);
    times.push(out.ms);
  }
  Object.values(feeds).forEach((t) => t.dispose());
  $("status").textContent = `ran ${file}: ${out.ms.toFixed(1)} ms (${tf.getBackend()})`;
  report({ ok: true, backend: tf.getBackend(), output: out, times });
}

async function main() {
  try {
    const backend = params.get("backend") || "webgl";
    $("backend").value = backend;
    if (!(await tf.setBackend(backend))) await tf.setBackend("cpu");
    sig = await (await fetch("signature.json")).json();
    model = await tf.loadGraphModel("model.json");
    if (params.get("inputs")) return await runInputs(params.get("inputs"));
    if (sig.part !== "generator") {
      $("status").textContent = `this export is the ${sig.part} network; the page draws full generators only`;
      return report({ ok: false, error: "not a generator export" });
    }
    $("seed").value = params.get("seed") || 0;
    $("psi").value = params.get("psi") || sig.default_psi;
    if (sig.c_dim) {
      $("class-box").hidden = false;
      for (let c = 0; c < sig.c_dim; c++) $("class").add(new Option(String(c), String(c)));
      const cls = Number(params.get("class") || 0);
      if (!(Number.isInteger(cls) && cls >= 0 && cls < sig.c_dim)) throw new Error(`class ${params.get("class")} is not in 0-${sig.c_dim - 1}`);
      $("class").value = String(cls);
    }
    for (const id of ["seed", "psi", "class"]) $(id).addEventListener("input", generate);
    $("random").addEventListener("click", () => { $("seed").value = Math.floor(Math.random() * 2 ** 32); generate(); });
    $("backend").addEventListener("change", async () => { await tf.setBackend($("backend").value); generate(); });
    await generate();
  } catch (e) {
    $("status").textContent = "error: " + e.message;
    report({ ok: false, error: String(e && e.stack || e) });
  }
}

main();
