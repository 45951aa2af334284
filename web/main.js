// main.js: the lesson page's user interface. It draws what the worker (worker.js, over
// lesson.wasm) computes, and computes nothing about the flow itself.
'use strict';

const $ = (id) => document.getElementById(id);
const COLORS = { train: '#1f77b4', val: '#9a9a9a', sample: '#e66e14', grid: '#3c3ca0', probe: '#d62728' };
// viridis, five stops: the density panel's colours
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

const state = {
  info: null, lo: -3, hi: 3,
  cfg: null,            // what the worker was set up with
  data: null, frame: null, nLayers: 0, layerNames: [], nParams: 0,
  step: 0, running: false, pausing: false, trainHist: [], valHist: [], msPerStep: NaN, lastLoss: NaN, lastVal: NaN,
  probe: null, probeAt: null, pinned: false, probeBusy: false, probeWanted: null,
  kindIndex: 0, datasetIndex: 0,
};

// ---- the worker: one request, one reply ------------------------------------------------
const worker = new Worker('worker.js');
let nextId = 1;
const pending = new Map();
function call(cmd, args) {
  return new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    worker.postMessage(Object.assign({ id, cmd }, args || {}));
  });
}
worker.onmessage = (ev) => {
  const m = ev.data;
  if (m.id) {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p.resolve(m); else p.reject(new Error(m.error));
    return;
  }
  if (m.type === 'progress') onProgress(m);
  else if (m.type === 'frame') onFrame(m);
  else if (m.type === 'stopped') { setRunning(false); setStatus(m.reason, true); }
};
worker.onerror = (e) => { setStatus('worker: ' + e.message, true); console.error('worker:', e.message); };

// ---- canvases ------------------------------------------------------------------------------
function setupCanvas(cv, w, h) {
  const dpr = window.devicePixelRatio || 1;
  cv.style.width = w + 'px'; cv.style.height = h + 'px';
  cv.width = Math.round(w * dpr); cv.height = Math.round(h * dpr);
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { cv, ctx, w, h };
}
const C = {};
// canvas sizes follow their panels' widths (set again when the window is resized)
function layout() {
  const inner = (id) => { const el = $(id), st = getComputedStyle(el); return el.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight); };
  const sq = (id) => Math.max(200, Math.min(460, Math.floor(inner(id))));
  C.data = setupCanvas($('cv-data'), sq('panel-data'), sq('panel-data'));
  C.samples = setupCanvas($('cv-samples'), sq('panel-samples'), sq('panel-samples'));
  C.density = setupCanvas($('cv-density'), sq('panel-density'), sq('panel-density'));
  C.stages = setupCanvas($('cv-stages'), sq('panel-stages'), sq('panel-stages'));
  C.loss = setupCanvas($('cv-loss'), Math.max(200, Math.floor(inner('panel-loss'))), 260);
}
function redrawAll() { drawData(); drawSamples(); drawDensity(); drawStages(); drawLoss(); }
layout();
let resizeTimer = 0;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { layout(); redrawAll(); }, 150); });
// data coordinates <-> CSS pixels of a square panel showing [lo, hi]^2
const px = (c, x) => (x - state.lo) / (state.hi - state.lo) * c.w;
const py = (c, y) => (state.hi - y) / (state.hi - state.lo) * c.h;
const fromPx = (c, X, Y) => [state.lo + X / c.w * (state.hi - state.lo), state.hi - Y / c.h * (state.hi - state.lo)];

