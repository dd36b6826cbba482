/**
 * The page `serve` answers at `/`: draw a digit (mouse or touch) or drop a PNG, and see what every model and the
 * ensemble make of it, with the request's latency. A switch chooses where the models run: on the server (a POST to
 * `/predictions/ensemble`) or in this browser, on its own GPU through WebGPU or WebGL2 (the bundle at
 * `/web/mnist-gpujs.js`, `npm run build:web`, with a shipped model file fetched once), where a benchmark panel
 * also times sequential against single dispatch as `bench` does. No framework, no external URL: it works offline.
 * A drawing is prepared the way MNIST's digits were: the strokes' bounding box scaled to fit 20x20 and centred by
 * its centre of mass in a 28x28 image, light on dark.
 */
import { BUNDLE_FILE, DEFAULT_BENCH_IMAGE, PAGE_MODEL_FILES } from './web-assets.ts';

export interface PageConfig {
  /** whether this server answers predictions (false for `mnist-gpujs web`) */
  serverCompute: boolean;
  /** whether the browser bundle is built, so the page can compute in the browser */
  browserBundle: boolean;
}

const MODEL_CHOICES = Object.keys(PAGE_MODEL_FILES);

export function pageHtml(config: PageConfig): string {
  const pageConfig = JSON.stringify({ ...config, bundle: `./web/${BUNDLE_FILE}`, benchImage: `./web/${DEFAULT_BENCH_IMAGE}` });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mnist-gpujs</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  h2 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
  .row { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
  #pad { background: #000; border-radius: 6px; touch-action: none; cursor: crosshair; }
  #drop { border: 2px dashed #aaa; border-radius: 6px; padding: .6rem; margin-top: .5rem; text-align: center; color: #666; }
  #drop.over { border-color: #06c; color: #06c; }
  button { font: inherit; padding: .3rem .8rem; margin-top: .5rem; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin: .5rem 0 1rem; padding: .4rem .8rem; }
  label { margin-right: 1rem; }
  table { border-collapse: collapse; }
  td, th { padding: .15rem .5rem; text-align: left; font-variant-numeric: tabular-nums; }
  .bar { display: inline-block; height: .7rem; background: #06c; vertical-align: middle; }
  .digit { font-size: 2.2rem; font-weight: 700; }
  .muted { color: #777; }
  .error { color: #b00; }
  progress { width: 14rem; vertical-align: middle; }
  #bench-chart { background: #fff; border: 1px solid #ddd; border-radius: 4px; }
  #bench-json { max-height: 12rem; overflow: auto; background: #fff; border: 1px solid #ddd; padding: .4rem; font-size: 12px; }
</style>
</head>
<body>
<h1>mnist-gpujs</h1>
<fieldset>
  <legend>Compute</legend>
  <label><input type="radio" name="compute" value="server" id="compute-server"> on the server</label>
  <label><input type="radio" name="compute" value="browser" id="compute-browser"> in this browser</label>
  <span id="browser-options">
    <label>models <select id="model-file">${MODEL_CHOICES.map((m) => `<option value="${m}">${m === 'mnist_ensemble4.safetensors' ? 'the ensemble of 4' : 'the single model'} (${m})</option>`).join('')}</select></label>
    <label>backend <select id="backend"><option value="auto">auto (WebGPU, else WebGL2, else CPU)</option><option value="webgpu">WebGPU</option><option value="webgl2">WebGL2</option><option value="cpu">CPU (JavaScript)</option></select></label>
  </span>
  <div id="status" class="muted" role="status"></div>
</fieldset>
<p class="muted" id="hint">Draw a digit, or drop a PNG.</p>
<div class="row">
  <div>
    <canvas id="pad" width="280" height="280" aria-label="drawing pad"></canvas>
    <div><button id="clear" type="button">Clear</button></div>
    <div id="drop">drop a PNG here <input id="file" type="file" accept="image/png"></div>
  </div>
  <div>
    <div><span class="muted">ensemble</span> <span id="digit" class="digit">–</span> <span id="latency" class="muted"></span></div>
    <div id="error" class="error" role="alert"></div>
    <table id="models"></table>
  </div>
</div>
<section id="bench" hidden></section>
<script>
(() => {
  const config = ${pageConfig};
  const $ = (id) => document.getElementById(id);
  const pad = $('pad');
  const ctx = pad.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, pad.width, pad.height); drawn = false; };
  let drawing = false, drawn = false, last = null;
  clear();
  const at = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
  pad.addEventListener('pointerdown', (e) => { drawing = true; last = at(e); pad.setPointerCapture(e.pointerId); stroke(e); });
  pad.addEventListener('pointermove', (e) => { if (drawing) stroke(e); });
  const end = () => { if (drawing) { drawing = false; if (drawn) classify({ canvas: prepared(), name: 'the drawing' }); } };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  function stroke(e) {
    const p = at(e);
    ctx.strokeStyle = '#fff'; ctx.lineWidth = 18; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p; drawn = true;
  }
  $('clear').addEventListener('click', () => { clear(); show(null); });

  // MNIST's preparation: the ink's bounding box scaled into 20x20, centred by centre of mass in 28x28
  function prepared() {
    const { data, width, height } = ctx.getImageData(0, 0, pad.width, pad.height);
    let x0 = width, y0 = height, x1 = -1, y1 = -1;
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
      if (data[(y * width + x) * 4] > 0) { if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y; }
    }
    const box = Math.max(x1 - x0 + 1, y1 - y0 + 1);
    const small = document.createElement('canvas');
    small.width = small.height = 20;
    const s = small.getContext('2d');
    s.fillStyle = '#000'; s.fillRect(0, 0, 20, 20);
    const w = (x1 - x0 + 1) * 20 / box, h = (y1 - y0 + 1) * 20 / box;
    s.drawImage(pad, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (20 - w) / 2, (20 - h) / 2, w, h);
    const px = s.getImageData(0, 0, 20, 20).data;
    let mass = 0, cx = 0, cy = 0;
    for (let y = 0; y < 20; y++) for (let x = 0; x < 20; x++) { const v = px[(y * 20 + x) * 4]; mass += v; cx += v * x; cy += v * y; }
    const out = document.createElement('canvas');
    out.width = out.height = 28;
    const o = out.getContext('2d');
    o.fillStyle = '#000'; o.fillRect(0, 0, 28, 28);
    const dx = mass > 0 ? Math.round(13.5 - cx / mass) : 4, dy = mass > 0 ? Math.round(13.5 - cy / mass) : 4;
    o.drawImage(small, Math.max(0, Math.min(8, dx)), Math.max(0, Math.min(8, dy)));
    return out;
  }

  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); const f = e.dataTransfer.files[0]; if (f) classify({ blob: f, name: f.name }); });
  $('file').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) classify({ blob: f, name: f.name }); });

  // ---- where the models run
  let mode = config.serverCompute ? 'server' : 'browser';
  let lib = null, opening = null, lastDigit = null;
  const status = (text, isError) => { $('status').textContent = text; $('status').className = isError ? 'error' : 'muted'; };
  if (!config.serverCompute) $('compute-server').disabled = true;
  if (!config.browserBundle) {
    $('compute-browser').disabled = true;
    $('browser-options').hidden = true;
  }
  $('compute-' + mode).checked = true;
  function describeMode() {
    $('browser-options').hidden = mode !== 'browser';
    $('bench').hidden = mode !== 'browser';
    if (mode === 'server') {
      status(config.browserBundle ? 'The server computes: every model answers in one request to /predictions/ensemble.'
        : 'The server computes. Computing in this browser needs the bundle: run npm run build:web, then restart the server.');
    } else if (!config.browserBundle) {
      status('This server computes nothing, and the browser bundle is not built: run npm run build:web, then restart.', true);
    }
  }
  describeMode();
  for (const r of document.querySelectorAll('input[name=compute]')) {
    r.addEventListener('change', () => { mode = r.value; describeMode(); show(null); if (mode === 'browser') browserEngine().catch(() => {}); });
  }
  for (const id of ['model-file', 'backend']) $(id).addEventListener('change', () => { reopen(); });

  function reopen() {
    const old = opening;
    opening = null;
    if (old) old.then((e) => e.destroy(), () => {});
    if (mode === 'browser') browserEngine().catch(() => {});
  }

  /** The engine in this browser, opened once per model file and backend; an opening overtaken by a change is dropped. */
  let panel = null;
  function browserEngine() {
    if (opening) return opening;
    const file = $('model-file').value, backend = $('backend').value;
    status('loading the browser engine and ' + file + '…');
    const mine = (async () => {
      lib ??= await import(config.bundle);
      const e = await lib.BrowserEngine.open({ modelUrl: 'web/' + file, modelLabel: file, backend });
      if (opening !== mine) return e; // reopen() destroys it
      status('In this browser: ' + e.description + ', plan ' + e.executorKind + ', ' + e.numModels + ' model' + (e.numModels === 1 ? '' : 's')
        + (e.refused.length ? '. Passed over: ' + e.refused.join('; ') : ''));
      panel ??= lib.mountBenchPanel($('bench'), { engine: () => browserEngine(), digit: benchDigit, modelFile: () => $('model-file').value });
      panel.modelsChanged(e.numModels);
      return e;
    })();
    opening = mine;
    mine.catch((err) => { if (opening === mine) { opening = null; status(String(err.message || err), true); } });
    return mine;
  }

  /** The digit the benchmark times: the last one classified here, else the shipped fixtures/1.png. */
  async function benchDigit() {
    if (lastDigit) return lastDigit;
    const res = await fetch(config.benchImage);
    return { digit: await lib.digitFromBlob(await res.blob(), 'fixtures/1.png'), label: 'fixtures/1.png' };
  }

  async function classify(source) {
    const t0 = performance.now();
    try {
      if (mode === 'server') {
        const blob = source.blob ?? await new Promise((resolve) => source.canvas.toBlob(resolve, 'image/png'));
        const res = await fetch('predictions/ensemble', { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: blob });
        const body = await res.json();
        const ms = performance.now() - t0;
        if (!res.ok) throw new Error(body.error || res.statusText);
        show(body, ms);
      } else {
        const e = await browserEngine();
        const digit = source.canvas ? lib.digitFromCanvas(source.canvas, source.name) : await lib.digitFromBlob(source.blob, source.name);
        lastDigit = { digit, label: source.name };
        const r = await e.predict(digit.pixels);
        show(r.body, r.ms);
      }
    } catch (err) {
      show(null);
      $('error').textContent = String(err.message || err);
    }
  }

  const pct = (p) => (100 * p).toFixed(1) + '%';
  function row(label, p) {
    const best = p.probabilities[p.prediction];
    const cells = p.probabilities.map((q, c) => '<td title="' + c + ': ' + pct(q) + '"><span class="bar" style="width:' + Math.round(28 * q) + 'px"></span></td>').join('');
    return '<tr><th>' + label + '</th><td class="pred">' + p.prediction + '</td><td>' + pct(best) + '</td>' + cells + '</tr>';
  }
  function show(body, ms) {
    $('error').textContent = '';
    $('digit').textContent = body ? String(body.prediction) : '–';
    $('latency').textContent = body ? ms.toFixed(1) + ' ms, ' + body.agreement + '/' + body.models.length + ' models agree' : '';
    const head = '<tr><th></th><th>digit</th><th>p</th>' + [0,1,2,3,4,5,6,7,8,9].map((c) => '<th>' + c + '</th>').join('') + '</tr>';
    $('models').innerHTML = body
      ? head + row('ensemble', body) + body.models.map((m, i) => row('model' + i, m)).join('') : '';
  }

  // for scripts driving the page (its browser tests): the engine the page computes with, and its image decoding
  window.mnistGpujsPage = { browserEngine, decode: async (blob, name) => { lib ??= await import(config.bundle); return lib.digitFromBlob(blob, name); } };
  if (mode === 'browser' && config.browserBundle) browserEngine().catch(() => {});
})();
</script>
</body>
</html>
`;
}
