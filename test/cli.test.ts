import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { InvalidArgumentError } from 'commander';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { InputError } from '../src/errors.ts';
import { main } from '../src/cli/main.ts';
import { initParams } from '../src/engine/init.ts';
import { writeModelFile } from '../src/io/model-file.ts';
import {
  PACKAGE_ROOT, UsageError, buildBenchOptions, buildTrainOptions, choice, nonNegativeInt, nonNegativeNumber,
  positiveInt, positiveIntList, positiveNumber,
} from '../src/cli/options.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

// Each command's run is wrapped so tests can see the options object main built, and can make
// run throw; the real run (which may train or benchmark for minutes) is called only when a test asks.
const hooks = vi.hoisted(() => ({
  calls: [] as { cmd: string; opts: any }[],
  throwing: undefined as unknown,
  realRun: false,
}));
vi.mock('../src/cli/commands/train.ts', async (orig) => wrap('train', await orig()));
vi.mock('../src/cli/commands/bench.ts', async (orig) => wrap('bench', await orig()));
vi.mock('../src/cli/commands/predict.ts', async (orig) => wrap('predict', await orig()));
vi.mock('../src/cli/commands/dashboard.ts', async (orig) => wrap('dashboard', await orig()));
function wrap(cmd: string, real: any) {
  return {
    ...real,
    run: async (opts: any, io: any) => {
      hooks.calls.push({ cmd, opts });
      if (hooks.throwing !== undefined) throw hooks.throwing;
      return hooks.realRun ? real.run(opts, io) : 0;
    },
  };
}

const tmpDirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mnist-gpujs-cli-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => tmpDirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const EMPTY_CWD = tmp();

interface Result { code: number; out: string; err: string; errLines: string[] }