function clear(c, color) {
  c.ctx.fillStyle = color || '#fff';
  c.ctx.fillRect(0, 0, c.w, c.h);
}
function frameBox(c) {
  c.ctx.strokeStyle = '#ccc'; c.ctx.lineWidth = 1;
  c.ctx.strokeRect(0.5, 0.5, c.w - 1, c.h - 1);
}
function dots(c, pts, from, to, color, r, alpha) {
  const ctx = c.ctx;
  ctx.fillStyle = color; ctx.globalAlpha = alpha;
  for (let i = from; i < to; i++) {
    const X = px(c, pts[2 * i]), Y = py(c, pts[2 * i + 1]);
    if (X < -2 || Y < -2 || X > c.w + 2 || Y > c.h + 2) continue;
    ctx.fillRect(X - r, Y - r, 2 * r, 2 * r);
  }
  ctx.globalAlpha = 1;
}
function ring(c, x, y, label) {
  const ctx = c.ctx, X = px(c, x), Y = py(c, y);
  ctx.strokeStyle = COLORS.probe; ctx.lineWidth = 2;
  ctx.beginPath(); ctx.arc(X, Y, 6, 0, 2 * Math.PI); ctx.stroke();
  if (label) { ctx.fillStyle = COLORS.probe; ctx.font = '12px sans-serif'; ctx.fillText(label, X + 8, Y - 8); }
}

function drawData() {
  const c = C.data, d = state.data;
  clear(c);
  if (d) {
    dots(c, d.points, 0, d.nTrain, COLORS.train, 1.3, 0.55);
    dots(c, d.points, d.nTrain, d.nTrain + d.nVal, COLORS.val, 1.3, 0.75);
  }
  if (isDrawing() && (!d || d.nTrain + d.nVal === 0)) {
    c.ctx.fillStyle = '#777'; c.ctx.font = '15px sans-serif'; c.ctx.textAlign = 'center';
    c.ctx.fillText('press and drag here to draw points', c.w / 2, c.h / 2);
    c.ctx.textAlign = 'start';
  }
  frameBox(c);
}
function drawSamples() {
  const c = C.samples, f = state.frame;
  clear(c);
  if (f) dots(c, f.samples, 0, f.samples.length / 2, COLORS.sample, 1.3, 0.6);
  frameBox(c);
}
function viridis(t) {
  const s = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1), i = Math.min(VIRIDIS.length - 2, Math.floor(s)), u = s - i;
  return VIRIDIS[i].map((a, k) => Math.round(a + u * (VIRIDIS[i + 1][k] - a)));
}
const densityImage = document.createElement('canvas');
function drawDensity() {
  const c = C.density, f = state.frame;
  clear(c, '#440154');
  if (f) {
    const G = f.grid, lp = f.logp;
    let mx = -Infinity;
    for (let i = 0; i < lp.length; i++) if (lp[i] > mx) mx = lp[i];
    densityImage.width = G; densityImage.height = G;
    const ictx = densityImage.getContext('2d'), img = ictx.createImageData(G, G);
    for (let i = 0; i < G * G; i++) {
      const v = Math.sqrt(Math.exp(lp[i] - mx));   // sqrt(p / max p): the tails stay visible
      const [r, g, b] = viridis(Number.isFinite(v) ? v : 0);
      img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
    }
    ictx.putImageData(img, 0, 0);
    c.ctx.imageSmoothingEnabled = true;
    c.ctx.drawImage(densityImage, 0, 0, c.w, c.h);
  }
  if (state.probe) ring(c, state.probe.y[0], state.probe.y[1], 'y');
  frameBox(c);
}
function drawStages() {
  const c = C.stages, f = state.frame, k = +$('stage').value;
  clear(c);
  if (f && f.stages) {
    const m = f.stageSamples + 2 * f.lines * f.per, base = 2 * m * k, s = f.stages, ctx = c.ctx;
    if (base + 2 * m <= s.length) {
      ctx.strokeStyle = COLORS.grid; ctx.globalAlpha = 0.45; ctx.lineWidth = 1;
      for (let l = 0; l < 2 * f.lines; l++) {
        ctx.beginPath();
        let pen = false;
        for (let j = 0; j < f.per; j++) {
          const o = base + 2 * (f.stageSamples + l * f.per + j), X = px(c, s[o]), Y = py(c, s[o + 1]);
          const inside = Math.abs(X - c.w / 2) < 2 * c.w && Math.abs(Y - c.h / 2) < 2 * c.h;
          if (inside && pen) ctx.lineTo(X, Y); else if (inside) ctx.moveTo(X, Y);
          pen = inside;
        }
        ctx.stroke();
      }
      ctx.globalAlpha = 1;
      const pts = s.subarray(base, base + 2 * f.stageSamples);
      dots(c, pts, 0, f.stageSamples, COLORS.sample, 1.3, 0.65);
    }
  }
  // the probed point at this stage: after the first L - k layers of the data -> latent pass
  const p = state.probe;
  if (p && p.path.length === 2 * (state.nLayers + 1)) {
    const j = state.nLayers - k;
    ring(c, p.path[2 * j], p.path[2 * j + 1], k === 0 ? 'z' : '');
  }
  frameBox(c);
  $('stage-out').textContent = k + ' of ' + state.nLayers;
  $('stage-text').textContent = stageText(k);
}
function stageText(k) {
  const L = state.nLayers;
  if (!L) return '';
  if (k === 0) return 'k = 0: the base distribution p_X, before any layer.';
  const names = state.layerNames;
  const last = L - k;   // layers are numbered 1..L in the data -> latent direction
  const what = 'last applied: the inverse of layer ' + (last + 1) + ' (' + names[last] + ')';
  return (k === L ? 'k = ' + L + ': all layers, this is the data space. ' : 'k = ' + k + ': ') + what + '.';
}

