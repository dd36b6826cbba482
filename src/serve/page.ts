/**
 * The page `serve` answers at `/`: draw a digit (mouse or touch) or drop a PNG, and see what every model and the
 * ensemble make of it, with the request's latency. One self-contained document: no framework, no external URL,
 * so it works offline. A drawing is prepared the way MNIST's digits were: the strokes' bounding box scaled to fit
 * 20x20 and centred by its centre of mass in a 28x28 image, light on dark, sent as a PNG.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mnist-gpujs</title>
<link rel="icon" href="data:,">
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }
  h1 { font-size: 1.3rem; margin: 0 0 .3rem; }
  .row { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
  #pad { background: #000; border-radius: 6px; touch-action: none; cursor: crosshair; }
  #drop { border: 2px dashed #aaa; border-radius: 6px; padding: .6rem; margin-top: .5rem; text-align: center; color: #666; }
  #drop.over { border-color: #06c; color: #06c; }
  button { font: inherit; padding: .3rem .8rem; margin-top: .5rem; }
  table { border-collapse: collapse; }
  td, th { padding: .15rem .5rem; text-align: left; font-variant-numeric: tabular-nums; }
  .bar { display: inline-block; height: .7rem; background: #06c; vertical-align: middle; }
  .digit { font-size: 2.2rem; font-weight: 700; }
  .muted { color: #777; }
  .error { color: #b00; }
</style>
</head>
<body>
<h1>mnist-gpujs</h1>
<p class="muted">Draw a digit, or drop a PNG. Every model answers in one request to <code>/predictions/ensemble</code>.</p>
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
<script>
(() => {
  const pad = document.getElementById('pad');
  const ctx = pad.getContext('2d');
  const clear = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, pad.width, pad.height); drawn = false; };
  let drawing = false, drawn = false, last = null;
  clear();
  const at = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
  pad.addEventListener('pointerdown', (e) => { drawing = true; last = at(e); pad.setPointerCapture(e.pointerId); stroke(e); });
  pad.addEventListener('pointermove', (e) => { if (drawing) stroke(e); });
  const end = () => { if (drawing) { drawing = false; if (drawn) send(prepared()); } };
  pad.addEventListener('pointerup', end);
  pad.addEventListener('pointercancel', end);
  function stroke(e) {
    const p = at(e);
    ctx.strokeStyle = '#fff'; ctx.lineWidth = 18; ctx.lineCap = 'round'; ctx.lineJoin = 'round';
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p; drawn = true;
  }
  document.getElementById('clear').addEventListener('click', () => { clear(); show(null); });

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
    return new Promise((resolve) => out.toBlob(resolve, 'image/png'));
  }

  const drop = document.getElementById('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); if (e.dataTransfer.files[0]) send(e.dataTransfer.files[0]); });
  document.getElementById('file').addEventListener('change', (e) => { if (e.target.files[0]) send(e.target.files[0]); });

  async function send(blob) {
    blob = await blob;
    const t0 = performance.now();
    try {
      const res = await fetch('predictions/ensemble', { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: blob });
      const body = await res.json();
      const ms = performance.now() - t0;
      if (!res.ok) throw new Error(body.error || res.statusText);
      show(body, ms);
    } catch (err) {
      show(null);
      document.getElementById('error').textContent = String(err.message || err);
    }
  }

  const pct = (p) => (100 * p).toFixed(1) + '%';
  function row(label, p) {
    const best = p.probabilities[p.prediction];
    const cells = p.probabilities.map((q, c) => '<td title="' + c + ': ' + pct(q) + '"><span class="bar" style="width:' + Math.round(28 * q) + 'px"></span></td>').join('');
    return '<tr><th>' + label + '</th><td class="pred">' + p.prediction + '</td><td>' + pct(best) + '</td>' + cells + '</tr>';
  }
  function show(body, ms) {
    document.getElementById('error').textContent = '';
    document.getElementById('digit').textContent = body ? String(body.prediction) : '–';
    document.getElementById('latency').textContent = body ? ms.toFixed(1) + ' ms, ' + body.agreement + '/' + body.models.length + ' models agree' : '';
    const head = '<tr><th></th><th>digit</th><th>p</th>' + [0,1,2,3,4,5,6,7,8,9].map((c) => '<th>' + c + '</th>').join('') + '</tr>';
    document.getElementById('models').innerHTML = body
      ? head + row('ensemble', body) + body.models.map((m, i) => row('model' + i, m)).join('') : '';
  }
})();
</script>
</body>
</html>
`;
