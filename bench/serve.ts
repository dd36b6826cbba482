/**
 * `npm run bench:serve`: the HTTP server under load. For each path (single, sequential) and N, starts
 * `mnist-gpujs serve` as a child process on a free loopback port, with batching on (--max-batch-size 16) and off
 * (--max-batch-size 1), and drives it with autocannon (loopback only, each cell bounded in time and requests) at
 * each concurrency: PUT /predictions/ensemble with fixtures/1.png, one image per request.
 *
 * Per cell: requests/s, model evaluations/s (N per request), p50/p90/p95/p99 from every response's own time
 * (autocannon reports no p95), errors, non-2xx, and the mean images per plan run read from the server's /metrics.
 * Beside them, the in-process `bench` p50 of the same path and N (`--iters` calls, no HTTP). `--soak 10000` adds
 * the server's resident memory after 1,000 requests and after the given count.
 *
 * On a 2-core machine autocannon competes with the server for the CPU. `--server-cpus 1 --client-cpus 0` (Linux's
 * taskset) keeps them apart: the server, and the in-process `bench` it is compared with, run on the server's CPUs
 * only, autocannon on the client's.
 *
 * `--overhead-rounds R` measures only what HTTP adds at concurrency 1, as differences taken close together: per N,
 * one server per path (batching on), then R rounds of the in-process `bench` p50 (both paths) followed at once by
 * autocannon's p50 at concurrency 1 on each path's server (`--duration` seconds), and the median of the R
 * differences. A shared host drifts by more
 * than a millisecond between one table's in-process column and its cells; within a round it has less time to.
 * Each round also measures the floor: a bare fastify server (bench/http-floor-server.ts) that holds each request
 * as long as the in-process p50, its p50 at concurrency 1 minus that hold: what the round trip alone costs here
 * around a handler that long, before any decoding, queueing or engine. And each round sets the HTTP p50 against the
 * p50 of the very plan runs that answered those requests (each request's `computeMs` in the server's `--json-log`;
 * the server writes a line after its answer has gone, so the write can only delay the next request a little): no
 * drift of the host between two measurements can enter that difference of two p50s.
 *
 *   npm run bench:serve -- --num-models 2,8 --concurrency 1,8,32 --duration 5 [--json] [--soak 10000]
 *     [--server-cpus 1 --client-cpus 0]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { percentile } from '../src/bench/harness.ts';
import { main } from '../src/cli/main.ts';

const USAGE = `usage: npm run bench:serve -- [options]
  --num-models LIST    model counts (default 2,8)
  --concurrency LIST   concurrent connections (default 1,8,32)
  --paths LIST         single,sequential (default both)
  --batching LIST      on,off (default both; off: --max-batch-size 1)
  --duration S         seconds per cell after a 1 s warm-up (default 5)
  --max-requests N     requests per cell at most (default 20000)
  --bench-iters N      timed calls of the in-process bench beside (default 200)
  --backend NAME       the server's backend (default auto)
  --soak N             also the server's RSS after 1,000 and after N requests
  --server-cpus LIST   taskset CPUs for the server and the in-process bench (with --client-cpus)
  --client-cpus LIST   taskset CPUs for autocannon
  --overhead-rounds R  instead of the table: R rounds of the in-process p50, then the HTTP p50 at concurrency 1
                       (also set against the server's own plan-run times for the same requests) and a bare
                       server's, held as long (batching on; not with --concurrency, --batching or --soak)
  --json               one JSON document on stdout
`;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'src/cli/bin.js');

interface Args {
  numModels: number[];
  concurrency: number[];
  paths: Array<'single' | 'sequential'>;
  batching: boolean[];
  duration: number;
  maxRequests: number;
  benchIters: number;
  backend: string;
  soak: number | undefined;
  json: boolean;
  /** CPU lists (taskset's) for the server and the in-process bench, and for the load generator; undefined: unpinned */
  serverCpus: string | undefined;
  clientCpus: string | undefined;
  /** > 0: measure only HTTP's cost at concurrency 1, in this many alternated rounds */
  overheadRounds: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    numModels: [2, 8], concurrency: [1, 8, 32], paths: ['single', 'sequential'], batching: [true, false],
    duration: 5, maxRequests: 20_000, benchIters: 200, backend: 'auto', soak: undefined, json: false, serverCpus: undefined, clientCpus: undefined,
    overheadRounds: 0,
  };
  const single = (flag: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench:serve: ${flag} takes positive integers, got "${v}"`);
    return n;
  };
  const list = (flag: string, v: string) => v.split(',').map((item) => single(flag, item));
  const oneOf = <T extends string>(flag: string, v: string, allowed: readonly T[]): T[] => v.split(',').map((item) => {
    if (!(allowed as readonly string[]).includes(item)) throw new Error(`bench:serve: ${flag} takes a list of ${allowed.join(', ')}, got "${item}"`);
    return item as T;
  });
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench:serve: ${flag} needs a value`);
      return v;
    };
    if (flag === '--num-models') args.numModels = list(flag, value());
    else if (flag === '--concurrency') args.concurrency = list(flag, value());
    else if (flag === '--paths') args.paths = oneOf(flag, value(), ['single', 'sequential'] as const);
    else if (flag === '--batching') args.batching = oneOf(flag, value(), ['on', 'off'] as const).map((v) => v === 'on');
    else if (flag === '--duration') args.duration = single(flag, value());
    else if (flag === '--max-requests') args.maxRequests = single(flag, value());
    else if (flag === '--bench-iters') args.benchIters = single(flag, value());
    else if (flag === '--backend') args.backend = value();
    else if (flag === '--soak') args.soak = single(flag, value());
    else if (flag === '--json') args.json = true;
    else if (flag === '--server-cpus') args.serverCpus = cpuList(flag, value());
    else if (flag === '--client-cpus') args.clientCpus = cpuList(flag, value());
    else if (flag === '--overhead-rounds') args.overheadRounds = single(flag, value());
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`bench:serve: unknown flag ${flag} (see --help)`);
  }
  if ((args.serverCpus === undefined) !== (args.clientCpus === undefined)) throw new Error('bench:serve: --server-cpus and --client-cpus go together');
  if (args.overheadRounds > 0) {
    const clash = ['--concurrency', '--batching', '--soak'].find((f) => argv.includes(f));
    if (clash) throw new Error(`bench:serve: --overhead-rounds measures concurrency 1 with batching on, without a soak: drop ${clash}`);
  }
  return args;
}