function drawLoss() {
  const c = C.loss, ctx = c.ctx, tr = state.trainHist, va = state.valHist;
  clear(c);
  const pad = { l: 44, r: 10, t: 10, b: 26 }, W = c.w - pad.l - pad.r, H = c.h - pad.t - pad.b;
  const all = tr.concat(va);
  ctx.font = '11px sans-serif'; ctx.fillStyle = '#555';
  if (all.length < 1) {
    ctx.fillText('press Train or Step', pad.l + 10, pad.t + 20);
    frameBox(c);
    return;
  }
  const maxStep = Math.max(1, all.reduce((a, p) => Math.max(a, p[0]), 0));
  // the first steps go off the top: scale to what happens after the first 5 %
  let lo = Infinity, hi = -Infinity;
  for (const p of all) {
    if (!Number.isFinite(p[1])) continue;
    lo = Math.min(lo, p[1]);
    if (p[0] >= 0.05 * maxStep || all.length < 8) hi = Math.max(hi, p[1]);
  }
  if (!(hi > lo)) { hi = lo + 1; }
  const span = hi - lo; lo -= 0.08 * span; hi += 0.08 * span;
  const X = (s) => pad.l + s / maxStep * W, Y = (v) => pad.t + (hi - v) / (hi - lo) * H;
  ctx.strokeStyle = '#e6e6e6'; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4, y = Y(v);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(pad.l + W, y); ctx.stroke();
    ctx.fillText(v.toFixed(2), 4, y + 4);
  }
  ctx.fillText('step ' + maxStep, pad.l + W - 60, c.h - 8);
  ctx.fillText('0', pad.l, c.h - 8);
  ctx.fillText('NLL (nats)', pad.l + 4, pad.t + 10);
  const line = (hist, color) => {
    ctx.strokeStyle = color; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false;
    for (const p of hist) {
      const y = Math.max(pad.t, Math.min(pad.t + H, Y(p[1])));
      if (!Number.isFinite(p[1])) { pen = false; continue; }
      if (pen) ctx.lineTo(X(p[0]), y); else ctx.moveTo(X(p[0]), y);
      pen = true;
    }
    ctx.stroke();
  };
  line(tr, COLORS.train);
  line(va, COLORS.sample);
  frameBox(c);
}

