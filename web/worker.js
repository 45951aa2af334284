// worker.js: runs the lesson (lesson.wasm, built from web/lesson.c and nflow.h) off the
// page's thread, so the page stays responsive while the flow trains.
//
// Every number comes from the C side; this file only calls it and copies results out.
// Messages from the page: {id, cmd, ...}; each gets one reply {id, ok, ...}. While
// training runs, the worker also posts {type: 'progress'} and {type: 'frame'}.
'use strict';

let ex = null;          // the wasm exports
let L = 0;              // the lesson (a pointer into wasm memory)
let running = false;
let cfg = null;         // the current setup
let lastFrame = 0;
const TRAIN_CHUNK = 50; // ls_train calls of at most this many steps (tests/web/run.sh trains natively alike)
const FRAME = { samples: 1000, grid: 72, stageSamples: 500, lines: 13, per: 40, sampleSeed: 7, stageSeed: 11 };
let frameMs = 50;       // what the last picture cost: training gets at least three quarters of the time

function cstr(ptr) {
  const mem = new Uint8Array(ex.memory.buffer);
  let end = ptr;
  while (mem[end]) end++;
  return new TextDecoder().decode(mem.subarray(ptr, end));
}
function out(n) {  // a copy of the first n reals of the lesson's output buffer
  const bytes = ex.ls_real_bytes(), ptr = ex.ls_out(L);
  const view = bytes === 8 ? new Float64Array(ex.memory.buffer, ptr, n) : new Float32Array(ex.memory.buffer, ptr, n);
  return Float64Array.from(view);
}
function check(rc, what) {
  if (rc !== 0) throw new Error(what + ': ' + cstr(ex.ls_error(L)));
}

async function load() {
  const url = new URL('lesson.wasm', self.location.href);
  let module;
  try {
    module = await WebAssembly.compileStreaming(fetch(url));
  } catch (e) {   // a server that does not send application/wasm
    module = await WebAssembly.compile(await (await fetch(url)).arrayBuffer());
  }
  const instance = await WebAssembly.instantiate(module, {});
  ex = instance.exports;
  if (ex._initialize) ex._initialize();
  L = ex.ls_create();
  if (!L) throw new Error('out of memory');
  const list = (count, id, name, about) => Array.from({ length: ex[count]() }, (_, i) => ({
    index: i, id: cstr(ex[id](i)), name: cstr(ex[name](i)), about: about ? cstr(ex[about](i)) : '' }));
  return {
    kinds: list('ls_kind_count', 'ls_kind_id', 'ls_kind_name', 'ls_kind_about'),
    datasets: list('ls_dataset_count', 'ls_dataset_id', 'ls_dataset_name'),
    lo: ex.ls_view_lo(), hi: ex.ls_view_hi(), realBytes: ex.ls_real_bytes(),
  };
}

function dataMsg() {
  check(ex.ls_data(L), 'data');
  const nt = ex.ls_n_train(L), nv = ex.ls_n_val(L);
  return { nTrain: nt, nVal: nv, points: out(2 * (nt + nv)) };
}
function build() {
  check(ex.ls_build(L, cfg.kind, cfg.depth, cfg.width, cfg.batch, cfg.lr, cfg.seed), 'build');
  const n = ex.ls_n_layers(L);
  return { nLayers: n, nParams: ex.ls_n_params(L), layerNames: Array.from({ length: n }, (_, l) => cstr(ex.ls_layer_name(L, l))) };
}
function losses() {
  return { step: ex.ls_steps(L), valNll: ex.ls_val_loss(L), trainNll: ex.ls_train_loss(L) };
}
function frame() {
  const t0 = performance.now();
  const f = { type: 'frame', step: ex.ls_steps(L) };
  check(ex.ls_sample(L, FRAME.samples, FRAME.sampleSeed), 'sample');
  f.samples = out(2 * FRAME.samples);
  check(ex.ls_density(L, FRAME.grid), 'density');
  f.grid = FRAME.grid; f.logp = out(FRAME.grid * FRAME.grid);
  check(ex.ls_stages(L, FRAME.stageSamples, FRAME.lines, FRAME.per, FRAME.stageSeed), 'stages');
  const m = FRAME.stageSamples + 2 * FRAME.lines * FRAME.per, nl = ex.ls_n_layers(L);
  f.stages = out(2 * m * (nl + 1)); f.stageSamples = FRAME.stageSamples; f.lines = FRAME.lines; f.per = FRAME.per;
  lastFrame = performance.now();
  frameMs = lastFrame - t0;
  return f;
}
function transfer(msg) {   // hand big arrays over without copying
  return ['samples', 'logp', 'stages', 'points'].filter((k) => msg[k]).map((k) => msg[k].buffer);
}
function post(msg) { self.postMessage(msg, transfer(msg)); }