async function cli(args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Result> {
  let out = '';
  let err = '';
  const code = await main(['node', 'mnist-gpujs', ...args], {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    cwd: opts.cwd ?? EMPTY_CWD,
    env: opts.env ?? {},
  });
  return { code, out, err, errLines: err.split('\n').filter((l) => l !== '') };
}

function expectOneErrorLine(r: Result, code: number, pattern: RegExp): void {
  expect(r.code).toBe(code);
  expect(r.errLines).toHaveLength(1);
  expect(r.errLines[0]).toMatch(pattern);
  expect(r.err).not.toMatch(/^\s+at /m);
  expect(r.err).not.toMatch(/Usage:/);
  expect(r.out).toBe('');
}

beforeEach(() => {
  hooks.calls.length = 0;
  hooks.throwing = undefined;
  hooks.realRun = false;
});

describe('value parsers', () => {
  const rejects = (parse: (v: string) => unknown, value: string, message: RegExp) => {
    expect(() => parse(value)).toThrow(InvalidArgumentError);
    expect(() => parse(value)).toThrow(message);
  };

  it('positiveInt accepts plain digits only', () => {
    const p = positiveInt('--batch-size');
    expect(p('1')).toBe(1);
    expect(p('64')).toBe(64);
    expect(p('007')).toBe(7);
    for (const bad of ['0', '-1', '1.5', '1.0', '1e3', '0x10', '', ' 1', 'abc', 'Infinity', '+3']) {
      rejects(p, bad, /^--batch-size must be a positive integer\.$/);
    }
    rejects(p, '99999999999999999999', /--batch-size must be at most 9007199254740991/);
  });

  it('nonNegativeInt allows 0 and enforces a maximum', () => {
    const p = nonNegativeInt('--seed', 0xffffffff);
    expect(p('0')).toBe(0);
    expect(p('4294967295')).toBe(4294967295);
    rejects(p, '4294967296', /--seed must be at most 4294967295/);
    rejects(p, '-1', /--seed must be a non-negative integer/);
    rejects(p, '2.5', /--seed must be a non-negative integer/);
  });

  it('positiveNumber and nonNegativeNumber accept decimals and exponents, not specials', () => {
    const pos = positiveNumber('--lr');
    expect(pos('1.0')).toBe(1);
    expect(pos('.5')).toBe(0.5);
    expect(pos('5.')).toBe(5);
    expect(pos('1e-3')).toBe(0.001);
    expect(pos('+2E2')).toBe(200);
    for (const bad of ['0', '-0.1', '0.0', '1e-400', '1e400', 'Infinity', 'NaN', '', '0x10', '1,5', 'abc', '.']) {
      rejects(pos, bad, /^--lr must be a positive finite number\.$/);
    }
    const nn = nonNegativeNumber('--momentum');
    expect(nn('0')).toBe(0);
    expect(Object.is(nn('-0'), 0)).toBe(true);
    expect(nn('0.9')).toBe(0.9);
    for (const bad of ['-0.1', 'Infinity', '', 'x']) rejects(nn, bad, /^--momentum must be a non-negative finite number\.$/);
  });

  it('choice matches exactly and lists the choices', () => {
    const p = choice('--optimizer', ['adadelta', 'sgd'] as const);
    expect(p('sgd')).toBe('sgd');
    rejects(p, 'SGD', /^--optimizer must be one of adadelta, sgd\.$/);
    rejects(p, 'adam', /must be one of adadelta, sgd/);
    rejects(p, '', /must be one of/);
  });

  it('positiveIntList sorts, trims, and refuses empty items, zero and duplicates', () => {
    const p = positiveIntList('--sweep');
    expect(p('1,2,4,8,16,32')).toEqual([1, 2, 4, 8, 16, 32]);
    expect(p('8,1, 4')).toEqual([1, 4, 8]);
    expect(p('3')).toEqual([3]);
    for (const bad of ['', '1,,2', '1,2,', ',1', '0,1', '1,-2', '1.5', 'a,b', '1;2']) {
      rejects(p, bad, /^--sweep must be a comma-separated list of positive integers/);
    }
    rejects(p, '1,2,1', /^--sweep lists 1 more than once\.$/);
  });
});

describe('cross-option checks', () => {
  const trainRaw = {
    batchSize: 64, testBatchSize: 1000, epochs: 14, lr: 1, gamma: 0.7, seed: 1, logInterval: 10,
    optimizer: 'adadelta', momentum: 0, weightDecay: 0, backend: 'auto', modelPath: 'mnist_cnn.safetensors', numModels: 1,
  };

  it('momentum is refused with adadelta but fine at 0 or with sgd', () => {
    const ctx = { cwd: '/w', explicit: new Set<string>() };
    expect(() => buildTrainOptions({ ...trainRaw, momentum: 0.9 }, ctx)).toThrow(UsageError);
    expect(() => buildTrainOptions({ ...trainRaw, momentum: 0.9 }, ctx)).toThrow(/--momentum applies only to --optimizer sgd/);
    expect(buildTrainOptions({ ...trainRaw, optimizer: 'sgd', momentum: 0.9 }, ctx).options.momentum).toBe(0.9);
    expect(buildTrainOptions(trainRaw, ctx).options.optimizer).toBe('adadelta');
  });

  it('an explicit --model-path implies --save-model', () => {
    expect(buildTrainOptions(trainRaw, { cwd: '/w', explicit: new Set() }).options.saveModel).toBe(false);
    const o = buildTrainOptions({ ...trainRaw, modelPath: 'out.safetensors' }, { cwd: '/w', explicit: new Set(['modelPath']) }).options;
    expect(o.saveModel).toBe(true);
    expect(o.modelPath).toBe(resolve('/w', 'out.safetensors'));
  });

  it('--sweep wins over an explicit --num-models, with a warning; --json turns the UI off', () => {
    const raw = { numModels: 3, sweep: [1, 4], batchSize: 1, warmup: 100, iters: 1000, backend: 'auto', invert: 'auto', ui: true, json: true };
    const warned = buildBenchOptions(raw, { cwd: EMPTY_CWD, explicit: new Set(['numModels', 'sweep']) });
    expect(warned.warnings).toEqual(['--sweep 1,4 overrides --num-models 3.']);
    expect(warned.options.ui).toBe(false);
    expect(buildBenchOptions(raw, { cwd: EMPTY_CWD, explicit: new Set(['sweep']) }).warnings).toEqual([]);
  });
});

describe('help and version', () => {
  it('root --help lists every command and examples on stdout, exit 0', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await cli(args);
      expect(r.code).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toMatch(/^Usage: mnist-gpujs \[options\] \[command\]/);
      for (const cmd of ['train', 'bench', 'predict', 'dashboard']) expect(r.out).toMatch(new RegExp(`^  ${cmd} `, 'm'));
      expect(r.out).toContain('Examples:');
    }
  });

  const flags: Record<string, string[]> = {
    train: ['--batch-size <n>', '--test-batch-size <n>', '--epochs <n>', '--lr <x>', '--gamma <x>', '--seed <n>', '--log-interval <n>',
      '--dry-run', '--save-model', '--optimizer <adadelta|sgd>', '--momentum <x>', '--weight-decay <x>',
      '--backend <auto|cpu|webasm|headlessgl|webgpu>', '--data-dir <dir>', '--limit <n>', '--model-path <file>', '--num-models <k>',
      '--resume <file>', '--json'],
    bench: ['--num-models <n>', '--image-path <file>', '--model-path <file>', '--batch-size <n>', '--warmup <n>', '--iters <n>',
      '--backend <auto|cpu|webasm|headlessgl|webgpu>', '--sweep <list>', '--json', '--no-ui', '--invert <auto|yes|no>'],
    predict: ['<image...>', '--num-models <n>', '--model-path <file>', '--backend <auto|cpu|webasm|headlessgl|webgpu>', '--invert <auto|yes|no>', '--json'],
    dashboard: ['--num-models <n>', '--image-path <file>', '--model-path <file>', '--batch-size <n>', '--warmup <n>', '--iters <n>',
      '--backend <auto|cpu|webasm|headlessgl|webgpu>', '--invert <auto|yes|no>'],
  };
  for (const [cmd, expected] of Object.entries(flags)) {
    it(`${cmd} --help shows its options and examples`, async () => {
      const r = await cli([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toContain(`Usage: mnist-gpujs ${cmd} [options]`);
      for (const f of expected) expect(r.out).toContain(f);
      expect(r.out).toContain(`$ mnist-gpujs ${cmd}`);
      expect(hooks.calls).toEqual([]);
    });
  }

  it('dashboard has no --json, --no-ui or --sweep', async () => {
    const r = await cli(['dashboard', '--help']);
    expect(r.out).not.toMatch(/--json|--no-ui|--sweep/);
  });

  it('train --help shows the PyTorch defaults', async () => {
    const r = await cli(['help', 'train']);
    expect(r.code).toBe(0);
    for (const d of ['(default: 64)', '(default: 1000)', '(default: 14)', '(default: 1.0)', '(default: 0.7)', '(default: 10)', '"adadelta"']) {
      expect(r.out).toContain(d);
    }
  });

  it('--version prints the package version', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag]);
      expect(r).toMatchObject({ code: 0, out: `${VERSION}\n`, err: '' });
    }
  });
});