// ---- the readout: the change of variables at one point ------------------------------------
function fmt(v, d) { return (v >= 0 ? '+' : '−') + Math.abs(v).toFixed(d === undefined ? 4 : d); }
function cell(v, name) {   // the full value stays in data-value, for anyone who checks the sums
  return '<td class="num" data-name="' + name + '" data-value="' + String(v) + '">' + fmt(v) + '</td>';
}
function drawReadout() {
  const p = state.probe, tb = $('readout').tBodies[0];
  if (!p) { tb.innerHTML = '<tr><td class="hint">hover over the density (panel 3)</td></tr>'; $('equation').textContent = ''; return; }
  let sum = p.logdetStd, rows = '';
  rows += '<tr><th>y</th><td class="num pair" data-name="y" data-value="' + p.y[0] + ',' + p.y[1] + '">(' + fmt(p.y[0], 3) + ', ' + fmt(p.y[1], 3) + ')</td><td class="what">the point (data space)</td></tr>';
  rows += '<tr><th>z = g<sup>-1</sup>(y)</th><td class="num pair" data-name="z" data-value="' + p.z[0] + ',' + p.z[1] + '">(' + fmt(p.z[0], 3) + ', ' + fmt(p.z[1], 3) + ')</td><td class="what">its latent point</td></tr>';
  rows += '<tr class="term"><th>log p<sub>X</sub>(z)</th>' + cell(p.logPx, 'logpx') + '<td class="what">base density at z</td></tr>';
  if (p.logdetStd !== 0) rows += '<tr class="term"><th>standardisation</th>' + cell(p.logdetStd, 'logdet-std') + '<td class="what">log|det| of y → (y − mean)/std</td></tr>';
  p.logdets.forEach((v, l) => {
    sum += v;
    rows += '<tr class="term layer"><th>layer ' + (l + 1) + '</th>' + cell(v, 'logdet-' + (l + 1)) + '<td class="what">' + (state.layerNames[l] || '') + '</td></tr>';
  });
  rows += '<tr class="sum"><th>Σ log|det|</th>' + cell(sum, 'logdet-sum') + '<td class="what">log|det dg<sup>-1</sup>/dy|, the layers added up</td></tr>';
  rows += '<tr class="sum"><th>log p<sub>X</sub>(z) + Σ</th>' + cell(p.logPx + sum, 'sum') + '<td class="what">change of variables</td></tr>';
  rows += '<tr class="total"><th>log p<sub>Y</sub>(y)</th>' + cell(p.logPy, 'logpy') + '<td class="what"><code>nf_flow_log_prob</code>, one call</td></tr>';
  tb.innerHTML = rows;
  $('equation').textContent = 'log p_Y(y) = log p_X(z) + Σ log|det|:   ' + p.logPy.toFixed(4).replace('-', '−') + ' = ' +
    p.logPx.toFixed(4).replace('-', '−') + (sum < 0 ? ' − ' : ' + ') + Math.abs(sum).toFixed(4);
}
async function probe(x, y) {
  state.probeWanted = [x, y];
  if (state.probeBusy || !state.cfg) return;
  state.probeBusy = true;
  try {
    while (state.probeWanted) {
      const [a, b] = state.probeWanted;
      state.probeWanted = null;
      state.probe = await call('probe', { x: a, y: b });
      state.probeAt = [a, b];
    }
  } catch (e) { setStatus(String(e.message), true); }
  state.probeBusy = false;
  drawReadout(); drawDensity(); drawStages();
}
function reprobe() { if (state.probeAt) probe(state.probeAt[0], state.probeAt[1]); }