// `steps` training steps in chunks; returns the mean minibatch loss
function train(steps) {
  let done = 0, sum = 0;
  while (done < steps) {
    const n = Math.min(TRAIN_CHUNK, steps - done);
    check(ex.ls_train(L, n), 'train');
    sum += ex.ls_loss(L) * n; done += n;
  }
  return steps > 0 ? sum / steps : NaN;
}

// the training loop: ~40 ms of steps, a progress report, and a new picture every 150 ms
// or, when pictures are slow, after three times as long as the last one took
let perStepMs = 5;
function loop() {
  if (!running) return;
  try {
    if (ex.ls_n_train(L) === 0) { running = false; post({ type: 'stopped', reason: 'no data: draw some points first' }); return; }
    const n = Math.max(1, Math.min(200, Math.round(40 / perStepMs)));
    const t0 = performance.now();
    const loss = train(n);
    const dt = performance.now() - t0;
    perStepMs = 0.7 * perStepMs + 0.3 * (dt / n);
    post({ type: 'progress', step: ex.ls_steps(L), loss, valNll: ex.ls_val_loss(L), msPerStep: dt / n });
    if (performance.now() - lastFrame > Math.max(150, 3 * frameMs)) post(frame());
  } catch (e) {
    running = false;
    post({ type: 'stopped', reason: String(e.message || e) });
    return;
  }
  setTimeout(loop, 0);
}

const handlers = {
  async init() { return await load(); },
  // {dataset, n, kind, depth, width, batch, lr, seed}: new data and a new flow
  setup(m) {
    running = false;
    cfg = { dataset: m.dataset, n: m.n, kind: m.kind, depth: m.depth, width: m.width, batch: m.batch, lr: m.lr, seed: m.seed };
    check(ex.ls_make_data(L, cfg.dataset, cfg.n, cfg.seed), 'data');
    return Object.assign(build(), dataMsg(), losses(), { frame: frame() });
  },
  // a new flow on the same data (reset, or another kind, depth or width)
  rebuild(m) {
    running = false;
    Object.assign(cfg, { kind: m.kind, depth: m.depth, width: m.width, lr: m.lr, batch: m.batch });
    if (m.seed !== undefined) cfg.seed = m.seed;
    return Object.assign(build(), losses(), { frame: frame() });
  },
  draw(m) {
    check(ex.ls_draw(L, m.x, m.y, m.count, m.spread), 'draw');
    return dataMsg();
  },
  run() { if (!running) { running = true; setTimeout(loop, 0); } return {}; },
  pause() { running = false; return losses(); },
  // exactly `steps` steps (the Step button, and the tests)
  train(m) {
    running = false;
    const loss = train(m.steps);
    return Object.assign(losses(), { loss: ex.ls_loss(L), meanLoss: loss, frame: frame() });
  },
  probe(m) {
    check(ex.ls_probe(L, m.x, m.y), 'probe');
    const nl = ex.ls_n_layers(L), v = out(6 + nl + 2 * (nl + 1));
    return {
      y: [m.x, m.y], z: [v[0], v[1]], logPx: v[2],
      logdetStd: v[3], logdets: Array.from(v.subarray(4, 4 + nl)), logdet: v[4 + nl], logPy: v[5 + nl],
      path: Array.from(v.subarray(6 + nl)), step: ex.ls_steps(L),
    };
  },
  frame() { return { frame: frame() }; },
  // steps per second of training on the current lesson, for the report (no progress posts)
  bench(m) {
    running = false;
    const t0 = performance.now(); let s = 0, t;
    do { check(ex.ls_train(L, 10), 'train'); s += 10; t = performance.now() - t0; } while (t < 1000 * m.seconds);
    return { steps: s, msPerStep: t / s };
  },
};

self.onmessage = async (ev) => {
  const m = ev.data;
  try {
    const r = await handlers[m.cmd](m);
    const reply = Object.assign({ id: m.id, ok: true }, r);
    const tr = transfer(reply).concat(reply.frame ? transfer(reply.frame) : []);
    self.postMessage(reply, tr);
  } catch (e) {
    self.postMessage({ id: m.id, ok: false, error: String(e.message || e) });
  }
};
