/**
 * The live dashboard: components on given props, the App on a fake controller (keys, progress, errors,
 * resize), and the real controller driving the real harness with fake runners (no kernels, so it takes
 * milliseconds). The real CLI in a terminal is tested elsewhere (tmux).
 */
import type { PeerResult } from '../src/bench/peers.ts';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';

// Ink renders only its final frame when CI is set (read once, when ink loads); these tests read the live frames
// of an interactive render, as the dashboard shows them on a terminal. Restored after the file.
const savedCi = vi.hoisted(() => {
  const saved = { CI: process.env.CI, CONTINUOUS_INTEGRATION: process.env.CONTINUOUS_INTEGRATION };
  delete process.env.CI;
  delete process.env.CONTINUOUS_INTEGRATION;
  return saved;
});
afterAll(() => {
  for (const [name, value] of Object.entries(savedCi)) if (value !== undefined) process.env[name] = value;
});
import { cleanup, render } from 'ink-testing-library';
import { NUM_CLASSES, type ParamSet } from '../src/model/cnn.ts';
import { stackedModels } from '../src/model/stack.ts';
import type { Runner } from '../src/engine/runners.ts';
import { InputError } from '../src/errors.ts';
import type { LoadedDigit } from '../src/io/png.ts';
import { ONE_MODEL_NOTE, benchmarkModels, type BenchEvent, type PathStats, type ServingPaths } from '../src/bench/harness.ts';
import { App, keyAction } from '../src/ui/App.tsx';
import { BenchController, type DashboardController, type RunDeps } from '../src/ui/controller.ts';
import {
  HISTORY_LENGTH, dashboardChunks, initialState, nextBatchSize, reduce,
  type DashboardEvent, type DashboardState, type PathView,
} from '../src/ui/dashboard-state.ts';
import { Footer } from '../src/ui/Footer.tsx';
import { Header } from '../src/ui/Header.tsx';
import { PathPanel, formatPredictions } from '../src/ui/PathPanel.tsx';
import { ProgressBar, barParts } from '../src/ui/ProgressBar.tsx';
import { Sparkline, sparkline } from '../src/ui/Sparkline.tsx';

afterEach(() => cleanup());

/** Lets Ink's and React's scheduled renders run. */
const tick = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

const stats = (meanMs: number, over: Partial<PathStats> = {}): PathStats => ({
  meanMs, p50Ms: meanMs - 0.5, p95Ms: meanMs + 2, p99Ms: meanMs + 3, minMs: meanMs - 1, maxMs: meanMs + 4, samples: 20,
  requestsPerSecond: 1000 / meanMs, modelEvaluationsPerSecond: 2000 / meanMs, ...over,
});

function pathView(over: Partial<PathView> = {}): PathView {
  return {
    warmup: { done: 0, total: 2 }, timed: { done: 0, total: 20 }, samplesMs: [], stats: undefined, history: [],
    predictions: undefined, planRunsPerRequest: undefined, executorKind: undefined, ...over,
  };
}

function dashState(over: Partial<DashboardState> = {}): DashboardState {
  return {
    backend: 'cpu', modelPath: '/models/m.safetensors', imagePath: '/img/7.png', fileModels: 1,
    image: { width: 28, height: 28, inverted: false }, notes: [], numModels: 2, batchSize: 1, warmup: 2, iters: 20,
    chunks: 10, phase: 'loading', activePath: undefined,
    paths: { sequential: pathView(), singleDispatch: pathView() },
    speedup: undefined, agreement: undefined, startedAtMs: 0, elapsedMs: 0, error: undefined, peers: undefined, ...over,
  };
}

/** A controller whose state the test sets; records what the App asks of it. */
class FakeController implements DashboardController {
  state: DashboardState;
  calls: string[] = [];
  private readonly listeners = new Set<() => void>();
  constructor(state = dashState()) { this.state = state; }
  subscribe = (l: () => void) => { this.listeners.add(l); return () => { this.listeners.delete(l); }; };
  getState = () => this.state;
  emit(over: Partial<DashboardState>): void {
    this.state = { ...this.state, ...over };
    for (const l of this.listeners) l();
  }
  changeModels(delta: number) { this.calls.push(`models ${delta}`); }
  cycleBatchSize() { this.calls.push('batch'); }
  rerun() { this.calls.push('rerun'); }
  async stop() { this.calls.push('stop'); }
}