// ---- status and controls ----------------------------------------------------------------------
function setStatus(text, error) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', !!error);
  if (error) console.warn('lesson:', text);
}
function showStatus() {
  const d = state.data, n = d ? d.nTrain + d.nVal : 0;
  const parts = ['step ' + state.step];
  if (Number.isFinite(state.lastLoss)) parts.push('loss ' + state.lastLoss.toFixed(4));
  if (Number.isFinite(state.lastVal) && d && d.nVal > 0) parts.push('validation ' + state.lastVal.toFixed(4));
  if (Number.isFinite(state.msPerStep)) parts.push(state.msPerStep.toFixed(2) + ' ms per step');
  parts.push(n + ' points');
  parts.push(state.nParams.toLocaleString('en') + ' parameters');
  setStatus(parts.join(' · '));
  $('status').dataset.step = String(state.step);
  $('status').dataset.points = String(n);
}
function setRunning(on) {
  state.running = on;
  $('run').textContent = on ? 'Pause' : 'Train';
  $('run').classList.toggle('running', on);
}
function isDrawing() { return state.info && state.info.datasets[+$('dataset').value].id === 'draw'; }
function readControls() {
  return {
    dataset: +$('dataset').value, kind: +$('kind').value, depth: +$('depth').value, width: +$('width').value,
    lr: +$('lr').value, seed: Math.max(1, Math.floor(+$('seed').value || 1)), n: state.n, batch: state.batch,
  };
}
function onProgress(m) {
  state.step = m.step; state.lastLoss = m.loss; state.lastVal = m.valNll; state.msPerStep = m.msPerStep;
  state.trainHist.push([m.step, m.loss]); state.valHist.push([m.step, m.valNll]);
  drawLoss(); showStatus();
}
function onFrame(f) {
  state.frame = f;
  drawSamples(); drawDensity(); drawStages();
  reprobe();
}
function applyBuild(r) {
  state.nLayers = r.nLayers; state.layerNames = r.layerNames; state.nParams = r.nParams;
  state.step = r.step; state.trainHist = []; state.valHist = [[0, r.valNll]];
  state.lastLoss = NaN; state.lastVal = r.valNll;
  const s = $('stage');
  s.max = String(r.nLayers);
  s.value = String(r.nLayers);
  $('kind-about').textContent = state.info.kinds[+$('kind').value].about;
  if (r.points) state.data = { nTrain: r.nTrain, nVal: r.nVal, points: r.points };
  $('clear').hidden = !isDrawing();
  onFrame(r.frame);
  drawData(); drawLoss(); showStatus();
}
async function setup() {
  setRunning(false);
  const cfg = readControls();
  state.cfg = cfg;
  applyBuild(await call('setup', cfg));
}
async function rebuild() {
  setRunning(false);
  const cfg = readControls();
  Object.assign(state.cfg, cfg);
  applyBuild(await call('rebuild', cfg));
}
function guarded(fn) {
  return (...a) => Promise.resolve().then(() => fn(...a)).catch((e) => setStatus(String(e.message || e), true));
}
async function trainSteps(steps) {
  setRunning(false);
  const r = await call('train', { steps });
  state.step = r.step; state.lastLoss = r.meanLoss; state.lastVal = r.valNll;
  state.trainHist.push([r.step, r.meanLoss]); state.valHist.push([r.step, r.valNll]);
  onFrame(r.frame); drawLoss(); showStatus();
  return r;
}

// drawing points with the mouse (the "draw" data set)
let drawingNow = false, drawQueued = null;
async function drawAt(ev) {
  const r = C.data.cv.getBoundingClientRect();
  const [x, y] = fromPx(C.data, ev.clientX - r.left, ev.clientY - r.top);
  if (drawQueued) { drawQueued = [x, y]; return; }
  drawQueued = [x, y];
  while (drawQueued) {
    const [a, b] = drawQueued;
    const d = await call('draw', { x: a, y: b, count: 6, spread: 0.07 });
    state.data = { nTrain: d.nTrain, nVal: d.nVal, points: d.points };
    if (drawQueued[0] === a && drawQueued[1] === b) drawQueued = null;
  }
  drawData(); showStatus();
}