function cpuList(flag: string, v: string): string {
  if (!/^\d+([-,]\d+)*$/.test(v)) throw new Error(`bench:serve: ${flag} takes a CPU list as taskset does (e.g. 1 or 0,1), got "${v}"`);
  return v;
}

/** The command line for a child Node process, under `taskset -c cpus` when pinned. */
function nodeCommand(cpus: string | undefined, argv: string[]): [string, string[]] {
  return cpus === undefined ? [process.execPath, argv] : ['taskset', ['-c', cpus, process.execPath, ...argv]];
}

/** A `serve` child process, started and listening; `onLine` gets each later line of its stdout (its `--json-log`). */
function startServe(flags: string[], cpus: string | undefined, onLine?: (line: string) => void): Promise<{ url: string; child: ChildProcess }> {
  return startListening([BIN, 'serve', '--port', '0', '--host', '127.0.0.1', ...flags], cpus, onLine);
}

/** The floor server (bench/http-floor-server.ts), started and listening. */
function startFloor(cpus: string | undefined): Promise<{ url: string; child: ChildProcess }> {
  return startListening(['--import', 'tsx', join(ROOT, 'bench/http-floor-server.ts')], cpus);
}

/**
 * A Node child process that prints the URL it listens on ("on http://…", or `"url":"http://…"` with --json-log),
 * once it does. `onLine` then gets every whole line of its stdout that follows.
 */