describe('command-line errors: one stderr line, exit 2', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--batch-size', '0'], /^mnist-gpujs: error: option '--batch-size <n>' argument '0' is invalid\. --batch-size must be a positive integer\.$/],
    [['train', '--batch-size', 'abc'], /argument 'abc' is invalid\. --batch-size must be a positive integer/],
    [['train', '--epochs', '1.5'], /--epochs must be a positive integer/],
    [['train', '--test-batch-size', '-5'], /--test-batch-size must be a positive integer/],
    [['train', '--log-interval', '1e3'], /--log-interval must be a positive integer/],
    [['train', '--lr', '0'], /--lr must be a positive finite number/],
    [['train', '--gamma', 'NaN'], /--gamma must be a positive finite number/],
    [['train', '--seed', '4294967296'], /--seed must be at most 4294967295/],
    [['train', '--momentum', '-0.5', '--optimizer', 'sgd'], /--momentum must be a non-negative finite number/],
    [['train', '--weight-decay', 'x'], /--weight-decay must be a non-negative finite number/],
    [['train', '--optimizer', 'adam'], /--optimizer must be one of adadelta, sgd/],
    [['train', '--backend', 'cuda'], /--backend must be one of auto, cpu, webasm, headlessgl, webgpu/],
    [['train', '--limit', '0'], /--limit must be a positive integer/],
    [['train', '--num-models', '0'], /--num-models must be a positive integer/],
    [['train', '--momentum', '0.9'], /^mnist-gpujs: error: --momentum applies only to --optimizer sgd/],
    [['train', '--epochs'], /^mnist-gpujs: error: option '--epochs <n>' argument missing$/],
    [['train', '--bogus'], /^mnist-gpujs: error: unknown option '--bogus'$/],
    [['train', 'extra'], /^mnist-gpujs: error: too many arguments for 'train'/],
    [['bench', '--sweep', '1,,2'], /--sweep must be a comma-separated list of positive integers/],
    [['bench', '--sweep', '2,4,2'], /--sweep lists 2 more than once/],
    [['bench', '--warmup', '-1'], /--warmup must be a non-negative integer/],
    [['bench', '--iters', '0'], /--iters must be a positive integer/],
    [['bench', '--invert', 'maybe'], /--invert must be one of auto, yes, no/],
    [['bench', '--ui'], /unknown option '--ui'/],
    [['predict'], /^mnist-gpujs: error: missing required argument 'image'$/],
    [['predict', 'a.png', '--num-models', 'two'], /--num-models must be a positive integer/],
    [['dashboard', '--json'], /unknown option '--json'/],
    [['dashboard', '--sweep', '1,2'], /unknown option '--sweep'/],
    [['trian'], /^mnist-gpujs: error: unknown command 'trian' \(Did you mean train\?\)$/],
    [['frobnicate'], /^mnist-gpujs: error: unknown command 'frobnicate'$/],
    [['--bogus'], /^mnist-gpujs: error: unknown option '--bogus'$/],
    [[], /^mnist-gpujs: error: missing command \(train, bench, predict, dashboard, serve or web\)/],
    [['help', 'nope'], /^mnist-gpujs: error: unknown command 'nope'$/],
  ];
  for (const [args, pattern] of cases) {
    it(`mnist-gpujs ${args.join(' ') || '(nothing)'}`, async () => {
      expectOneErrorLine(await cli(args), 2, pattern);
      expect(hooks.calls).toEqual([]);
    });
  }
});