const frame = (r: { lastFrame: () => string | undefined }): string => r.lastFrame() ?? '';

describe('components', () => {
  it('ProgressBar fills in proportion and shows the count', () => {
    expect(barParts(5, 10, 10)).toEqual(['█████', '░░░░░']);
    expect(barParts(30, 10, 4)).toEqual(['████', '']);
    expect(barParts(0, 0, 4)).toEqual(['████', '']);
    expect(frame(render(<ProgressBar label="timed" done={5} total={10} width={10} />))).toBe('timed █████░░░░░ 5/10');
    expect(frame(render(<ProgressBar label="warm-up" labelWidth={10} done={0} total={3} width={6} />)))
      .toBe('warm-up   ░░░░░░ 0/3');
    expect(frame(render(<ProgressBar label="warm-up" done={0} total={0} width={3} />))).toBe('warm-up ███ none');
  });

  it('Sparkline scales the last values to block heights', () => {
    expect(sparkline([1, 2, 3, 4, 5, 6, 7, 8], 8)).toBe('▁▂▃▄▅▆▇█');
    expect(sparkline([100, 1, 2, 3], 3)).toBe('▁▅█'); // only the last 3, scaled among themselves
    expect(sparkline([5, 5], 10)).toBe('▄▄');
    expect(sparkline([], 10)).toBe('');
    expect(frame(render(<Sparkline values={[2, 4]} width={10} />))).toBe('▁█');
    expect(frame(render(<Sparkline values={[]} width={10} />))).toBe('no chunk finished yet');
  });

  it('PathPanel shows progress, latency, throughput, history and each model\'s digit', () => {
    const view = pathView({
      warmup: { done: 2, total: 2 }, timed: { done: 10, total: 20 }, stats: stats(12.345),
      history: [12, 13, 11], predictions: [7, 1, 7], planRunsPerRequest: 3, executorKind: 'fused-threaded',
    });
    const out = frame(render(<PathPanel title="sequential" view={view} width={60} color="yellow" active />));
    expect(out).toContain('sequential  3 plan runs per request · fused-threaded');
    expect(out).toMatch(/warm-up +█+ 2\/2/);
    expect(out).toMatch(/timed +█+░+ 10\/20/);
    // half the bar is filled at 10/20
    const bar = /timed +(█+)(░+)/.exec(out)!;
    expect(Math.abs(bar[1]!.length - bar[2]!.length)).toBeLessThanOrEqual(1);
    expect(out).toContain('12.35 ms mean  p50 11.85  p95 14.35');
    expect(out).toContain('81.0 req/s  162.0 model evals/s');
    expect(out).toContain('▅█▁ 11.00–13.00 ms');
    expect(out).toMatch(/digits +7 1 7/);
    // a rounded border, within the terminal (ink-testing-library's is 100 columns)
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^╭─+╮$/);
    expect(lines.at(-1)).toMatch(/^╰─+╯$/);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(100);
  });

  it('PathPanel before any call shows dashes; many models are listed as counts', () => {
    const out = frame(render(<PathPanel title="single dispatch" view={pathView()} width={50} color="cyan" active={false} />));
    expect(out).toMatch(/latency +–/);
    expect(out).toMatch(/digits +–/);
    expect(out).toContain('no chunk finished yet');
    expect(formatPredictions([3, 3, 1])).toBe('3 3 1');
    expect(formatPredictions([...Array(40).fill(7), 1, 1, 2])).toBe('7×40 1×2 2×1');
  });

  it('Header names backend, N, B, timing, model file and image', () => {
    const s = dashState({ numModels: 4, batchSize: 8, notes: ['m.safetensors holds one model; it is replicated 4 times'] });
    const out = frame(render(<Header {...s} />));
    expect(out).toContain('mnist-gpujs dashboard  backend cpu  N=4 models  B=8 images per request');
    expect(out).toContain('timing  2 warm-up + 20 timed calls per path, alternating in 10 chunks');
    expect(out).toContain('/models/m.safetensors  (holds 1 model, replicated ×4)');
    expect(out).toContain('/img/7.png  (28x28)');
    expect(out).toContain('note: m.safetensors holds one model; it is replicated 4 times');
  });

  it('Footer shows the run\'s status and the keys', () => {
    const out = frame(render(<Footer phase="timed" activePath="singleDispatch" numModels={3} batchSize={8} elapsedMs={2500} />));
    expect(out).toContain('● timing both paths, alternating (single dispatch now)… 2.5 s');
    expect(out).toMatch(/\+\/- +models \(N=3\) +b +batch size 8→64 +r +rerun +q +quit/);
    expect(frame(render(<Footer phase="done" activePath={undefined} numModels={1} batchSize={64} elapsedMs={1234} />)))
      .toMatch(/✔ done in 1\.2 s\n.*batch size 64→1/);
  });

  it('keys map to actions; Ctrl-C quits with 130', () => {
    const plain = { ctrl: false };
    expect(keyAction('+', plain)).toEqual({ kind: 'models', delta: 1 });
    expect(keyAction('=', plain)).toEqual({ kind: 'models', delta: 1 });
    expect(keyAction('-', plain)).toEqual({ kind: 'models', delta: -1 });
    expect(keyAction('b', plain)).toEqual({ kind: 'batch' });
    expect(keyAction('r', plain)).toEqual({ kind: 'rerun' });
    expect(keyAction('q', plain)).toEqual({ kind: 'quit', exitCode: 0 });
    expect(keyAction('c', { ctrl: true })).toEqual({ kind: 'quit', exitCode: 130 });
    expect(keyAction('x', plain)).toBeUndefined();
    expect([1, 8, 64, 4, 100].map(nextBatchSize)).toEqual([8, 64, 1, 8, 1]);
  });
});

