/**
 * `mnist-gpujs serve`: loads the models, builds and warms every batch bucket's plan, then listens (the server
 * itself is src/serve/). Prints the URL on one line of stdout, so a script can read it; on a terminal a live
 * status line (requests/s, p50/p99, queue depth, mean batch) on stderr, else one plain line per request there;
 * `--json-log`: one JSON line per request on stdout instead.
 *
 * SIGTERM or SIGINT: stop accepting, finish the queued and running requests (up to --exit-timeout-s), exit 0; a
 * second signal exits 130 at once.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { openDevice } from '../device.ts';
import { SequentialRunner, SingleDispatchRunner, type Runner } from '../../engine/runners.ts';
import type { Device } from '../../engine/device-node.ts';
import { InputError } from '../../errors.ts';
import { EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK } from '../../exit-codes.ts';
import { ms, plural } from '../../format.ts';
import { loadServedModels } from '../../io/model-file.ts';
import { percentile } from '../../bench/harness.ts';
import { Batcher } from '../../serve/batcher.ts';
import { ServerMetrics } from '../../serve/metrics.ts';
import { buildServer, buildWebServer, drainAndClose, type RequestLogEntry } from '../../serve/server.ts';
import { findWebAssets } from '../../serve/web-assets.ts';
import { PACKAGE_ROOT, type CliIO, type ServeOptions } from '../options.ts';

export type { ServeOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** A started server: its URL, and how to stop it. */
export interface RunningServer {
  url: string;
  app: FastifyInstance;
  /** undefined on a server that computes nothing (--web-only) */
  batcher: Batcher | undefined;
  /** stops accepting, answers what is queued and running, frees the device */
  close(): Promise<void>;
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(resolve(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

/** Requests of the last few seconds, for the status line. */
class RecentRequests {
  private readonly entries: Array<{ at: number; ms: number }> = [];
  constructor(private readonly windowMs = 5000) {}

  add(latencyMs: number): void {
    this.entries.push({ at: performance.now(), ms: latencyMs });
  }

  summary(): { perSecond: number; p50: number | undefined; p99: number | undefined } {
    const since = performance.now() - this.windowMs;
    while (this.entries.length > 0 && this.entries[0]!.at < since) this.entries.shift();
    const sorted = this.entries.map((e) => e.ms).sort((a, b) => a - b);
    return {
      perSecond: sorted.length / (this.windowMs / 1000),
      p50: sorted.length > 0 ? percentile(sorted, 50) : undefined,
      p99: sorted.length > 0 ? percentile(sorted, 99) : undefined,
    };
  }
}

/** One log line; control characters a client put in its URL are escaped, so it cannot forge lines. */
function plainLine(e: RequestLogEntry): string {
  const parts = [`${e.method} ${e.url} ${e.status} ${ms(e.ms)} ms`];
  if (e.computeMs !== undefined) parts.push(`(queue ${ms(e.queueMs ?? 0)}, compute ${ms(e.computeMs)} ms, batch of ${e.batchImages})`);
  const line = parts.join(' ') + (e.error ? `: ${e.error}` : '');
  return line.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Listens where the options say; a port in use or an address not of this machine is one line, not a trace. */
async function listen(app: FastifyInstance, opts: Pick<ServeOptions, 'host' | 'port'>): Promise<string> {
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new InputError(`--port ${opts.port}: ${opts.host}:${opts.port} is already in use`);
    if (code === 'EACCES') throw new InputError(`--port ${opts.port}: not allowed to listen on ${opts.host}:${opts.port}`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new InputError(`--host ${opts.host}: not an address of this machine`);
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return `http://${host}:${port}`;
}

/** The line a request's log gets: JSON with --json-log, else plain on stderr when no status line is drawn. */
function requestLogger(opts: ServeOptions, io: CliIO, tty: boolean, recent?: RecentRequests) {
  return (e: RequestLogEntry) => {
    if (e.computeMs !== undefined) recent?.add(e.ms);
    if (opts.jsonLog) io.stdout.write(JSON.stringify(e) + '\n');
    else if (!tty) io.stderr.write(plainLine(e) + '\n');
  };
}

/**
 * `mnist-gpujs web` (`serve --web-only`): the page, its bundle and the shipped model files, and no engine: the
 * visitor's browser computes. Nothing is loaded or compiled here.
 */
async function startWebServer(opts: ServeOptions, io: CliIO): Promise<RunningServer> {
  const web = findWebAssets(PACKAGE_ROOT);
  if (!web.bundle) throw new InputError('web/dist/mnist-gpujs.js is not built, and the page computes only in the browser here: run `npm run build:web` first');
  const app = await buildWebServer({ bodyLimitBytes: opts.bodyLimitBytes, version: packageVersion(), web, onRequestLog: requestLogger(opts, io, false) });
  const url = await listen(app, opts);
  if (opts.jsonLog) io.stdout.write(JSON.stringify({ event: 'listening', url, webOnly: true }) + '\n');
  else io.stdout.write(`Serving the page on ${url} (computing in the visitor's browser only)\n`);
  let closed: Promise<void> | undefined;
  return { url, app, batcher: undefined, close: () => closed ??= app.close() };
}

/** Loads, warms and listens; the caller owns the process's signals. */
export async function startServer(opts: ServeOptions, io: CliIO = processIO): Promise<RunningServer> {
  if (opts.webOnly) return startWebServer(opts, io);
  const served = loadServedModels(opts.modelPath, opts.numModels);
  if (served.note) io.stderr.write(`mnist-gpujs: note: ${served.note}\n`);
  const N = opts.numModels;
  const device: Device = await openDevice(opts.backend, io);
  let runner: Runner | undefined;
  try {
    runner = opts.path === 'single' ? new SingleDispatchRunner(device, served, N) : new SequentialRunner(device, served, N);
    const engineRunner = runner;
    let metrics: ServerMetrics | undefined;
    const batcher = new Batcher({
      maxBatchSize: opts.maxBatchSize, maxBatchDelayMs: opts.maxBatchDelayMs, buckets: opts.batchBuckets,
      queueSize: opts.queueSize, queueTimeoutMs: opts.queueTimeoutMs,
    }, N, (x, B) => engineRunner.predict(x, B), {
      onBatch: (b) => metrics?.batch(b.images),
      onReject: (reason) => metrics?.reject(reason),
    });
    const tty = io.stderr.isTTY === true && !opts.jsonLog;
    if (tty) io.stderr.write(`mnist-gpujs: building and warming plans for batch sizes ${batcher.buckets.join(', ')}…\n`);
    await batcher.warm();
    metrics = new ServerMetrics(
      { backend: device.backend, adapter: device.adapterLabel ?? '', executorKind: runner.executorKind, numModels: N, path: opts.path, planRunsPerBatch: runner.planRuns },
      { queueDepth: () => batcher.pending, inFlight: () => (batcher.busy ? 1 : 0) },
    );
    let closing = false;
    const recent = new RecentRequests();
    const app = await buildServer({
      numModels: N, batcher, metrics, ready: () => !closing, modelPath: opts.modelPath, backend: device.backend,
      adapter: device.adapterLabel, executorKind: () => engineRunner.executorKind, path: opts.path,
      maxBatchSize: opts.maxBatchSize, maxBatchDelayMs: opts.maxBatchDelayMs,
    }, {
      bodyLimitBytes: opts.bodyLimitBytes,
      version: packageVersion(),
      web: findWebAssets(PACKAGE_ROOT),
      onRequestLog: requestLogger(opts, io, tty, recent),
    });
    const url = await listen(app, opts);
    const what = `${plural(N, 'model')} (${served.fileModels === 1 && N > 1 ? 'one model replicated' : 'from the file'}), `
      + `${opts.path === 'single' ? 'single dispatch' : 'sequential'}, backend ${device.description} (${runner.executorKind})`;
    if (opts.jsonLog) io.stdout.write(JSON.stringify({ event: 'listening', url, numModels: N, path: opts.path, backend: device.backend, adapter: device.adapterLabel }) + '\n');
    else io.stdout.write(`Serving ${what} on ${url}\n`);

    const status = tty ? setInterval(() => {
      const r = recent.summary();
      io.stderr.write(`\r\x1b[2K${r.perSecond.toFixed(1)} req/s  p50 ${r.p50 === undefined ? '–' : ms(r.p50)} ms  p99 ${r.p99 === undefined ? '–' : ms(r.p99)} ms`
        + `  queue ${batcher.pending}  mean batch ${metrics!.meanBatchImages().toFixed(2)}`);
    }, 1000) : undefined;
    status?.unref();

    let closed: Promise<void> | undefined;
    return {
      url, app, batcher,
      close: () => closed ??= (async () => {
        clearInterval(status);
        if (tty) io.stderr.write('\r\x1b[2K');
        try {
          await drainAndClose(app, batcher, () => { closing = true; });
        } finally {
          engineRunner.destroy();
          device.destroy();
        }
      })(),
    };
  } catch (err) {
    runner?.destroy();
    device.destroy();
    throw err;
  }
}

/** Runs until SIGTERM or SIGINT, then shuts down gracefully; returns the exit code. */
export async function run(opts: ServeOptions, io: CliIO = processIO): Promise<number> {
  const server = await startServer(opts, io);
  return new Promise<number>((resolveExit) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++signals > 1) process.exit(EXIT_INTERRUPTED);
      const work = server.batcher ? `finishing ${plural(server.batcher.pending, 'queued request')} and the running batch` : 'closing';
      io.stderr.write(`mnist-gpujs: ${signal}: ${work}, then exiting (a second signal exits at once)\n`);
      const timer = setTimeout(() => {
        io.stderr.write(`mnist-gpujs: --exit-timeout-s ${opts.exitTimeoutS} passed with requests unfinished; exiting\n`);
        // what is unfinished would keep the process alive
        process.exit(EXIT_FAILURE);
      }, opts.exitTimeoutS * 1000);
      server.close().then(() => {
        clearTimeout(timer);
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        resolveExit(EXIT_OK);
      }, (err) => {
        clearTimeout(timer);
        io.stderr.write(`mnist-gpujs: shutting down failed: ${err instanceof Error ? err.message : String(err)}\n`);
        resolveExit(EXIT_FAILURE);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}
