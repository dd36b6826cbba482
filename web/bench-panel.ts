/**
 * The page's benchmark panel, the terminal dashboard's twin: the same reducer (src/ui/dashboard-state.ts) turns the
 * harness's events into what is shown, here drawn as HTML: N and B, warm-up and timed progress for both paths,
 * mean/p50/p95 latency, requests/s and model evaluations/s, a latency history chart, the speedup and the agreement
 * check; when a run ends, its `bench --json` document, which "Copy results as JSON" puts on the clipboard.
 */
import { PATHS, PATH_LABEL, ONE_MODEL_NOTE, type PathKey } from '../src/bench/harness.ts';
import { BATCH_SIZES, dashboardChunks, initialState, reduce, type DashboardEvent, type DashboardState } from '../src/ui/dashboard-state.ts';
import { ms, rate } from '../src/format.ts';
import type { BrowserEngine } from './engine.ts';
import type { PreparedDigit } from './image.ts';

/** The model counts the panel offers (the ensemble file offers only up to its 4; a single model is replicated). */
export const PANEL_MODEL_COUNTS: readonly number[] = [1, 2, 4, 8, 16, 32, 64];
const DEFAULT_WARMUP = 3;
const DEFAULT_ITERS = 20;
const CHART_COLOURS: Record<PathKey, string> = { sequential: '#c60', singleDispatch: '#06c' };

export interface BenchPanelSource {
  engine: () => Promise<BrowserEngine>;
  /** the digit to time, and what to call it in the JSON's image.path */
  digit: () => Promise<{ digit: PreparedDigit; label: string }>;
  /** the model file's name, for the JSON's modelPath */
  modelFile: () => string;
}

/** What the page tells a mounted panel. */
export interface BenchPanel {
  /** a new engine holds this many models: the N offered follow (a stacked file offers its own only) */
  modelsChanged(fileModels: number): void;
}

const escapeHtml = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** Builds the panel inside `root` (replacing what was there); each run times the engine `source` gives then. */
export function mountBenchPanel(root: HTMLElement, source: BenchPanelSource): BenchPanel {
  root.innerHTML = `
    <h2>Benchmark in this browser: sequential against single dispatch</h2>
    <div>
      <label>models N <select id="bench-n"></select></label>
      <label>batch B <select id="bench-b">${BATCH_SIZES.map((b) => `<option>${b}</option>`).join('')}</select></label>
      <label>warm-up <input id="bench-warmup" type="number" min="0" max="1000" value="${DEFAULT_WARMUP}" style="width:4rem"></label>
      <label>timed calls <input id="bench-iters" type="number" min="1" max="10000" value="${DEFAULT_ITERS}" style="width:5rem"></label>
      <button id="bench-run" type="button">Run</button>
      <button id="bench-stop" type="button" disabled>Stop</button>
    </div>
    <div id="bench-phase" class="muted"></div>
    <table id="bench-table"></table>
    <div id="bench-summary"></div>
    <canvas id="bench-chart" width="640" height="140" aria-label="latency history"></canvas>
    <div><button id="bench-copy" type="button" disabled>Copy results as JSON</button> <span id="bench-copied" class="muted"></span></div>
    <pre id="bench-json" hidden></pre>`;
  const $ = <T extends HTMLElement>(id: string) => root.querySelector<T>(`#${id}`)!;
  const nSelect = $<HTMLSelectElement>('bench-n');
  const run = $<HTMLButtonElement>('bench-run');
  const stop = $<HTMLButtonElement>('bench-stop');
  const copy = $<HTMLButtonElement>('bench-copy');
  let abort: AbortController | undefined;
  let state: DashboardState | undefined;
  let drawPending = false;

  const modelsChanged = (fileModels: number) => {
    // a stacked file serves its own models only (as `bench` refuses more); a single model is replicated
    const counts = PANEL_MODEL_COUNTS.filter((n) => fileModels === 1 || n <= fileModels);
    const keep = Number(nSelect.value);
    const chosen = counts.includes(keep) ? keep : Math.min(2, counts[counts.length - 1]!);
    nSelect.innerHTML = counts.map((n) => `<option${n === chosen ? ' selected' : ''}>${n}</option>`).join('');
  };

  const draw = () => {
    drawPending = false;
    if (state) render(root, state);
  };
  const onEvent = (e: DashboardEvent) => {
    state = reduce(state!, e, performance.now());
    if (!drawPending) {
      drawPending = true;
      requestAnimationFrame(draw);
    }
  };

  run.addEventListener('click', async () => {
    const numModels = Number(nSelect.value);
    const batchSize = Number($<HTMLSelectElement>('bench-b').value);
    const warmup = clampInt($<HTMLInputElement>('bench-warmup').value, 0, 1000, DEFAULT_WARMUP);
    const iters = clampInt($<HTMLInputElement>('bench-iters').value, 1, 10_000, DEFAULT_ITERS);
    run.disabled = true;
    stop.disabled = false;
    copy.disabled = true;
    $('bench-json').hidden = true;
    $('bench-copied').textContent = '';
    abort = new AbortController();
    try {
      const engine = await source.engine();
      const { digit, label } = await source.digit();
      state = initialState({ backend: engine.description, modelPath: source.modelFile(), imagePath: label, numModels, batchSize, warmup, iters }, performance.now());
      onEvent({ type: 'inputs', fileModels: engine.numModels, image: { width: digit.width, height: digit.height, inverted: digit.inverted }, notes: digit.warnings });
      const doc = await engine.benchmark(digit, label, {
        numModels, batchSize, warmup, iters, chunks: dashboardChunks(iters), signal: abort.signal, onEvent,
      });
      $('bench-json').textContent = JSON.stringify(doc, null, 2);
      $('bench-json').hidden = false;
      copy.disabled = false;
    } catch (err) {
      const message = abort.signal.aborted ? undefined : (err as Error).message;
      if (!state) state = initialState({ backend: '', modelPath: source.modelFile(), imagePath: '', numModels, batchSize, warmup, iters }, performance.now());
      onEvent(message === undefined ? { type: 'stopped' } : { type: 'failed', error: message });
    } finally {
      run.disabled = false;
      stop.disabled = true;
    }
  });
  stop.addEventListener('click', () => abort?.abort());
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('bench-json').textContent ?? '');
      $('bench-copied').textContent = 'copied';
    } catch {
      // no clipboard (an insecure origin, or permission refused): select the text for a manual copy
      getSelection()?.selectAllChildren($('bench-json'));
      $('bench-copied').textContent = 'the clipboard refused: the JSON below is selected, copy it by hand';
    }
  });
  drawChart($<HTMLCanvasElement>('bench-chart'), undefined);
  return { modelsChanged };
}