describe('App on a fake controller', () => {
  it('at N = 1 the speedup line says both paths are the same plan', () => {
    const one = frame(render(<App controller={new FakeController(dashState({ numModels: 1, phase: 'done', speedup: 0.97 }))} />));
    expect(one).toContain(`0.97× (${ONE_MODEL_NOTE})`);
    expect(one).not.toContain('mean latency');
    const two = frame(render(<App controller={new FakeController(dashState({ numModels: 2, phase: 'done', speedup: 0.97 }))} />));
    expect(two).toContain('0.97× single dispatch over sequential (mean latency)');
  });

  it('progress advances as the controller publishes it', async () => {
    const c = new FakeController();
    const r = render(<App controller={c} />);
    expect(frame(r)).toContain('loading the model file and image');
    expect(frame(r)).toMatch(/timed +░+ 0\/20/);
    for (const done of [5, 10, 20]) {
      c.emit({
        phase: done < 20 ? 'timed' : 'done', activePath: 'sequential', elapsedMs: 1000,
        paths: {
          sequential: pathView({ warmup: { done: 2, total: 2 }, timed: { done, total: 20 }, stats: stats(20) }),
          singleDispatch: pathView({ warmup: { done: 2, total: 2 }, timed: { done, total: 20 }, stats: stats(5) }),
        },
        speedup: 4,
      });
      await tick();
      expect(frame(r).match(new RegExp(`timed +█+░* ${done}/20`, 'g'))).toHaveLength(2);
    }
    const out = frame(r);
    expect(out).toContain('20.00 ms mean');
    expect(out).toContain('5.00 ms mean');
    expect(out).toContain('4.00× single dispatch over sequential (mean latency)');
    expect(out).toContain('✔ done in 1.0 s');
    // both panels side by side at 100 columns
    expect(out).toMatch(/sequential.*single dispatch/);
    // progress went through intermediate frames
    expect(r.frames.some((f) => /timed +█+░+ 5\/20/.test(f))).toBe(true);
  });

  it('an error state shows a red error line', async () => {
    const c = new FakeController();
    const r = render(<App controller={c} />);
    expect(frame(r)).not.toContain('✖');
    c.emit({ phase: 'error', error: '/img/7.png: file not found' });
    await tick();
    expect(frame(r)).toContain('✖ /img/7.png: file not found');
    expect(frame(r)).toContain('■ the run failed');
  });

  it('keys reach the controller; q stops it and exits', async () => {
    const c = new FakeController();
    const r = render(<App controller={c} />);
    await tick();
    for (const key of ['+', '+', '-', 'b', 'r', 'x']) {
      r.stdin.write(key);
      await tick(5);
    }
    expect(c.calls).toEqual(['models 1', 'models 1', 'models -1', 'batch', 'rerun']);
    // Ink reads keys through a 'readable' listener on stdin while the app is mounted
    expect(r.stdin.listenerCount('readable')).toBeGreaterThan(0);
    r.stdin.write('q');
    r.stdin.write('+'); // pressed before the app has gone: ignored
    await tick();
    expect(c.calls.slice(-2)).toEqual(['rerun', 'stop']);
    await vi.waitFor(() => expect(r.stdin.listenerCount('readable')).toBe(0), { timeout: 2000, interval: 5 });
    // the last frame says the run was stopped
    expect(frame(r)).toContain('■ stopped');
  });

  it('a narrow terminal stacks the panels; a resize re-lays them out', async () => {
    const c = new FakeController();
    const r = render(<App controller={c} />);
    await tick();
    expect(frame(r).split('\n').some((l) => l.includes('sequential') && l.includes('single dispatch'))).toBe(true);
    Object.defineProperty(r.stdout, 'columns', { value: 70, configurable: true });
    r.stdout.emit('resize');
    await tick();
    const lines = frame(r).split('\n');
    expect(lines.some((l) => l.includes('sequential') && l.includes('single dispatch'))).toBe(false);
    expect(lines.findIndex((l) => l.includes('single dispatch'))).toBeGreaterThan(lines.findIndex((l) => l.includes('sequential')));
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(70);
  });
});