async function startListening(nodeArgs: string[], cpus: string | undefined, onLine?: (line: string) => void): Promise<{ url: string; child: ChildProcess }> {
  const [command, argv] = nodeCommand(cpus, nodeArgs);
  const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  let listening = false;
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8'); // a character cut between two chunks stays whole
    child.stdout!.on('data', (chunk: string) => {
      out += chunk;
      if (!listening) {
        // up to the end of its line, so that a URL cut between two chunks is not taken
        const m = /(?:on |"url":")(http:\/\/[^\s"]+)["\s]/.exec(out);
        const lineEnd = m ? out.indexOf('\n', m.index) : -1;
        if (lineEnd < 0) return; // not yet, or not yet its whole line
        listening = true;
        out = out.slice(lineEnd + 1);
        resolve(m![1]!);
      }
      const end = out.lastIndexOf('\n');
      if (end < 0) return;
      if (onLine) for (const line of out.slice(0, end).split('\n')) onLine(line);
      out = out.slice(end + 1);
    });
    child.on('error', (err) => reject(new Error(`${nodeArgs.join(' ')} could not start: ${err.message}`)));
    child.on('exit', (code) => reject(new Error(`${nodeArgs.join(' ')} exited with ${code} before listening: ${out}`)));
  });
  return { url, child };
}

/** Stops a child this script started (a server), and waits for it to exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return; // gone already: no exit event is coming
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Series of the server's /metrics, one fetch: each name as Prometheus writes it, labels included. */
async function metrics(url: string, series: readonly string[]): Promise<number[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return series.map((name) => {
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`^${escaped} ([0-9.e+-]+)$`, 'm').exec(text);
    if (!m) throw new Error(`bench:serve: /metrics has no ${name}`);
    return Number(m[1]);
  });
}

interface Cell {
  path: string;
  numModels: number;
  batching: boolean;
  concurrency: number;
  requests: number;
  requestsPerSecond: number;
  modelEvaluationsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  meanBatchImages: number;
}

/** `target`: where to PUT the body (the ensemble's predictions, or the floor server's hold with its header). */
async function load(url: string, connections: number, args: Args, body: Buffer, amount?: number,
  target: { path: string; headers?: Record<string, string> } = { path: '/predictions/ensemble' }) {
  const times: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: `${url}${target.path}`, method: 'PUT', body, headers: { 'content-type': 'image/png', ...target.headers }, connections,
      ...(amount ? { amount } : { duration: args.duration, maxOverallRequests: Math.max(args.maxRequests, connections) }),
    }, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on('response', (_client, status, _bytes, ms) => { if (status < 300) times.push(ms); });
  });
  times.sort((a, b) => a - b);
  return { result, times };
}

async function measureCell(url: string, path: string, N: number, batching: boolean, concurrency: number, args: Args, body: Buffer): Promise<Cell> {
  await load(url, concurrency, { ...args, duration: 1 }, body); // warm the connections and the JIT
  const batches = ['mnist_gpujs_batch_images_count', 'mnist_gpujs_batch_images_sum'];
  const [countBefore, sumBefore] = await metrics(url, batches);
  const { result, times } = await load(url, concurrency, args, body);
  const [countAfter, sumAfter] = await metrics(url, batches);
  const ok = times.length;
  const seconds = result.duration;
  const rate = ok / seconds;
  const pct = (p: number) => (ok > 0 ? percentile(times, p) : NaN);
  return {
    path, numModels: N, batching, concurrency, requests: ok, requestsPerSecond: rate, modelEvaluationsPerSecond: rate * N,
    p50Ms: pct(50), p90Ms: pct(90), p95Ms: pct(95), p99Ms: pct(99), errors: result.errors + result.timeouts, non2xx: result.non2xx,
    meanBatchImages: countAfter > countBefore ? (sumAfter - sumBefore) / (countAfter - countBefore) : 0,
  };
}