function clampInt(text: string, min: number, max: number, fallback: number): number {
  const v = Math.round(Number(text));
  return Number.isFinite(v) ? Math.min(max, Math.max(min, v)) : fallback;
}

const PHASE_TEXT: Record<DashboardState['phase'], string> = {
  loading: 'loading', compiling: 'compiling both paths\' plans and comparing their answers', warmup: 'warming up', timed: 'timing',
  done: 'done', stopped: 'stopped', error: 'failed',
};

function render(root: HTMLElement, s: DashboardState): void {
  const $ = (id: string) => root.querySelector<HTMLElement>(`#${id}`)!;
  const phase = `${PHASE_TEXT[s.phase]}${s.activePath ? ` (${PATH_LABEL[s.activePath]})` : ''}`;
  $('bench-phase').textContent = `N = ${s.numModels}, B = ${s.batchSize} on ${s.backend}: ${phase}, ${(s.elapsedMs / 1000).toFixed(1)} s`
    + (s.notes.length ? ` · ${s.notes.join('; ')}` : '');
  $('bench-phase').className = s.phase === 'error' ? 'error' : 'muted';
  const head = '<tr><th>path</th><th>warm-up</th><th>timed</th><th>mean ms</th><th>p50 ms</th><th>p95 ms</th><th>requests/s</th><th>model evals/s</th><th>plan runs</th><th>executor</th></tr>';
  const rows = PATHS.map((p) => {
    const v = s.paths[p];
    const st = v.stats;
    const cell = (x: number | undefined, f: (n: number) => string) => `<td>${x === undefined ? '–' : f(x)}</td>`;
    return `<tr data-path="${p}"><th style="color:${CHART_COLOURS[p]}">${PATH_LABEL[p]}</th>`
      + `<td><progress max="${Math.max(1, v.warmup.total)}" value="${v.warmup.done}"></progress> ${v.warmup.done}/${v.warmup.total}</td>`
      + `<td><progress max="${Math.max(1, v.timed.total)}" value="${v.timed.done}"></progress> ${v.timed.done}/${v.timed.total}</td>`
      + cell(st?.meanMs, ms) + cell(st?.p50Ms, ms) + cell(st?.p95Ms, ms) + cell(st?.requestsPerSecond, rate) + cell(st?.modelEvaluationsPerSecond, rate)
      + `<td>${v.planRunsPerRequest ?? '–'}</td><td>${escapeHtml(v.executorKind ?? '–')}</td></tr>`;
  }).join('');
  $('bench-table').innerHTML = head + rows;
  const agreement = s.agreement
    ? `paths agree: same predictions, max |difference| of log-probabilities ${s.agreement.maxAbsDiff === 0 ? '0' : s.agreement.maxAbsDiff.toExponential(2)} (tolerance ${s.agreement.tolerance.toExponential()})`
    : '';
  const speedup = s.speedup === undefined ? '' : `speedup ${s.speedup.toFixed(2)}x${s.numModels === 1 ? ` (${ONE_MODEL_NOTE})` : ''}`;
  $('bench-summary').innerHTML = [speedup, agreement, s.error ? `<span class="error">${escapeHtml(s.error)}</span>` : ''].filter(Boolean).join(' · ');
  drawChart($('bench-chart') as HTMLCanvasElement, s);
}

/** Each path's mean latency per chunk, oldest first, on one shared scale. */
function drawChart(canvas: HTMLCanvasElement, s: DashboardState | undefined): void {
  const ctx = canvas.getContext('2d')!;
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const all = s ? PATHS.flatMap((p) => s.paths[p].history) : [];
  ctx.fillStyle = '#777';
  ctx.font = '11px system-ui, sans-serif';
  if (!s || all.length === 0) {
    ctx.fillText('latency per chunk of timed calls appears here', 8, height / 2);
    return;
  }
  const top = Math.max(...all) * 1.1;
  const pad = 28;
  ctx.fillText(`${ms(top)} ms`, 2, 11);
  ctx.fillText('0', 2, height - 4);
  const longest = Math.max(...PATHS.map((p) => s.paths[p].history.length));
  for (const p of PATHS) {
    const h = s.paths[p].history;
    ctx.strokeStyle = CHART_COLOURS[p];
    ctx.lineWidth = 2;
    ctx.beginPath();
    h.forEach((v, i) => {
      const x = pad + (longest > 1 ? (i / (longest - 1)) * (width - pad - 8) : 0);
      const y = height - 4 - (v / top) * (height - 16);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}