function initControls(info) {
  const fill = (sel, list) => { sel.innerHTML = list.map((k) => '<option value="' + k.index + '" data-id="' + k.id + '">' + k.name + '</option>').join(''); };
  fill($('dataset'), info.datasets);
  fill($('kind'), info.kinds);
  // the URL may choose: ?dataset=moons&flow=nice&depth=4&width=32&lr=0.001&seed=3&n=2000&batch=256&autoplay=1
  const q = new URLSearchParams(location.search);
  const pick = (sel, list, id) => { const k = list.find((e) => e.id === id); if (k) sel.value = String(k.index); };
  if (q.has('dataset')) pick($('dataset'), info.datasets, q.get('dataset'));
  if (q.has('flow')) pick($('kind'), info.kinds, q.get('flow'));
  if (q.has('depth')) $('depth').value = q.get('depth');
  if (q.has('width')) { const w = q.get('width'); if (![...$('width').options].some((o) => o.value === w)) $('width').add(new Option(w)); $('width').value = w; }
  if (q.has('lr')) { const v = q.get('lr'); if (![...$('lr').options].some((o) => o.value === v)) $('lr').add(new Option(v)); $('lr').value = v; }
  if (q.has('seed')) $('seed').value = q.get('seed');
  state.n = Math.max(50, Math.min(20000, +(q.get('n') || 2000)));
  state.batch = Math.max(1, Math.min(4096, +(q.get('batch') || 256)));
  $('depth-out').textContent = $('depth').value;

  $('dataset').addEventListener('change', guarded(setup));
  $('seed').addEventListener('change', guarded(setup));
  for (const id of ['kind', 'width', 'lr']) $(id).addEventListener('change', guarded(rebuild));
  $('depth').addEventListener('input', () => { $('depth-out').textContent = $('depth').value; });
  $('depth').addEventListener('change', guarded(() => { $('depth-out').textContent = $('depth').value; return rebuild(); }));
  $('reset').addEventListener('click', guarded(rebuild));
  $('clear').addEventListener('click', guarded(setup));
  $('step').addEventListener('click', guarded(() => trainSteps(1)));
  $('run').addEventListener('click', guarded(async () => {
    if (state.running) {
      setRunning(false);
      state.pausing = true;   // until the worker answers, a last progress report may still come
      try { const r = await call('pause'); state.step = r.step; state.lastVal = r.valNll; showStatus(); } finally { state.pausing = false; }
    }
    else { setRunning(true); await call('run'); }
  }));
  $('stage').addEventListener('input', drawStages);

  const dens = C.density.cv;
  const at = (ev) => { const r = dens.getBoundingClientRect(); return fromPx(C.density, ev.clientX - r.left, ev.clientY - r.top); };
  dens.addEventListener('mousemove', (ev) => { if (!state.pinned) probe(...at(ev)); });
  dens.addEventListener('click', (ev) => { state.pinned = true; probe(...at(ev)); });
  dens.addEventListener('dblclick', () => { state.pinned = false; });
  const dv = C.data.cv;
  dv.addEventListener('mousedown', (ev) => { if (isDrawing()) { drawingNow = true; guarded(drawAt)(ev); } });
  dv.addEventListener('mousemove', (ev) => { if (drawingNow) guarded(drawAt)(ev); });
  window.addEventListener('mouseup', () => { drawingNow = false; });
  return q.get('autoplay') === '1';
}

// ---- start, and a small API for tests and the curious (window.nflowLesson) ------------------------
const ready = (async () => {
  const info = await call('init');
  state.info = info; state.lo = info.lo; state.hi = info.hi;
  $('build-info').textContent = (info.realBytes === 8 ? 'double' : 'float') + ' precision, ' + info.kinds.length + ' flow kinds';
  const autoplay = initControls(info);
  await setup();
  if (autoplay) $('run').click();
  return info;
})();
ready.catch((e) => { setStatus('could not start: ' + e.message, true); console.error('lesson:', e.message); });

window.nflowLesson = {
  ready,
  state,
  train: trainSteps,                                     // exactly n steps, then redraw
  probe: async (x, y) => { state.pinned = true; await probe(x, y); return state.probe; },
  bench: (seconds) => call('bench', { seconds }),       // ms per training step, no drawing
  losses: () => call('pause'),                           // {step, trainNll, valNll} now
};