// ---------------------------------------------------------------------------------------------
// The reducer on harness events alone

describe('the dashboard state from harness events (reduce)', () => {
  const config = { backend: 'fake', modelPath: 'm.safetensors', imagePath: '7.png', numModels: 2, batchSize: 1, warmup: 1, iters: 4 };
  /** log-probabilities for N = 2, B = 1 where model m answers `digits[m]` */
  const answer = (...digits: number[]) => {
    const out = new Float32Array(digits.length * NUM_CLASSES).fill(-9);
    digits.forEach((d, m) => { out[m * NUM_CLASSES + d] = 0; });
    return out;
  };
  const call = (path: 'sequential' | 'singleDispatch', phase: 'warmup' | 'timed', done: number, total: number, latencyMs: number, endsChunk = false,
    output = answer(3, 4)): BenchEvent => ({ type: 'call', numModels: 2, phase, path, done, total, latencyMs, output, endsChunk });

  it('turns each event into what the panels show: progress, live statistics per chunk, history, predictions, the result', () => {
    const agreement = { maxAbsDiff: 0, samePredictions: true, tolerance: 1e-5 };
    const execution = { sequential: { planRuns: 2, dispatches: 2, executorKind: 'fake' }, singleDispatch: { planRuns: 1, dispatches: 1, executorKind: 'fake' } };
    const steps: Array<[DashboardEvent, number]> = [
      [{ type: 'start', numModels: 2, batchSize: 1, planRuns: { sequential: 2, singleDispatch: 1 } }, 10],
      [{ type: 'first-request', numModels: 2, predictions: [[3], [4]], agreement, execution }, 20],
      [{ type: 'phase', numModels: 2, phase: 'warmup', path: 'sequential', total: 1 }, 21],
      [call('sequential', 'warmup', 1, 1, 50, false, answer(5, 6)), 30],
      [{ type: 'phase', numModels: 2, phase: 'timed', path: 'sequential', total: 4 }, 31],
      [{ type: 'phase', numModels: 2, phase: 'timed', path: 'singleDispatch', total: 4 }, 31],
      [call('sequential', 'timed', 1, 4, 10), 40],
      [call('sequential', 'timed', 2, 4, 20, true), 50],
      [call('singleDispatch', 'timed', 1, 4, 4), 55],
      [call('singleDispatch', 'timed', 2, 4, 6, true), 60],
    ];
    let s = initialState(config, 0);
    const seen: DashboardState[] = [];
    for (const [event, at] of steps) seen.push(s = reduce(s, event, at));
    expect(seen[0]!.phase).toBe('compiling');
    expect(seen[0]!.paths.sequential.planRunsPerRequest).toBe(2);
    expect(seen[1]!.agreement).toEqual(agreement);
    expect(seen[1]!.paths.singleDispatch.executorKind).toBe('fake');
    expect(seen[3]).toMatchObject({ phase: 'warmup', activePath: 'sequential', elapsedMs: 30 });
    expect(seen[3]!.paths.sequential.warmup).toEqual({ done: 1, total: 1 });
    expect(seen[3]!.paths.sequential.predictions).toEqual([5, 6]);
    // a warm-up call is no sample
    expect(seen[3]!.paths.sequential.samplesMs).toEqual([]);
    // mid-chunk: a sample, no statistics yet
    expect(seen[6]!.paths.sequential.samplesMs).toEqual([10]);
    expect(seen[6]!.paths.sequential.stats).toBeUndefined();
    expect(seen[6]!.paths.sequential.predictions).toEqual([3, 4]);
    // a chunk's end: its mean joins the history, statistics over every sample so far
    expect(seen[7]!.paths.sequential.history).toEqual([15]);
    expect(seen[7]!.paths.sequential.stats).toMatchObject({ meanMs: 15, samples: 2, minMs: 10, maxMs: 20 });
    expect(seen[7]!.paths.sequential.stats!.modelEvaluationsPerSecond).toBeCloseTo(2000 / 15, 9);
    expect(seen[7]!.speedup).toBeUndefined();
    expect(s.paths.singleDispatch.history).toEqual([5]);
    expect(s.speedup).toBeCloseTo(3, 12);
    expect(s).toMatchObject({ phase: 'timed', activePath: 'singleDispatch', elapsedMs: 60 });
    expect(s.paths.sequential.timed).toEqual({ done: 2, total: 4 });

    // the second chunk's history point is its own mean, not the running one
    s = reduce(s, call('sequential', 'timed', 3, 4, 40), 70);
    s = reduce(s, call('sequential', 'timed', 4, 4, 60, true), 80);
    expect(s.paths.sequential.history).toEqual([15, 50]);
    expect(s.paths.sequential.stats).toMatchObject({ meanMs: 32.5, samples: 4 });
  });

  it('a rerun of the same N and B keeps the history; another N starts it afresh; refusals and failures only set the red line', () => {
    let s = initialState(config, 0);
    s = reduce(s, call('sequential', 'timed', 1, 4, 8, true), 5);
    expect(s.paths.sequential.history).toEqual([8]);
    const rerun = reduce(s, { type: 'request', numModels: 2, batchSize: 1 }, 100);
    expect(rerun).toMatchObject({ phase: 'loading', startedAtMs: 100, elapsedMs: 0, agreement: undefined, speedup: undefined });
    expect(rerun.paths.sequential).toMatchObject({ history: [8], samplesMs: [], stats: undefined, timed: { done: 0, total: 4 } });
    expect(reduce(s, { type: 'request', numModels: 3, batchSize: 1 }, 100).paths.sequential.history).toEqual([]);
    const refused = reduce(rerun, { type: 'refused', error: 'N=9: too many' }, 120);
    expect(refused).toMatchObject({ phase: 'loading', error: 'N=9: too many' });
    expect(reduce(refused, { type: 'request', numModels: 2, batchSize: 8 }, 130).error).toBeUndefined();
    expect(reduce(rerun, { type: 'failed', error: 'boom' }, 150)).toMatchObject({ phase: 'error', error: 'boom', elapsedMs: 50 });
    expect(reduce(rerun, { type: 'stopped' }, 150).phase).toBe('stopped');
  });

  it('folding a real harness run (fake runners) ends where the harness did: its statistics, agreement and speedup', async () => {
    const busy = { now: 0, max: 0 };
    const paths: ServingPaths = { numModels: 2, sequential: fakeRunner('sequential', 2, 0, busy), singleDispatch: fakeRunner('single-dispatch', 2, 0, busy) };
    const events: BenchEvent[] = [];
    const result = await benchmarkModels(paths, new Float32Array(28 * 28), 1, { warmup: 1, iters: 20, chunks: dashboardChunks(20), onEvent: (e) => events.push(e) });
    const s = events.reduce((state, e, i) => reduce(state, e, i), initialState({ ...config, iters: 20 }, 0));
    expect(s.phase).toBe('done');
    for (const path of ['sequential', 'singleDispatch'] as const) {
      expect(s.paths[path].stats).toEqual(result[path]);
      expect(s.paths[path].samplesMs).toHaveLength(20);
      expect(s.paths[path].history).toHaveLength(dashboardChunks(20));
      expect(s.paths[path].timed).toEqual({ done: 20, total: 20 });
      expect(s.paths[path].predictions).toEqual([1, 2]);
    }
    expect(s.speedup).toBe(result.speedup);
    expect(s.agreement).toEqual(result.agreement);
    expect(s.elapsedMs).toBe(events.length - 1);
  });
});