/** The in-process harness's p50 for the same N: both paths, no HTTP; on the server's CPUs when pinned. */
async function inProcessP50(N: number, args: Args): Promise<{ sequential: number; single: number }> {
  const benchArgs = ['bench', '--num-models', String(N), '--iters', String(args.benchIters), '--warmup', '20', '--backend', args.backend, '--json'];
  let out = '';
  if (args.serverCpus === undefined) {
    const code = await main(['node', 'mnist-gpujs', ...benchArgs], { stdout: { write: (s: string) => { out += s; } }, stderr: { write: () => true } });
    if (code !== 0) throw new Error(`bench:serve: in-process bench failed with ${code}`);
  } else {
    const [command, argv] = nodeCommand(args.serverCpus, [BIN, ...benchArgs]);
    const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout!.on('data', (b: Buffer) => { out += b; });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    if (code !== 0) throw new Error(`bench:serve: bench on CPUs ${args.serverCpus} failed with ${code}`);
  }
  const doc = JSON.parse(out) as { sequential: { p50Ms: number }; singleDispatch: { p50Ms: number } };
  return { sequential: doc.sequential.p50Ms, single: doc.singleDispatch.p50Ms };
}

async function soak(N: number, total: number, args: Args, body: Buffer) {
  const { url, child } = await startServe(['--num-models', String(N), '--backend', args.backend], args.serverCpus);
  try {
    await load(url, 8, args, body, 1000);
    const [after1k] = await metrics(url, ['process_resident_memory_bytes']);
    await load(url, 8, args, body, total - 1000);
    const [afterAll] = await metrics(url, ['process_resident_memory_bytes']);
    return { numModels: N, requests: total, rssAfter1000MiB: after1k / 2 ** 20, rssAfterAllMiB: afterAll / 2 ** 20, ratio: afterAll / after1k };
  } finally {
    await stopChild(child);
  }
}

const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');
const signed = (v: number) => `${v >= 0 ? '+' : ''}${f(v)}`;
/** The p50 of samples in any order. */
const p50 = (values: readonly number[]) => percentile([...values].sort((a, b) => a - b), 50);

interface OverheadRound {
  httpP50Ms: number; inProcessP50Ms: number; differenceMs: number;
  /** the server's own mean time per request in each phase over the HTTP block, from /metrics */
  serverMeanMs: { decode: number; queue: number; compute: number };
  /** the floor server's p50 at concurrency 1, holding each request for the in-process p50, minus that hold */
  floorMs: number;
  /** the p50 of the plan runs that answered this block's requests (their `computeMs` in the server's log) */
  planRunP50Ms: number;
  /** HTTP p50 − planRunP50Ms: what HTTP and the server's handling add to the very plan runs they waited for */
  sameRequestsDifferenceMs: number;
}

/** One line of a server's `--json-log`; undefined for a line that is not JSON (nothing else should print there). */
function parseLogLine(line: string): { computeMs?: unknown } | undefined {
  try {
    return JSON.parse(line) as { computeMs?: unknown };
  } catch {
    return undefined;
  }
}

const PHASES = ['decode', 'queue', 'compute'] as const;
/** The server's summed seconds, then counts, of each request phase. */
const PHASE_SERIES = (['sum', 'count'] as const).flatMap((kind) => PHASES.map((p) => `mnist_gpujs_request_duration_seconds_${kind}{phase="${p}"}`));

/**
 * HTTP p50 at concurrency 1 against the in-process p50, `--overhead-rounds` times: per N, a server per path, and
 * each round one in-process bench (it times both paths), then each path's HTTP block right after it.
 */
