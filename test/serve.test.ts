/**
 * `mnist-gpujs serve`: every endpoint and error status through fastify's inject() and through a real socket, on
 * the real engine (the shipped ensemble of 4 models) and on a fake, stallable engine for the queue's behaviour;
 * the CLI as a child process for SIGTERM and a port in use.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/main.ts';
import { startServer, type RunningServer } from '../src/cli/commands/serve.ts';
import type { ServeOptions } from '../src/cli/options.ts';
import { resolveBackend } from '../src/engine/device-node.ts';
import { decodeDigitPng } from '../src/io/png.ts';
import { NUM_CLASSES } from '../src/model/cnn.ts';
import { Batcher } from '../src/serve/batcher.ts';
import { ServerMetrics } from '../src/serve/metrics.ts';
import { buildServer, drainAndClose } from '../src/serve/server.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENSEMBLE = join(ROOT, 'fixtures/mnist_ensemble4.safetensors');
const digitPng = (d: number) => readFileSync(join(ROOT, `fixtures/${d}.png`));
const BACKEND = await resolveBackend('auto');
const SLOW = 120_000;

function options(over: Partial<ServeOptions> = {}): ServeOptions {
  return {
    numModels: 4, modelPath: ENSEMBLE, backend: BACKEND, host: '127.0.0.1', port: 0, path: 'single',
    maxBatchSize: 16, maxBatchDelayMs: 0, batchBuckets: [1, 2, 4, 8, 16], queueSize: 100, queueTimeoutMs: 5000,
    bodyLimitBytes: 1024 ** 2, exitTimeoutS: 30, jsonLog: false, webOnly: false, ...over,
  };
}

const quiet = { stdout: { write: () => true }, stderr: { write: () => true } };

interface Prediction { prediction: number; probabilities: number[] }
interface EnsembleAnswer extends Prediction { models: Prediction[]; agreement: number }

/** A multipart/form-data body with one file field. */
function multipartBody(field: string, file: Buffer): { body: Buffer; type: string } {
  const boundary = '----mnist-gpujs-test';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="digit.png"\r\nContent-Type: image/png\r\n\r\n`;
  return { body: Buffer.concat([Buffer.from(head), file, Buffer.from(`\r\n--${boundary}--\r\n`)]), type: `multipart/form-data; boundary=${boundary}` };
}

/** A PNG whose header claims `width` x `height` pixels, followed by nothing sensible. */
function claimedPng(width: number, height: number): Buffer {
  const png = Buffer.from(digitPng(0));
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  return png;
}

function maxAbsDiff(a: readonly number[], b: readonly number[]): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

describe('serve on the shipped ensemble', () => {
  let server: RunningServer;
  beforeAll(async () => {
    // a short delay, so that concurrent requests over a real socket reliably share plan runs
    server = await startServer(options({ maxBatchDelayMs: 20 }), quiet);
  }, SLOW);
  afterAll(async () => { await server?.close(); });

  const inject = (o: InjectOptions) => server.app.inject(o);

  it('health, description and metadata endpoints', async () => {
    expect((await inject({ url: '/ping' })).json()).toEqual({ status: 'Healthy' });
    const models = (await inject({ url: '/models' })).json();
    expect(models.models.map((m: { modelName: string }) => m.modelName)).toEqual(['model0', 'model1', 'model2', 'model3', 'ensemble']);
    const [d] = (await inject({ url: '/models/model2' })).json();
    expect(d).toMatchObject({ modelName: 'model2', batchSize: 16, maxBatchDelay: 20, backend: BACKEND, path: 'single', jobQueueStatus: { remainingCapacity: 100, pendingRequests: 0 } });
    expect((await inject({ url: '/v2' })).json()).toMatchObject({ name: 'mnist-gpujs', extensions: [] });
    expect((await inject({ url: '/v2/health/live' })).statusCode).toBe(200);
    expect((await inject({ url: '/v2/health/ready' })).statusCode).toBe(200);
    expect((await inject({ url: '/v2/models/ensemble/ready' })).statusCode).toBe(200);
    const meta = (await inject({ url: '/v2/models/model0' })).json();
    expect(meta.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }]);
    expect(meta.outputs.map((o: { name: string }) => o.name)).toEqual(['probabilities', 'prediction']);
    const page = await inject({ url: '/' });
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('<canvas id="pad"');
    expect(page.body).not.toMatch(/(src|href)="https?:/);
  });

  it('a prediction as a raw body (PUT, POST), as multipart field "data", and as text/plain', async () => {
    const put = await inject({ method: 'PUT', url: '/predictions/ensemble', payload: digitPng(7) });
    expect(put.statusCode).toBe(200);
    const answer = put.json() as EnsembleAnswer;
    expect(answer.prediction).toBe(7);
    expect(answer.models).toHaveLength(4);
    expect(answer.agreement).toBe(4);
    expect(answer.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    const post = await inject({ method: 'POST', url: '/predictions/model1', payload: digitPng(3), headers: { 'content-type': 'image/png' } });
    // no content type at all (what curl -T sends) reads the body as the PNG too
    expect((await inject({ method: 'POST', url: '/predictions/model1', payload: digitPng(3) })).json()).toEqual(post.json());
    expect(Object.keys(post.json()).sort()).toEqual(['prediction', 'probabilities']);
    expect(post.json().prediction).toBe(3);
    const form = multipartBody('data', digitPng(4));
    const multi = await inject({ method: 'POST', url: '/predictions/model0', payload: form.body, headers: { 'content-type': form.type } });
    expect(multi.json().prediction).toBe(4);
    const text = await inject({ method: 'PUT', url: '/predictions/model2', payload: digitPng(9), headers: { accept: 'text/plain' } });
    expect(text.headers['content-type']).toMatch(/^text\/plain/);
    expect(text.body).toBe('9');
  });

  it('fixtures 0–9 sent concurrently over a socket each get their own answer, batched equal to unbatched within 1e-5', async () => {
    const ask = async (d: number) => {
      const res = await fetch(`${server.url}/predictions/ensemble`, { method: 'POST', body: digitPng(d), headers: { 'content-type': 'image/png' } });
      expect(res.status).toBe(200);
      return (await res.json()) as EnsembleAnswer;
    };
    const alone: EnsembleAnswer[] = [];
    for (let d = 0; d < 10; d++) alone.push(await ask(d));
    const before = await meanBatch(server.url);
    const together = await Promise.all(Array.from({ length: 10 }, (_, d) => ask(d)));
    together.forEach((t, d) => {
      expect(t.prediction).toBe(d);
      expect(maxAbsDiff(t.probabilities, alone[d]!.probabilities)).toBeLessThanOrEqual(1e-5);
      t.models.forEach((m, i) => expect(maxAbsDiff(m.probabilities, alone[d]!.models[i]!.probabilities)).toBeLessThanOrEqual(1e-5));
    });
    // they really were folded into shared plan runs
    const after = await meanBatch(server.url);
    expect(after.count - before.count).toBeLessThan(10);
  }, SLOW);

  it('v2 infer: FP32 pixels 0..1 give what the PNG gives; BYTES takes a batch of base64 PNGs', async () => {
    const digit = decodeDigitPng(digitPng(2), '2.png');
    const data = Array.from(digit.pixels, (p) => p / 255);
    const fp32 = await inject({
      method: 'POST', url: '/v2/models/model1/infer',
      payload: { id: 'r1', inputs: [{ name: 'x', shape: [1, 1, 28, 28], datatype: 'FP32', data }] },
    });
    expect(fp32.statusCode).toBe(200);
    const body = fp32.json();
    expect(body).toMatchObject({ model_name: 'model1', id: 'r1' });
    expect(body.outputs[1]).toEqual({ name: 'prediction', datatype: 'INT64', shape: [1], data: [2] });
    const png = (await inject({ method: 'PUT', url: '/predictions/model1', payload: digitPng(2) })).json() as Prediction;
    expect(maxAbsDiff(body.outputs[0].data, png.probabilities)).toBeLessThanOrEqual(1e-6);

    const b64 = [5, 6, 8].map((d) => digitPng(d).toString('base64'));
    const bytes = await inject({ method: 'POST', url: '/v2/models/ensemble/infer', payload: { inputs: [{ name: 'png', shape: [3], datatype: 'BYTES', data: b64 }] } });
    const out = bytes.json().outputs;
    expect(out[0].shape).toEqual([3, NUM_CLASSES]);
    expect(out[0].data).toHaveLength(3 * NUM_CLASSES);
    expect(out[1].data).toEqual([5, 6, 8]);
    expect(typeof bytes.json().id).toBe('string');
  });

  it('bad requests get one JSON error with the right status, and the server keeps serving', async () => {
    const bigForm = multipartBody('data', Buffer.alloc(1024 ** 2 + 10));
    const cases: Array<[InjectOptions, number, RegExp]> = [
      [{ method: 'PUT', url: '/predictions/model0', payload: Buffer.from('not a png') }, 400, /not a PNG/],
      [{ method: 'PUT', url: '/predictions/model0', payload: digitPng(1).subarray(0, 60) }, 400, /PNG/],
      [{ method: 'PUT', url: '/predictions/model0', payload: claimedPng(100_000, 100_000) }, 400, /megapixel limit/],
      [{ method: 'PUT', url: '/predictions/model0', payload: claimedPng(3000, 3000) }, 400, /megapixel limit/],
      [{ method: 'POST', url: '/predictions/model0', payload: 'hello', headers: { 'content-type': 'text/plain' } }, 415, /unsupported content type text\/plain/],
      [{ method: 'PUT', url: '/predictions/model9', payload: digitPng(1) }, 404, /no model named "model9".*model0, model1, model2, model3, ensemble/],
      [{ method: 'GET', url: '/predictions/model0' }, 405, /GET is not allowed/],
      [{ method: 'GET', url: '/no/such/thing' }, 404, /no such endpoint/],
      [{ method: 'PUT', url: '/predictions/model0', payload: Buffer.alloc(1024 ** 2 + 1) }, 413, /larger than the server's limit/],
      // multipart is streamed past fastify's bodyLimit: a declared length over the limit is refused before reading
      [{ method: 'PUT', url: '/predictions/model0', payload: bigForm.body, headers: { 'content-type': bigForm.type } }, 413, /larger than the server's limit/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: '{"inputs": [', headers: { 'content-type': 'application/json' } }, 400, /JSON/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: digitPng(1), headers: { 'content-type': 'image/png' } }, 415, /application\/json/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [{ name: 'x', shape: [1, 1, 28, 27], datatype: 'FP32', data: [] }] } }, 400, /shape must be \[B, 1, 28, 28\]/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [{ name: 'x', shape: [1, 1, 28, 28], datatype: 'FP32', data: [0.5] }] } }, 400, /holds 1 values.*needs 784/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [{ name: 'x', shape: [1, 1, 28, 28], datatype: 'FP32', data: new Array(784).fill(2) }] } }, 400, /in 0\.\.1/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', data: ['%%%'] }] } }, 400, /not base64/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [{ name: 'x', shape: [1], datatype: 'INT8', data: [1] }] } }, 400, /datatype must be/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [] } }, 400, /exactly one input/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: `{"inputs":[{"name":"x","shape":[1,1,28,28],"datatype":"FP32","data":${'['.repeat(100_000)}0${']'.repeat(100_000)}}]}`, headers: { 'content-type': 'application/json' } }, 400, /FP32 pixels must be numbers|holds/],
      [{ method: 'POST', url: '/v2/models/model0/infer', payload: { inputs: [{ name: 'x', shape: [17], datatype: 'BYTES', data: new Array(17).fill(digitPng(1).toString('base64')) }] } }, 400, /at most 16 images/],
    ];
    for (const [request, status, message] of cases) {
      const res = await inject(request);
      expect(res.statusCode, `${request.method} ${request.url}: ${res.body}`).toBe(status);
      expect(res.json().error, `${request.method} ${request.url}`).toMatch(message);
    }
    expect((await inject({ method: 'PUT', url: '/predictions/model0', payload: digitPng(1) })).json().prediction).toBe(1);
  });

  it('/metrics: requests by endpoint, model and status; durations by phase; batch sizes; the info metric', async () => {
    const text = (await inject({ url: '/metrics' })).body;
    expect(text).toMatch(/mnist_gpujs_requests_total\{endpoint="\/predictions\/:model",model="ensemble",status="200"\} \d+/);
    // a name the server does not serve is no label (clients could grow the metrics without bound)
    expect(text).toMatch(/mnist_gpujs_requests_total\{endpoint="\/predictions\/:model",model="",status="404"\} \d+/);
    expect(text).not.toContain('model9');
    for (const phase of ['queue', 'decode', 'compute']) expect(text).toContain(`mnist_gpujs_request_duration_seconds_bucket{le="0.0005",phase="${phase}"}`);
    expect(text).toMatch(/mnist_gpujs_batch_images_count \d+/);
    expect(text).toMatch(/mnist_gpujs_plan_runs_total \d+/);
    expect(text).toContain('# TYPE mnist_gpujs_rejections_total counter');
    expect(text).toMatch(new RegExp(`mnist_gpujs_info\\{backend="${BACKEND}",adapter="",executor_kind="[a-z-]+",num_models="4",path="single"\\} 1`));
    expect(text).toContain('mnist_gpujs_queue_depth 0');
    expect(text).toContain('process_resident_memory_bytes');
  });
});

/** The batch-size histogram's count and mean, read from /metrics. */
async function meanBatch(url: string): Promise<{ count: number; mean: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const count = Number(/^mnist_gpujs_batch_images_count (\d+)/m.exec(text)![1]);
  const sum = Number(/^mnist_gpujs_batch_images_sum ([\d.]+)/m.exec(text)![1]);
  return { count, mean: count > 0 ? sum / count : 0 };
}

// ---------------------------------------------------------------------------------------------
// A fake engine the test can stall and fail

async function fakeServer(config: Partial<ConstructorParameters<typeof Batcher>[0]> = {}) {
  let gate: Promise<void> | undefined;
  let open: () => void = () => {};
  let fail = false;
  const runs: number[] = [];
  const run = async (_x: Float32Array, B: number) => {
    runs.push(B);
    if (gate) await gate;
    if (fail) { fail = false; throw new Error('device lost'); }
    return new Float32Array(2 * B * NUM_CLASSES).fill(Math.log(0.1));
  };
  let closing = false;
  const batcher = new Batcher({ maxBatchSize: 4, maxBatchDelayMs: 0, buckets: [1, 2, 4], queueSize: 2, queueTimeoutMs: 5000, ...config }, 2, run);
  const metrics = new ServerMetrics({ backend: 'fake', adapter: '', executorKind: 'fake', numModels: 2, path: 'single', planRunsPerBatch: 1 },
    { queueDepth: () => batcher.pending, inFlight: () => (batcher.busy ? 1 : 0) });
  const app = await buildServer({
    numModels: 2, batcher, metrics, ready: () => !closing, modelPath: 'fake.safetensors', backend: 'fake', adapter: null,
    executorKind: () => 'fake', path: 'single', maxBatchSize: 4, maxBatchDelayMs: 0,
  }, { bodyLimitBytes: 1024 ** 2, version: 'test' });
  return {
    app, batcher, runs,
    stall() { gate = new Promise((resolve) => { open = resolve; }); },
    release() { gate = undefined; open(); },
    failNext() { fail = true; },
    drain: () => drainAndClose(app, batcher, () => { closing = true; }),
  };
}

const predictOn = (app: Awaited<ReturnType<typeof fakeServer>>['app']) =>
  app.inject({ method: 'PUT', url: '/predictions/model0', payload: digitPng(1) });

describe('serve on a stalled or failing engine', () => {
  it('a full queue accepts exactly --queue-size; the next gets 503 "queue full" with Retry-After', async () => {
    const s = await fakeServer();
    s.stall();
    const running = predictOn(s.app);
    await vi.waitFor(() => expect(s.runs).toHaveLength(1));
    const queued = [predictOn(s.app), predictOn(s.app)];
    await vi.waitFor(() => expect(s.batcher!.pending).toBe(2));
    const full = await predictOn(s.app);
    expect(full.statusCode).toBe(503);
    expect(full.headers['retry-after']).toBe('1');
    expect(full.json().error).toMatch(/^queue full/);
    const described = (await s.app.inject({ url: '/models/model0' })).json()[0];
    expect(described.jobQueueStatus).toEqual({ remainingCapacity: 0, pendingRequests: 2 });
    s.release();
    for (const r of await Promise.all([running, ...queued])) expect(r.statusCode).toBe(200);
    await s.app.close();
  });

  it('a request past --queue-timeout-ms gets 503 and is never run', async () => {
    const s = await fakeServer({ queueTimeoutMs: 50 });
    s.stall();
    const running = predictOn(s.app);
    await vi.waitFor(() => expect(s.runs).toHaveLength(1));
    const late = await predictOn(s.app);
    expect(late.statusCode).toBe(503);
    expect(late.json().error).toMatch(/timed out after 50 ms/);
    s.release();
    expect((await running).statusCode).toBe(200);
    expect(s.runs).toEqual([1]);
    await s.app.close();
  });

  it('an engine failure answers its batch 500; the next batch is 200', async () => {
    const s = await fakeServer();
    s.failNext();
    const failed = await predictOn(s.app);
    expect(failed.statusCode).toBe(500);
    expect(failed.json().error).toMatch(/engine failed on this batch: device lost/);
    expect((await predictOn(s.app)).statusCode).toBe(200);
    await s.app.close();
  });

  it('a client that disconnects while queued frees its slot (real socket)', async () => {
    const s = await fakeServer();
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(s.app.server.address() as { port: number }).port}`;
    s.stall();
    const send = (signal?: AbortSignal) => fetch(`${url}/predictions/model0`, { method: 'PUT', body: digitPng(1), signal });
    const running = send();
    await vi.waitFor(() => expect(s.runs).toHaveLength(1));
    const abort = new AbortController();
    const leaving = send(abort.signal).catch((e: unknown) => e);
    await vi.waitFor(() => expect(s.batcher!.pending).toBe(1));
    abort.abort();
    expect(await leaving).toBeInstanceOf(Error);
    await vi.waitFor(() => expect(s.batcher!.pending).toBe(0));
    s.release();
    expect((await running).status).toBe(200);
    expect(s.runs).toEqual([1]);
    await s.app.close();
  });

  it('shutting down: /ping turns Unhealthy and new requests get 503 while the queued ones finish', async () => {
    const s = await fakeServer();
    s.stall();
    const running = predictOn(s.app);
    await vi.waitFor(() => expect(s.runs).toHaveLength(1));
    const queued = predictOn(s.app);
    await vi.waitFor(() => expect(s.batcher!.pending).toBe(1));
    const drained = s.drain();
    expect((await s.app.inject({ url: '/ping' })).statusCode).toBe(503);
    const refused = await predictOn(s.app);
    expect(refused.statusCode).toBe(503);
    expect(refused.json().error).toMatch(/shutting down/);
    s.release();
    expect((await running).statusCode).toBe(200);
    expect((await queued).statusCode).toBe(200);
    await drained;
  });
});

