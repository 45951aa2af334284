// tests/web/run.js: the lesson page (build/web/) in Debian's headless Chromium, driven by
// puppeteer-core, checked against the native build of the same lesson.c.
// Run by tests/web/run.sh, which builds both first. Prints `ok NAME` / `FAIL NAME: why`.
//   node tests/web/run.js --native PATH [--quick] [--shots DIR] [--page DIR] [--no-summary]
// (--page: serve another copy of build/web/, e.g. a deliberately broken one)
'use strict';
const http = require('http');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const puppeteer = require('puppeteer-core');

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const quick = argv.includes('--quick');
const native = opt('--native');
const root = path.resolve(__dirname, '..', '..');
const shots = opt('--shots', quick ? path.join(root, 'build', 'web', 'shots') : path.join(root, 'docs'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const pageDir = path.resolve(opt('--page', path.join(root, 'build', 'web')));   // served as /build/web/

// the lesson both builds train: a fixed data set, flow and seed
const LESSON = { dataset: 'moons', flow: 'realnvp', depth: 4, width: 32, seed: 3, n: 2000, batch: 256, lr: 0.002 };
const STEPS = quick ? 60 : 300;
const DEMO = { depth: 6, width: 64 };   // the page's default flow: the speed comparison's subject
const toTop = (page) => page.evaluate(() => window.scrollTo(0, 0));   // mouse positions are viewport positions
const TOL = 1e-5;

let passed = 0, failed = 0;
function check(name, good, why) {
  if (good) { passed++; console.log('ok ' + name + (why ? '  (' + why + ')' : '')); }
  else { failed++; console.log('FAIL ' + name + (why ? ': ' + why : '')); }
  return good;
}
const relErr = (a, b) => Math.abs(a - b) / Math.max(1, Math.abs(b));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function runNative(extra, over) {
  const c = Object.assign({}, LESSON, over || {});
  const args = ['--dataset', c.dataset, '--kind', c.flow, '--depth', String(c.depth), '--width', String(c.width),
    '--seed', String(c.seed), '--n', String(c.n), '--batch', String(c.batch), '--lr', String(c.lr)].concat(extra);
  return JSON.parse(execFileSync(native, args, { encoding: 'utf8' }));
}

// a static server for the repository (the page links ../../README.md), loopback only
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm',
  '.md': 'text/plain; charset=utf-8', '.png': 'image/png' };
function serve() {
  const srv = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    const inPage = rel.startsWith('/build/web/'), top = inPage ? pageDir : root;
    const file = path.resolve(top, '.' + (inPage ? rel.slice('/build/web'.length) : rel));
    if (!file.startsWith(top + path.sep) || req.method !== 'GET') { res.writeHead(403); res.end(); return; }
    fs.readFile(file, (err, data) => {
      if (err) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(data);
    });
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(srv)));
}