// ---------------------------------------------------------------------------------------------
// The real controller and harness on fake runners

const FILE_MODELS = 3;
const DIGIT: LoadedDigit = { pixels: new Uint8Array(28 * 28), width: 28, height: 28, inverted: false, warnings: [] };

/** Calls in flight across every fake runner, and the most there ever were. */
interface Busy { now: number; max: number }

/** Model m predicts digit (m + 1) % 10 for every image; each call takes `delayMs` (0: resolves at once). */
function fakeRunner(kind: Runner['kind'], numModels: number, delayMs: number, busy: Busy): Runner {
  return {
    kind,
    numModels,
    planRuns: kind === 'sequential' ? numModels : 1,
    executorKind: 'fake',
    destroy: () => {},
    async predict(_x, B) {
      busy.max = Math.max(busy.max, ++busy.now);
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      busy.now--;
      const out = new Float32Array(numModels * B * NUM_CLASSES).fill(-10);
      for (let m = 0; m < numModels; m++) for (let b = 0; b < B; b++) out[(m * B + b) * NUM_CLASSES + ((m + 1) % 10)] = 0;
      return out;
    },
  };
}

/** Inputs and runners for the controller: a file of FILE_MODELS models, a blank image, fake runners. */
function fakeDeps(delayMs = 0) {
  const log = { runs: [] as string[], busy: { now: 0, max: 0 } };
  const deps: RunDeps = {
    loadModels: (n) => {
      if (n > FILE_MODELS) throw new InputError(`m.safetensors holds ${FILE_MODELS} models; --num-models ${n} needs a file with at least ${n}`);
      return { ...stackedModels({} as ParamSet, FILE_MODELS), fileModels: FILE_MODELS };
    },
    loadImage: () => DIGIT,
    makePaths: (_models, n): ServingPaths => {
      log.runs.push(`N=${n}`);
      return {
        numModels: n,
        sequential: fakeRunner('sequential', n, delayMs, log.busy),
        singleDispatch: fakeRunner('single-dispatch', n, delayMs, log.busy),
      };
    },
  };
  return { deps, log };
}