// ---------------------------------------------------------------------------------------------
// The command as a user runs it

const BIN = join(ROOT, 'src/cli/bin.js');

describe('the serve command', () => {
  it('prints its URL; SIGTERM with requests queued: they complete, exit 0', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--backend', BACKEND, '--max-batch-delay-ms', '10000', '--queue-timeout-ms', '30000', '--json-log'],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b; });
    child.stderr.on('data', (b: Buffer) => { err += b; });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await vi.waitFor(() => expect(out).toContain('"event":"listening"'), { timeout: 60_000, interval: 50 });
      const { url } = JSON.parse(out.split('\n')[0]!) as { url: string };
      const asks = [3, 5, 8].map((d) => fetch(`${url}/predictions/ensemble`, { method: 'PUT', body: digitPng(d) }));
      // the batching delay holds them in the queue until all three wait there
      await vi.waitFor(async () => {
        const [d] = (await (await fetch(`${url}/models/ensemble`)).json()) as Array<{ jobQueueStatus: { pendingRequests: number } }>;
        expect(d!.jobQueueStatus.pendingRequests).toBe(3);
      }, { timeout: 20_000, interval: 50 });
      expect(out).not.toContain('/predictions/');
      child.kill('SIGTERM');
      const answers = await Promise.all(asks);
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(await Promise.all(answers.map(async (r) => ((await r.json()) as Prediction).prediction))).toEqual([3, 5, 8]);
      expect(await exited).toBe(0);
      expect(err).toMatch(/SIGTERM: finishing 3 queued requests/);
      const logged = out.trim().split('\n').slice(1).map((l) => JSON.parse(l) as { url: string; status: number; batchImages: number });
      const answered = logged.filter((l) => l.url === '/predictions/ensemble');
      expect(answered.map((l) => [l.status, l.batchImages])).toEqual(Array(3).fill([200, 3]));
    } finally {
      child.kill('SIGKILL');
    }
  }, SLOW);

  it('a port in use is one line and exit 1; bad flags are exit 2', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    let err = '';
    try {
      const code = await main(['node', 'mnist-gpujs', 'serve', '--port', String(port), '--backend', BACKEND, '--num-models', '1', '--batch-buckets', '1', '--max-batch-size', '1'],
        { stdout: { write: () => true }, stderr: { write: (s: string) => { err += s; } }, cwd: ROOT, env: {} });
      expect(code).toBe(1);
      expect(err).toBe(`mnist-gpujs: --port ${port}: 127.0.0.1:${port} is already in use\n`);
    } finally {
      blocker.close();
    }
    for (const flags of [['--port', '70000'], ['--path', 'both'], ['--body-limit', '10zb'], ['--max-batch-size', '0'], ['--batch-buckets', '1,1']]) {
      let e = '';
      const code = await main(['node', 'mnist-gpujs', 'serve', ...flags], { stdout: { write: () => true }, stderr: { write: (s: string) => { e += s; } }, cwd: ROOT, env: {} });
      expect(code, flags.join(' ')).toBe(2);
      expect(e.trim().split('\n'), flags.join(' ')).toHaveLength(1);
    }
  }, SLOW);
});