// pixels of a canvas inside its frame: how many differ from the background, how many colours
async function canvasStats(page, id) {
  return page.$eval('#' + id, (cv) => {
    const W = cv.width, H = cv.height, m = 6, d = cv.getContext('2d').getImageData(0, 0, W, H).data;
    const bg = [d[4 * (W * m + m)], d[4 * (W * m + m) + 1], d[4 * (W * m + m) + 2]];
    let differ = 0, n = 0; const colours = new Set(), pixels = [];
    for (let y = m; y < H - m; y++) for (let x = m; x < W - m; x++) {
      const i = 4 * (y * W + x);
      if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 30) differ++;
      if (colours.size < 5000) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      pixels.push(d[i], d[i + 1], d[i + 2]); n++;
    }
    return { fraction: differ / n, colours: colours.size, pixels };
  });
}
function pixelChange(a, b) {
  let n = 0;
  for (let i = 0; i < a.length; i += 3) if (Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]) > 30) n++;
  return n / (a.length / 3);
}
// the readout's numbers, as the page shows them (full precision in data-value)
async function readout(page) {
  return page.$$eval('#readout [data-name]', (cells) => {
    const r = { logdets: [] };
    for (const c of cells) {
      const n = c.dataset.name, v = c.dataset.value;
      if (n === 'y' || n === 'z') r[n] = v.split(',');
      else if (/^logdet-\d+$/.test(n)) r.logdets.push(+v);
      else r[n] = +v;
    }
    return r;
  });
}
// README.md's anchors: GitHub's for its headings, and any <a id="..."> or <a name="...">
function readmeAnchors() {
  const text = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const anchors = new Set();
  let fence = false;
  for (const line of text.split('\n')) {
    if (/^```/.test(line)) fence = !fence;
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (m && !fence) anchors.add(m[1].toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-'));
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1]);
  }
  return anchors;
}

async function main() {
  if (!native) throw new Error('--native PATH missing');
  fs.mkdirSync(shots, { recursive: true });
  const srv = await serve();
  const base = 'http://127.0.0.1:' + srv.address().port + '/build/web/index.html';
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'nflow-chromium-'));
  // Debian's Chromium as root in a closed network: no sandbox, no GPU, no background traffic
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM, headless: true, userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const problems = [];   // console errors, page errors, failed requests
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1320, height: 1000 });
    page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('requestfailed', (r) => problems.push('request failed: ' + r.url()));
    page.on('response', (r) => { if (r.status() >= 400) problems.push('HTTP ' + r.status() + ': ' + r.url()); });
    page.setDefaultTimeout(quick ? 30000 : 180000);

    // ---- loads ----------------------------------------------------------------------------
    const q = new URLSearchParams({ dataset: LESSON.dataset, flow: LESSON.flow, depth: LESSON.depth, width: LESSON.width,
      seed: LESSON.seed, n: LESSON.n, batch: LESSON.batch, lr: LESSON.lr });
    await page.goto(base + '?' + q, { waitUntil: 'load' });
    const info = await page.evaluate(() => window.nflowLesson.ready.then((i) => i, (e) => ({ error: String(e) })));
    const first = await page.evaluate(() => ({ step: nflowLesson.state.step, layers: nflowLesson.state.nLayers,
      status: document.getElementById('status').textContent, val: nflowLesson.state.lastVal }));
    check('page-loads', !info.error && first.step === 0 && first.layers === LESSON.depth && problems.length === 0,
      info.error || problems.join('; ') || first.status);

    // ---- the menus come from the C tables --------------------------------------------------
    const list = execFileSync(native, ['--list'], { encoding: 'utf8' }).trim().split('\n').map((l) => l.split(' '));
    const cKinds = list.filter((l) => l[0] === 'kind').map((l) => l[1]), cSets = list.filter((l) => l[0] === 'dataset').map((l) => l[1]);
    const pageKinds = await page.$$eval('#kind option', (o) => o.map((e) => e.dataset.id));
    const pageSets = await page.$$eval('#dataset option', (o) => o.map((e) => e.dataset.id));
    check('menus-from-c', JSON.stringify(pageKinds) === JSON.stringify(cKinds) && JSON.stringify(pageSets) === JSON.stringify(cSets),
      'flows ' + pageKinds.join(' ') + '; data ' + pageSets.join(' '));

    // ---- training: lower loss, and the native build's numbers -------------------------------
    const initial = await page.evaluate(() => window.nflowLesson.losses());
    const t0 = Date.now();
    const trained = await page.evaluate((s) => window.nflowLesson.train(s).then((r) => ({ step: r.step, trainNll: r.trainNll, valNll: r.valNll, loss: r.loss })), STEPS);
    const trainMs = Date.now() - t0;
    check('training-lowers-loss', trained.step === STEPS && trained.trainNll < initial.trainNll - 0.1 && trained.valNll < initial.valNll - 0.1,
      `${STEPS} steps in ${trainMs} ms: train NLL ${initial.trainNll.toFixed(4)} -> ${trained.trainNll.toFixed(4)}, validation ${initial.valNll.toFixed(4)} -> ${trained.valNll.toFixed(4)}`);
    const n0 = runNative(['--steps', '0']);

    // ---- pictures ------------------------------------------------------------------------------
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    const dens = await canvasStats(page, 'cv-density'), samp = await canvasStats(page, 'cv-samples'), dat = await canvasStats(page, 'cv-data');
    check('canvases-drawn', dens.fraction > 0.05 && dens.colours > 20 && samp.fraction > 0.02 && dat.fraction > 0.02,
      `density ${(100 * dens.fraction).toFixed(1)}% of pixels off the background, ${dens.colours} colours; samples ${(100 * samp.fraction).toFixed(1)}%; data ${(100 * dat.fraction).toFixed(1)}%`);

    // ---- hover: the change of variables, term by term ---------------------------------------
    await toTop(page);
    const box = await (await page.$('#cv-density')).boundingBox();
    const spot = await page.evaluate(() => { const d = nflowLesson.state.data; return [d.points[0], d.points[1]]; });   // on the data
    const lo = info.lo, hi = info.hi;
    await page.mouse.move(box.x + (spot[0] - lo) / (hi - lo) * box.width, box.y + (hi - spot[1]) / (hi - lo) * box.height);
    await page.waitForFunction(() => document.querySelector('#readout [data-name=logpy]') && !nflowLesson.state.probeBusy);
    const r = await readout(page);
    const sumTerms = r.logdets.reduce((a, b) => a + b, 0) + (r['logdet-std'] || 0);
    const gap = Math.abs(r.logpx + sumTerms - r.logpy);
    check('readout-adds-up', r.logdets.length === LESSON.depth && gap <= TOL * Math.max(1, Math.abs(r.logpy))
      && Math.abs(r['logdet-sum'] - sumTerms) <= 1e-12 * Math.max(1, Math.abs(sumTerms)),
      `at y = (${(+r.y[0]).toFixed(4)}, ${(+r.y[1]).toFixed(4)}): log p_X(z) ${r.logpx.toFixed(6)} + sum of ${r.logdets.length} log|det| ${sumTerms.toFixed(6)} = ${(r.logpx + sumTerms).toFixed(6)}, log p_Y(y) ${r.logpy.toFixed(6)}, gap ${gap.toExponential(1)}`);

    const nat = runNative(['--steps', String(STEPS), '--probe', r.y[0], r.y[1]]);
    const np = nat.probes[0];
    const pairs = [['initial train NLL', initial.trainNll, n0.initial_train_nll], ['train NLL', trained.trainNll, nat.train_nll],
      ['validation NLL', trained.valNll, nat.val_nll], ['last chunk loss', trained.loss, nat.last_chunk_loss]];
    const worst = pairs.reduce((w, p) => Math.max(w, relErr(p[1], p[2])), 0);
    check('training-matches-native', worst <= TOL,
      `${STEPS} steps, largest relative difference ${worst.toExponential(2)}: ` + pairs.map((p) => `${p[0]} ${p[1].toFixed(8)} / ${p[2].toFixed(8)}`).join(', '));
    const probePairs = [[r.logpy, np.log_py], [r.logpx, np.log_px], [+r.z[0], np.z[0]], [+r.z[1], np.z[1]]]
      .concat(r.logdets.map((v, i) => [v, np.logdets[i + 1]]));
    const worstProbe = probePairs.reduce((w, p) => Math.max(w, relErr(p[0], p[1])), 0);
    check('readout-matches-native', np.logdets.length === r.logdets.length + 1 && worstProbe <= TOL,
      `log p_Y(y) ${r.logpy.toFixed(8)} in the page, nf_flow_log_prob natively ${np.log_py.toFixed(8)}; largest difference over z, log p_X and the log|det| terms ${worstProbe.toExponential(2)}`);

    // ---- the layer slider ------------------------------------------------------------------------
    await page.focus('#stage');
    await page.keyboard.press('Home');
    const atBase = await canvasStats(page, 'cv-stages');
    const label0 = await page.$eval('#stage-out', (e) => e.textContent);
    await page.keyboard.press('End');
    const atData = await canvasStats(page, 'cv-stages');
    const labelL = await page.$eval('#stage-out', (e) => e.textContent);
    const change = pixelChange(atBase.pixels, atData.pixels);
    check('layer-slider', change > 0.02 && label0 === '0 of ' + LESSON.depth && labelL === LESSON.depth + ' of ' + LESSON.depth,
      `${(100 * change).toFixed(1)}% of the pixels change from "${label0}" to "${labelL}"`);

    // ---- Train / Pause, and the page stays responsive while the worker trains -------------------
    const stepBefore = await page.evaluate(() => nflowLesson.state.step);
    await page.click('#run');
    const gapMs = await page.evaluate((ms) => new Promise((resolve) => {   // longest pause between animation frames
      let last = performance.now(), worst = 0; const end = last + ms;
      const tick = (t) => { worst = Math.max(worst, t - last); last = t; if (t < end) requestAnimationFrame(tick); else resolve(worst); };
      requestAnimationFrame(tick);
    }), quick ? 1500 : 3000);
    await page.click('#run');
    await page.waitForFunction(() => !nflowLesson.state.running && !nflowLesson.state.pausing);
    const stepPaused = await page.evaluate(() => nflowLesson.state.step);
    await sleep(600);
    const stepLater = await page.evaluate(() => nflowLesson.state.step);
    const lossPix = await canvasStats(page, 'cv-loss');
    check('train-pause', stepPaused > stepBefore && stepLater === stepPaused && lossPix.fraction > 0.01,
      `Train: step ${stepBefore} -> ${stepPaused}, paused: ${stepLater} 600 ms later`);
    // generous: a main thread that trained itself would stall for seconds, the Worker's page not at all
    check('page-responsive', gapMs < 1000, `longest gap between animation frames while training: ${gapMs.toFixed(0)} ms`);

    // ---- speed: a training step of the page's default flow, in the page and natively ---------------
    const demoParams = runNative(['--steps', '0'], DEMO).params;
    await page.$eval('#depth', (el, d) => { el.value = String(d); el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }, DEMO.depth);
    await page.waitForFunction((d) => nflowLesson.state.nLayers === d && nflowLesson.state.step === 0, {}, DEMO.depth);
    await page.select('#width', String(DEMO.width));
    await page.waitForFunction((p) => nflowLesson.state.nParams === p, {}, demoParams);
    const secs = quick ? 1 : 3;
    const natBench = [], webBench = [];
    for (let round = 0; round < (quick ? 1 : 3); round++) {   // interleaved, best of each: the machine's load hits both
      natBench.push(runNative(['--steps', '0', '--bench', String(secs)], DEMO).ms_per_step);
      webBench.push((await page.evaluate((s) => window.nflowLesson.bench(s), secs)).msPerStep);
    }
    const nMs = Math.min(...natBench), wMs = Math.min(...webBench);
    // a figure for the report, not a threshold (shared machines are noisy): the check is that both ran
    check('speed', nMs > 0 && wMs > 0 && isFinite(nMs) && isFinite(wMs), `a training step of the default flow (${DEMO.depth} couplings of width ${DEMO.width}, batch ${LESSON.batch}, double): ` +
      `${wMs.toFixed(2)} ms in the page, ${nMs.toFixed(2)} ms native: ${(nMs / wMs).toFixed(2)}x native speed`);

    // ---- screenshots (docs/web_*.png; build/web/shots with --quick) ------------------------------
    // the default flow, fresh (Reset), trained with the Train button
    await page.click('#reset');
    await page.waitForFunction(() => nflowLesson.state.step === 0);
    await page.click('#run');
    await page.waitForFunction((n) => nflowLesson.state.step >= n, { timeout: 300000 }, quick ? 40 : 2000);
    await page.click('#run');
    await page.waitForFunction(() => !nflowLesson.state.running && !nflowLesson.state.pausing);
    await page.focus('#stage');
    await page.keyboard.press('End');
    await toTop(page);
    await page.mouse.move(box.x + (spot[0] - lo) / (hi - lo) * box.width, box.y + (hi - spot[1]) / (hi - lo) * box.height);
    await page.mouse.down(); await page.mouse.up();
    await page.waitForFunction(() => !nflowLesson.state.probeBusy);
    await sleep(200);
    await page.screenshot({ path: path.join(shots, 'web_lesson.png'), fullPage: true });
    await page.focus('#stage');
    for (let k = 0; k < Math.floor(DEMO.depth / 2); k++) await page.keyboard.press('ArrowLeft');
    await page.waitForFunction((t) => document.getElementById('stage-out').textContent === t, {}, (DEMO.depth - Math.floor(DEMO.depth / 2)) + ' of ' + DEMO.depth);
    await (await page.$('#panel-stages')).screenshot({ path: path.join(shots, 'web_layers.png') });
    await (await page.$('#panel-readout')).screenshot({ path: path.join(shots, 'web_readout.png') });

    // ---- NICE: the other kind; additive layers have log|det| = 0 --------------------------------
    const niceIndex = pageKinds.indexOf('nice');
    await page.select('#kind', String(niceIndex));
    await page.waitForFunction((n) => nflowLesson.state.step === 0 && document.getElementById('kind-about').textContent.includes('Additive'), {}, niceIndex);
    const nice0 = await page.evaluate(() => window.nflowLesson.losses());
    const nice1 = await page.evaluate((s) => window.nflowLesson.train(s).then((x) => ({ trainNll: x.trainNll })), quick ? 40 : 200);
    const nr = await page.evaluate(() => window.nflowLesson.probe(0.3, 0.2));
    check('nice', nice1.trainNll < nice0.trainNll - 0.05 && nr.logdets.every((v) => v === 0) && nr.logPy === nr.logPx,
      `train NLL ${nice0.trainNll.toFixed(4)} -> ${nice1.trainNll.toFixed(4)}; every layer's log|det| is ${nr.logdets.every((v) => v === 0) ? '0' : 'NOT 0'}, so log p_Y = log p_X(z) = ${nr.logPy.toFixed(4)}`);

    // ---- drawing a data set with the mouse ------------------------------------------------------
    await page.select('#dataset', String(pageSets.indexOf('draw')));
    await toTop(page);
    await page.waitForFunction(() => document.getElementById('status').dataset.points === '0');
    const db = await (await page.$('#cv-data')).boundingBox();
    await page.mouse.move(db.x + 0.3 * db.width, db.y + 0.5 * db.height);
    await page.mouse.down();
    for (let i = 0; i <= 20; i++) await page.mouse.move(db.x + (0.3 + 0.4 * i / 20) * db.width, db.y + (0.5 - 0.2 * Math.sin(i / 3)) * db.height);
    await page.mouse.up();
    await page.waitForFunction(() => +document.getElementById('status').dataset.points > 50);
    const drawn = await page.evaluate(() => +document.getElementById('status').dataset.points);
    const afterDraw = await page.evaluate(() => window.nflowLesson.train(20).then((x) => x.trainNll));
    check('draw', drawn > 50 && Number.isFinite(afterDraw), `${drawn} points drawn, 20 steps on them: train NLL ${afterDraw.toFixed(4)}`);

    check('no-console-errors', problems.length === 0, problems.join('; ') || 'no console error, page error or failed request');
  } finally {
    await browser.close();
    srv.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }

  // ---- the page's README links land on headings ------------------------------------------------
  const html = fs.readFileSync(path.join(root, 'web', 'index.html'), 'utf8');
  const links = [...new Set([...html.matchAll(/href="\.\.\/\.\.\/README\.md#([^"]+)"/g)].map((m) => m[1]))];
  const anchors = readmeAnchors(), missing = links.filter((a) => !anchors.has(a));
  check('readme-anchors', links.length > 0 && missing.length === 0,
    missing.length ? 'README.md has no heading for #' + missing.join(', #') : links.length + ' links to README.md headings');
  console.log('screenshots in ' + path.relative(root, shots) + '/web_*.png');
}

main().catch((e) => { check('run', false, e.stack || String(e)); }).finally(() => {
  if (!argv.includes('--no-summary')) console.log(`web: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
});