function controller(deps: RunDeps, over: { numModels?: number; warmup?: number; iters?: number; peers?: boolean } = {}) {
  return new BenchController({
    backend: 'fake', modelPath: 'm.safetensors', imagePath: '7.png', numModels: over.numModels ?? 2, batchSize: 1,
    warmup: over.warmup ?? 2, iters: over.iters ?? 20, deps, publishIntervalMs: 0, peers: over.peers,
  });
}

/** A peer's result as benchmarkPeers gives it, with round figures. */
function peerResult(engine: 'tfjs' | 'onnxruntime', meanMs: number): PeerResult {
  return {
    engine, version: engine === 'tfjs' ? '4.22.0' : '1.30.0', backend: engine === 'tfjs' ? 'wasm' : 'cpu', threads: 1,
    sequential: stats(2 * meanMs), stacked: stats(meanMs), agreement: { maxAbsDiff: 3e-6, tolerance: 1e-4 },
  };
}

const phaseIs = async (c: BenchController, phase: string) =>
  vi.waitFor(() => expect(c.getState().phase).toBe(phase), { timeout: 5000, interval: 2 });

describe('BenchController on fake runners', () => {
  it('with peers: they run after our paths, on our last single-dispatch output, and fill the peers table', async () => {
    const { deps } = fakeDeps();
    const asked: Array<{ n: number; B: number; ours: number }> = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    deps.runPeers = async (_models, n, _x, B, ours) => {
      asked.push({ n, B, ours: ours.length });
      await gate;
      return [peerResult('tfjs', 4), peerResult('onnxruntime', 1)];
    };
    const c = controller(deps, { peers: true });
    expect(c.getState().peers).toEqual({ running: false, results: [] });
    c.start();
    await vi.waitFor(() => expect(c.getState().peers?.running).toBe(true), { timeout: 5000, interval: 2 });
    // our run is complete by then
    expect(c.getState().phase).toBe('done');
    expect(asked).toEqual([{ n: 2, B: 1, ours: 2 * NUM_CLASSES }]);
    release();
    await vi.waitFor(() => expect(c.getState().peers?.results).toHaveLength(2), { timeout: 5000, interval: 2 });
    expect(c.getState().peers!.running).toBe(false);
    const out = frame(render(<App controller={new FakeController(c.getState())} />));
    expect(out).toMatch(/TF\.js\s+sequential 8\.00 ms \(250\.0\/s\)\s+stacked 4\.00 ms \(500\.0\/s\)/);
    expect(out).toMatch(/onnxruntime\s+sequential 2\.00 ms/);
    await c.stop();
  });

  it('without peers there is no peers table', () => {
    expect(frame(render(<App controller={new FakeController(dashState({ phase: 'done' }))} />))).not.toMatch(/peers|TF\.js/);
    expect(frame(render(<App controller={new FakeController(dashState({ phase: 'timed', peers: { running: false, results: [] } }))} />)))
      .toContain('peers   after our paths finish');
  });

  it('runs warm-up and timed calls on both paths and publishes stats, history and predictions', async () => {
    const { deps } = fakeDeps();
    const c = controller(deps);
    const seen: DashboardState[] = [];
    c.subscribe(() => seen.push(c.getState()));
    c.start();
    await phaseIs(c, 'done');
    const s = c.getState();
    expect(s).toMatchObject({ numModels: 2, batchSize: 1, fileModels: FILE_MODELS, chunks: dashboardChunks(20), error: undefined });
    for (const path of ['sequential', 'singleDispatch'] as const) {
      const v = s.paths[path];
      expect(v.warmup).toEqual({ done: 2, total: 2 });
      expect(v.timed).toEqual({ done: 20, total: 20 });
      expect(v.stats?.samples).toBe(20);
      expect(v.stats!.modelEvaluationsPerSecond).toBeCloseTo(2 * v.stats!.requestsPerSecond, 6);
      expect(v.history).toHaveLength(dashboardChunks(20));
      expect(v.predictions).toEqual([1, 2]);
    }
    expect(s.paths.sequential.planRunsPerRequest).toBe(2);
    expect(s.speedup).toBeGreaterThan(0);
    expect(s.agreement).toMatchObject({ samePredictions: true, maxAbsDiff: 0 });
    // progress was published along the way, in order
    const phases = seen.map((x) => x.phase);
    expect(phases).toContain('compiling');
    expect(phases.indexOf('compiling')).toBeLessThan(phases.lastIndexOf('done'));
    const timedDone = seen.map((x) => x.paths.sequential.timed.done);
    expect(timedDone).toEqual([...timedDone].sort((a, b) => a - b));
  });

  it('N is bounded by a stacked file: beyond it an error line, and the current N goes on', async () => {
    const { deps, log } = fakeDeps();
    const c = controller(deps, { numModels: 3 });
    c.start();
    await phaseIs(c, 'done');
    c.changeModels(1);
    expect(c.getState()).toMatchObject({ numModels: 3, phase: 'done' });
    expect(c.getState().error).toMatch(/^N=4: m\.safetensors holds 3 models/);
    expect(log.runs).toEqual(['N=3']);
    c.changeModels(-1);
    expect(c.getState().error).toBeUndefined();
    await phaseIs(c, 'done');
    expect(c.getState().numModels).toBe(2);
    expect(c.getState().paths.singleDispatch.predictions).toEqual([1, 2]);
    c.changeModels(-5); // below 1: ignored
    expect(c.getState().numModels).toBe(2);
  });

  it('a change mid-run aborts it; runs never overlap; the latest request wins', async () => {
    const { deps, log } = fakeDeps(2);
    const c = controller(deps, { iters: 200, warmup: 0 });
    c.start();
    await vi.waitFor(() => expect(c.getState().paths.sequential.timed.done).toBeGreaterThan(5), { timeout: 5000, interval: 2 });
    c.cycleBatchSize(); // B 1 → 8
    c.cycleBatchSize(); // B 8 → 64, before the B=8 run could start
    expect(c.getState()).toMatchObject({ batchSize: 64, phase: 'loading' });
    await vi.waitFor(() => expect(c.getState().phase).toBe('timed'), { timeout: 5000, interval: 2 });
    // the first run was abandoned; the B=8 request was superseded before it started
    expect(log.runs).toEqual(['N=2', 'N=2']);
    expect(log.busy.max).toBe(1);
    await c.stop();
    expect(c.getState().phase).toBe('stopped');
    const done = c.getState().paths.sequential.timed.done;
    expect(done).toBeLessThan(200);
    // nothing runs after stop
    c.rerun();
    await tick(30);
    expect(log.runs).toHaveLength(2);
    expect(c.getState().paths.sequential.timed.done).toBe(done);
  });

  it('a failing run shows its error; a rerun with the same N and B keeps the history', async () => {
    const { deps } = fakeDeps();
    let fail = false;
    const failing: RunDeps = { ...deps, loadImage: () => { if (fail) throw new InputError('7.png: file not found'); return DIGIT; } };
    const c = controller(failing, { iters: 10 });
    c.start();
    await phaseIs(c, 'done');
    expect(c.getState().paths.sequential.history).toHaveLength(10);
    fail = true;
    c.rerun();
    await phaseIs(c, 'error');
    expect(c.getState().error).toBe('7.png: file not found');
    fail = false;
    c.rerun();
    await phaseIs(c, 'done');
    expect(c.getState().error).toBeUndefined();
    expect(c.getState().paths.sequential.history).toHaveLength(20);
    expect(HISTORY_LENGTH).toBeGreaterThanOrEqual(20);
  });
});

describe('App on the real controller', () => {
  it('+ reruns with one more model; q exits after stopping the run', async () => {
    const { deps, log } = fakeDeps();
    const c = controller(deps, { numModels: 1, iters: 10 });
    const r = render(<App controller={c} />);
    c.start();
    await phaseIs(c, 'done');
    await tick(50);
    expect(frame(r)).toContain('N=1 model  B=1 image per request');
    expect(frame(r)).toMatch(/digits +1 /);
    r.stdin.write('+');
    await phaseIs(c, 'done');
    await tick(50);
    expect(frame(r)).toContain('N=2 models  B=1');
    expect(frame(r)).toMatch(/digits +1 2 /);
    expect(frame(r)).toMatch(/timed +█+ 10\/10/);
    expect(log.runs).toEqual(['N=1', 'N=2']);
    r.stdin.write('q');
    await vi.waitFor(() => expect(r.stdin.listenerCount('readable')).toBe(0), { timeout: 2000, interval: 5 });
    r.stdin.write('+');
    await tick();
    expect(log.runs).toEqual(['N=1', 'N=2']);
  });
});