async function overhead(N: number, args: Args, body: Buffer) {
  const servers: Array<{ path: 'single' | 'sequential'; url: string; child: ChildProcess; rounds: OverheadRound[]; computeMs: number[] }> = [];
  const floor = await startFloor(args.serverCpus);
  const hold = (ms: number) => ({ path: '/hold', headers: { 'x-hold-ms': String(ms) } });
  try {
    await load(floor.url, 1, { ...args, duration: 1 }, body, undefined, hold(1)); // warm it as the servers below
    for (const path of args.paths) {
      const computeMs: number[] = [];
      // --json-log: each answered prediction's plan-run time, to set against the HTTP times of the same requests
      const { url, child } = await startServe(['--num-models', String(N), '--path', path, '--backend', args.backend, '--json-log'], args.serverCpus,
        (line) => {
          const entry = parseLogLine(line);
          if (typeof entry?.computeMs === 'number') computeMs.push(entry.computeMs);
        });
      servers.push({ path, url, child, rounds: [], computeMs });
      await load(url, 1, { ...args, duration: 1 }, body); // warm the connection and the JIT
    }
    for (let r = 0; r < args.overheadRounds; r++) {
      const inProcess = await inProcessP50(N, args);
      for (const { path, url, rounds, computeMs } of servers) {
        const inProcessP50Ms = inProcess[path];
        const before = await metrics(url, PHASE_SERIES);
        computeMs.length = 0; // from here on, this block's lines (a late line of this server's previous block cannot move a p50 of hundreds)
        const { times, result } = await load(url, 1, args, body);
        const after = await metrics(url, PHASE_SERIES);
        if (result.errors + result.timeouts + result.non2xx > 0) throw new Error(`bench:serve: N=${N} ${path}: errors under load`);
        const httpP50Ms = percentile(times, 50);
        // one log line per answered request; far fewer would mean the lines went astray and the p50 says nothing
        if (computeMs.length < times.length / 2) {
          throw new Error(`bench:serve: N=${N} ${path}: ${computeMs.length} plan-run times in the server's log for ${times.length} answers`);
        }
        const planRunP50Ms = p50(computeMs);
        const [decode, queue, compute] = PHASES.map((_, i) =>
          (1000 * (after[i]! - before[i]!)) / (after[i + PHASES.length]! - before[i + PHASES.length]!));
        // the same round trip around a bare handler held as long as the in-process plan run
        const held = await load(floor.url, 1, args, body, undefined, hold(inProcessP50Ms));
        if (held.result.errors + held.result.timeouts + held.result.non2xx > 0) throw new Error(`bench:serve: N=${N} ${path}: errors on the floor server`);
        const floorMs = percentile(held.times, 50) - inProcessP50Ms;
        rounds.push({
          httpP50Ms, inProcessP50Ms, differenceMs: httpP50Ms - inProcessP50Ms, serverMeanMs: { decode: decode!, queue: queue!, compute: compute! }, floorMs,
          planRunP50Ms, sameRequestsDifferenceMs: httpP50Ms - planRunP50Ms,
        });
        if (!args.json) process.stderr.write(`bench:serve: N=${N} ${path} round ${r + 1}: HTTP ${f(httpP50Ms)} ms, in-process ${f(inProcessP50Ms)} ms, `
          + `the same requests' plan runs ${f(planRunP50Ms)} ms, floor +${f(floorMs)} ms\n`);
      }
    }
    return servers.map(({ path, rounds }) => ({
      numModels: N, path, rounds,
      medianDifferenceMs: p50(rounds.map((r) => r.differenceMs)), medianFloorMs: p50(rounds.map((r) => r.floorMs)),
      medianSameRequestsDifferenceMs: p50(rounds.map((r) => r.sameRequestsDifferenceMs)),
    }));
  } finally {
    for (const { child } of servers) await stopChild(child);
    await stopChild(floor.child);
  }
}

async function runOverhead(args: Args, body: Buffer): Promise<void> {
  const results = [];
  for (const N of args.numModels) {
    results.push(...await overhead(N, args, body));
  }
  if (args.json) {
    process.stdout.write(JSON.stringify({
      backend: args.backend, duration: args.duration, benchIters: args.benchIters,
      serverCpus: args.serverCpus ?? null, clientCpus: args.clientCpus ?? null, overhead: results,
    }, null, 2) + '\n');
    return;
  }
  for (const o of results) {
    const diffs = o.rounds.map((r) => signed(r.differenceMs)).join(', ');
    process.stdout.write(`N=${o.numModels} ${o.path}: HTTP − in-process p50 per round ${diffs} ms; median ${signed(o.medianDifferenceMs)} ms; `
      + `HTTP − the same requests' plan runs p50: median ${signed(o.medianSameRequestsDifferenceMs)} ms; `
      + `a bare server holding each request as long: median +${f(o.medianFloorMs)} ms\n`);
    for (const [i, r] of o.rounds.entries()) {
      process.stdout.write(`  round ${i + 1}: HTTP p50 ${f(r.httpP50Ms)}, in-process p50 ${f(r.inProcessP50Ms)}, the same requests' plan runs p50 ${f(r.planRunP50Ms)}; `
        + `the server's mean decode ${f(r.serverMeanMs.decode)}, queue ${f(r.serverMeanMs.queue)}, compute ${f(r.serverMeanMs.compute)} ms; floor +${f(r.floorMs)} ms\n`);
    }
  }
}