describe('running commands', () => {
  it('predict with a missing model file is one error line naming it, exit 1', async () => {
    hooks.realRun = true;
    expectOneErrorLine(await cli(['predict', 'x.png', '--model-path', 'no-such.safetensors']), 1,
      /^mnist-gpujs: .*no-such\.safetensors: file not found$/);
  });

  it('train gets the PyTorch defaults as a typed options object', async () => {
    const cwd = tmp();
    await cli(['train'], { cwd });
    expect(hooks.calls).toEqual([{
      cmd: 'train',
      opts: {
        batchSize: 64, testBatchSize: 1000, epochs: 14, lr: 1, gamma: 0.7, seed: 1, logInterval: 10, dryRun: false,
        saveModel: false, optimizer: 'adadelta', momentum: 0, weightDecay: 0, backend: 'auto', dataDir: undefined,
        limit: undefined, testLimit: undefined, modelPath: join(cwd, 'mnist_cnn.safetensors'), numModels: 1, resume: undefined, json: false,
      },
    }]);
  });

  it('train flags are parsed and paths resolved against the cwd', async () => {
    const cwd = tmp();
    await cli(['train', '--batch-size', '32', '--epochs=2', '--lr', '0.05', '--optimizer', 'sgd', '--momentum', '0.9',
      '--seed', '0', '--dry-run', '--data-dir', 'data', '--limit', '640', '--model-path', 'out/m.safetensors',
      '--num-models', '4', '--resume', '/abs/r.safetensors', '--backend', 'cpu', '--json'], { cwd });
    expect(hooks.calls[0].opts).toMatchObject({
      batchSize: 32, epochs: 2, lr: 0.05, optimizer: 'sgd', momentum: 0.9, seed: 0, dryRun: true, dataDir: join(cwd, 'data'),
      limit: 640, modelPath: join(cwd, 'out/m.safetensors'), saveModel: true, numModels: 4, resume: '/abs/r.safetensors',
      backend: 'cpu', json: true,
    });
  });

  it('bench defaults fall back to the shipped fixtures when the cwd has none', async () => {
    await cli(['bench']);
    expect(hooks.calls[0].opts).toEqual({
      numModels: 2, imagePath: join(PACKAGE_ROOT, 'fixtures/1.png'), modelPath: join(PACKAGE_ROOT, 'fixtures/mnist_cnn.safetensors'),
      batchSize: 1, warmup: 100, iters: 1000, backend: 'auto', sweep: undefined, json: false, ui: true, invert: 'auto', peers: [], peerThreads: 1,
    });
  });

  it('bench and dashboard prefer the cwd\'s model and image when present', async () => {
    const cwd = tmp();
    writeFileSync(join(cwd, 'mnist_cnn.safetensors'), '');
    mkdirSync(join(cwd, 'fixtures'));
    writeFileSync(join(cwd, 'fixtures', '1.png'), '');
    await cli(['bench', '--no-ui', '--sweep', '8,1,2', '--warmup', '0'], { cwd });
    await cli(['dashboard', '--num-models', '8', '--invert', 'yes', '--peers', 'onnxruntime,tfjs', '--peer-threads', '2'], { cwd });
    expect(hooks.calls[0].opts).toMatchObject({
      modelPath: join(cwd, 'mnist_cnn.safetensors'), imagePath: join(cwd, 'fixtures/1.png'), sweep: [1, 2, 8], warmup: 0, ui: false,
    });
    expect(hooks.calls[1].opts).toEqual({
      numModels: 8, imagePath: join(cwd, 'fixtures/1.png'), modelPath: join(cwd, 'mnist_cnn.safetensors'),
      batchSize: 1, warmup: 100, iters: 1000, backend: 'auto', invert: 'yes', peers: ['tfjs', 'onnxruntime'], peerThreads: 2,
    });
  });

  it('an explicit path is taken from the cwd, never swapped for a fixture', async () => {
    await cli(['bench', '--image-path', 'fixtures/7.png', '--model-path', 'm.safetensors']);
    expect(hooks.calls[0].opts).toMatchObject({ imagePath: join(EMPTY_CWD, 'fixtures/7.png'), modelPath: join(EMPTY_CWD, 'm.safetensors') });
  });

  it('bench --sweep with --num-models warns on stderr and runs the sweep', async () => {
    const r = await cli(['bench', '--num-models', '3', '--sweep', '4,1', '--json']);
    expect(r.errLines[0]).toBe('mnist-gpujs: warning: --sweep 1,4 overrides --num-models 3.');
    expect(hooks.calls[0].opts).toMatchObject({ sweep: [1, 4], json: true, ui: false });
  });

  it('predict gets every image, resolved', async () => {
    await cli(['predict', 'a.png', '/abs/b.png', '--json', '--num-models', '2']);
    expect(hooks.calls[0].opts).toEqual({
      images: [join(EMPTY_CWD, 'a.png'), '/abs/b.png'], numModels: 2,
      modelPath: join(PACKAGE_ROOT, 'fixtures/mnist_cnn.safetensors'), backend: 'auto', invert: 'auto', json: true,
    });
  });
});