async function run(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.clientCpus !== undefined) {
    // this process is the load generator: onto the client's CPUs (taskset -p moves only the calling thread, so -a)
    const pinned = spawnSync('taskset', ['-a', '-c', '-p', args.clientCpus, String(process.pid)]);
    if (pinned.status !== 0) throw new Error(`bench:serve: taskset could not pin the load generator: ${String(pinned.stderr).trim()}`);
  }
  const body = readFileSync(join(ROOT, 'fixtures/1.png'));
  if (args.overheadRounds > 0) {
    await runOverhead(args, body);
    return;
  }
  const cells: Cell[] = [];
  const inProcess: Record<number, { sequential: number; single: number }> = {};
  for (const N of args.numModels) {
    inProcess[N] = await inProcessP50(N, args);
    for (const path of args.paths) {
      for (const batching of args.batching) {
        const { url, child } = await startServe(['--num-models', String(N), '--path', path, '--backend', args.backend,
          ...(batching ? [] : ['--max-batch-size', '1', '--batch-buckets', '1'])], args.serverCpus);
        try {
          for (const c of args.concurrency) {
            const cell = await measureCell(url, path, N, batching, c, args, body);
            cells.push(cell);
            if (!args.json) process.stderr.write(`bench:serve: N=${N} ${path} batching ${batching ? 'on' : 'off'} c=${c}: ${f(cell.requestsPerSecond, 1)} req/s, p50 ${f(cell.p50Ms)} ms\n`);
          }
        } finally {
          await stopChild(child);
        }
      }
    }
  }
  const soaked = args.soak ? await soak(args.numModels[0]!, args.soak, args, body) : undefined;
  if (args.json) {
    process.stdout.write(JSON.stringify({ backend: args.backend, duration: args.duration, serverCpus: args.serverCpus ?? null, clientCpus: args.clientCpus ?? null, inProcessP50Ms: inProcess, cells, soak: soaked }, null, 2) + '\n');
    return;
  }
  const header = ['N', 'path', 'batching', 'conc.', 'req/s', 'model evals/s', 'p50', 'p90', 'p95', 'p99', 'in-process p50', 'errors', 'non-2xx', 'mean batch'];
  const rows = cells.map((c) => [
    String(c.numModels), c.path, c.batching ? 'on' : 'off', String(c.concurrency), f(c.requestsPerSecond, 1), f(c.modelEvaluationsPerSecond, 1),
    f(c.p50Ms), f(c.p90Ms), f(c.p95Ms), f(c.p99Ms), f(c.path === 'single' ? inProcess[c.numModels]!.single : inProcess[c.numModels]!.sequential),
    String(c.errors), String(c.non2xx), f(c.meanBatchImages),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [header, ...rows]) process.stdout.write(r.map((cell, i) => cell.padStart(widths[i]!)).join('  ') + '\n');
  process.stdout.write(args.serverCpus === undefined ? '(latencies in ms; autocannon shares the machine\'s cores with the server)\n'
    : `(latencies in ms; the server and the in-process bench on CPUs ${args.serverCpus}, autocannon on CPUs ${args.clientCpus})\n`);
  if (soaked) {
    process.stdout.write(`RSS after 1,000 requests ${f(soaked.rssAfter1000MiB, 1)} MiB, after ${soaked.requests} ${f(soaked.rssAfterAllMiB, 1)} MiB (${f(soaked.ratio, 3)}x)\n`);
  }
}

await run().catch((e: unknown) => {
  // a bad flag or a failed cell: one line, not a stack trace
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