describe('errors from a command', () => {
  it('an InputError is one line "mnist-gpujs: <message>", exit 1', async () => {
    hooks.throwing = new InputError('model.safetensors: not a safetensors file\n(header too short)');
    expectOneErrorLine(await cli(['predict', 'x.png']), 1, /^mnist-gpujs: model\.safetensors: not a safetensors file \(header too short\)$/);
  });

  it('any other error is one "internal error" line with the DEBUG hint, exit 1', async () => {
    hooks.throwing = new TypeError('cannot read x of undefined');
    expectOneErrorLine(await cli(['train']), 1,
      /^mnist-gpujs: internal error: cannot read x of undefined \(set DEBUG=mnist-gpujs to see the stack trace\)$/);
    hooks.throwing = 'a thrown string';
    expectOneErrorLine(await cli(['bench']), 1, /^mnist-gpujs: internal error: a thrown string \(set DEBUG/);
  });

  it('DEBUG=mnist-gpujs adds the stack trace', async () => {
    hooks.throwing = new Error('boom');
    const r = await cli(['dashboard'], { env: { DEBUG: 'other,mnist-gpujs' } });
    expect(r.code).toBe(1);
    expect(r.errLines[0]).toBe('mnist-gpujs: internal error: boom');
    expect(r.errLines[1]).toBe('Error: boom');
    expect(r.err).toMatch(/^\s+at /m);
  });
});

describe('the bin, end to end', () => {
  const run = promisify(execFile);
  const bin = (args: string[]) =>
    run(process.execPath, [join(ROOT, 'src/cli/bin.js'), ...args], { cwd: ROOT, env: { ...process.env, DEBUG: '' } })
      .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }));

  it('--help exits 0 and a bad flag exits 2 with one stderr line', async () => {
    const [help, bad] = await Promise.all([bin(['--help']), bin(['bench', '--iters', '0'])]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: mnist-gpujs/);
    expect(help.stderr).toBe('');
    expect(bad.code).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toBe("mnist-gpujs: error: option '--iters <n>' argument '0' is invalid. --iters must be a positive integer.\n");
  }, 20_000);
});

describe('bad input files through the real commands', () => {
  // Each case fails while loading its inputs, before any kernel runs, so these stay fast.
  const dir = tmp();
  const model = join(dir, 'model.safetensors');
  writeModelFile(model, initParams(1), 1);

  it('a corrupt PNG: one line naming it, exit 1', async () => {
    hooks.realRun = true;
    const png = join(dir, 'corrupt.png');
    writeFileSync(png, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('truncated')]));
    expectOneErrorLine(await cli(['predict', png, '--model-path', model]), 1, /corrupt\.png: /);
  });

  it('a file that is not a PNG, and an empty one: one line each, exit 1', async () => {
    hooks.realRun = true;
    const text = join(dir, 'notes.png');
    writeFileSync(text, 'hello');
    expectOneErrorLine(await cli(['predict', text, '--model-path', model]), 1, /notes\.png: not a PNG file/);
    const empty = join(dir, 'empty.png');
    writeFileSync(empty, '');
    expectOneErrorLine(await cli(['predict', empty, '--model-path', model]), 1, /empty\.png: /);
  });

  it('a truncated model file: one line naming it, exit 1', async () => {
    hooks.realRun = true;
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, readFileSync(model).subarray(0, 1000));
    expectOneErrorLine(await cli(['predict', join(ROOT, 'fixtures/1.png'), '--model-path', cut]), 1, /cut\.safetensors: /);
    expectOneErrorLine(await cli(['bench', '--model-path', cut, '--no-ui']), 1, /cut\.safetensors: /);
  });

  it('a data directory without IDX files: one line naming what is missing, exit 1', async () => {
    hooks.realRun = true;
    expectOneErrorLine(await cli(['train', '--data-dir', dir, '--epochs', '1']), 1, /train-images-idx3-ubyte/);
  });

  it('a corrupt IDX file: one line naming it, exit 1', async () => {
    hooks.realRun = true;
    const idxDir = tmp();
    for (const name of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
      writeFileSync(join(idxDir, name), Buffer.from([0, 0, 8, 3, 0, 0]));
    }
    expectOneErrorLine(await cli(['train', '--data-dir', idxDir, '--epochs', '1']), 1, /idx[13]-ubyte/);
  });

  it('an unwritable model path: one line, exit 2, nothing written', async () => {
    hooks.realRun = true;
    const target = join(dir, 'no-such-dir', 'm.safetensors');
    expectOneErrorLine(await cli(['train', '--model-path', target, '--epochs', '1']), 2, /no-such-dir/);
  });

  it('resuming from a missing checkpoint: one line, exit 1', async () => {
    hooks.realRun = true;
    expectOneErrorLine(await cli(['train', '--resume', join(dir, 'nope.ckpt.safetensors')]), 1, /nope\.ckpt\.safetensors: file not found/);
  });
});
