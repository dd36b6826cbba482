/**
 * The `mnist-gpujs` command line: flag definitions, help text, and the one place that turns every
 * failure into an exit code and a single stderr line. Exit codes: 0 success, 1 the command failed
 * (bad input file, unavailable backend, bug), 2 the command line itself was wrong.
 *
 * main() never calls process.exit: bin.js sets process.exitCode from its result, and tests call it
 * in-process with their own writers.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { InputError } from '../errors.ts';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../exit-codes.ts';
import {
  BACKEND_CHOICES, INVERT_MODES, MAX_SEED, OPTIMIZERS, PACKAGE_ROOT, SERVE_PATHS, UsageError,
  buildBenchOptions, buildDashboardOptions, buildPredictOptions, buildServeOptions, buildTrainOptions,
  byteSize, choice, nonNegativeInt, nonNegativeNumber, peerList, port, positiveInt, positiveIntList, positiveNumber,
  type CliIO, type ParseContext, type Parsed, type Writer,
} from './options.ts';

const NAME = 'mnist-gpujs';

export interface MainIO {
  stdout?: Writer;
  stderr?: Writer;
  /** Directory relative paths resolve against; defaults to process.cwd(). */
  cwd?: string;
  /** Environment read for DEBUG; defaults to process.env. */
  env?: Record<string, string | undefined>;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(resolve(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Messages can carry newlines (commander's suggestions, wrapped causes); the contract is one line. */
function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function debugEnabled(env: Record<string, string | undefined>): boolean {
  return (env.DEBUG ?? '').split(/[\s,]+/).some((d) => d === NAME || d === '*' || d === `${NAME}:*`);
}

const examples = (lines: string[]): string => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

// Option factories for the flags several commands share.
const backendOption = () =>
  new Option(`--backend <${BACKEND_CHOICES.join('|')}>`, 'GPU.js backend; auto picks the fastest that works here')
    .argParser(choice('--backend', BACKEND_CHOICES)).default('auto');
const invertOption = () =>
  new Option(`--invert <${INVERT_MODES.join('|')}>`, 'invert image colours (MNIST is light on dark); auto inverts when the background is light')
    .argParser(choice('--invert', INVERT_MODES)).default('auto');
const numModelsOption = (dflt: number | undefined, what: string, placeholder = 'n') =>
  new Option(`--num-models <${placeholder}>`, what).argParser(positiveInt('--num-models')).default(dflt);
const modelPathOption = () =>
  new Option('--model-path <file>', 'safetensors model file (default: ./mnist_cnn.safetensors if present, else the shipped fixtures/mnist_cnn.safetensors)');
const imagePathOption = () =>
  new Option('--image-path <file>', 'PNG digit to run (default: ./fixtures/1.png, else the shipped one)');

/** The run-time inputs shared by bench and dashboard. */
function addRunLoopOptions(cmd: Command): Command {
  return cmd
    .addOption(imagePathOption())
    .addOption(modelPathOption())
    .addOption(new Option('--batch-size <n>', 'images per request (the image repeated)').argParser(positiveInt('--batch-size')).default(1))
    .addOption(new Option('--warmup <n>', 'untimed calls per path before timing').argParser(nonNegativeInt('--warmup')).default(100))
    .addOption(new Option('--iters <n>', 'timed calls per path').argParser(positiveInt('--iters')).default(1000))
    .addOption(backendOption())
    .addOption(new Option('--peers <list>', 'after our two paths, time other engines on the same models both ways (sequential, stacked) and check they agree: tfjs (TF.js wasm), onnxruntime, or all; needs `npm run setup:peers`')
      .argParser(peerList('--peers')))
    .addOption(new Option('--peer-threads <n>', 'threads per onnxruntime session; 1 because N sessions\' pools oversubscribe a small machine (2 threads made N = 8 seven times slower on 2 cores)')
      .argParser(positiveInt('--peer-threads', 256)).default(1));
}

/** Runs a command's module (imported on first use) with its parsed options; records its exit code. */
type CommandLauncher = (parsed: Parsed<unknown>, load: () => Promise<{ run: (opts: any, io: CliIO) => Promise<number> }>) => Promise<void>;

function buildProgram(io: CliIO, ctxOf: (cmd: Command) => ParseContext, runCommand: CommandLauncher, onErrorHelp: () => void): Command {
  const program = new Command(NAME)
    .description('Train the PyTorch-examples MNIST CNN on hand-written GPU.js kernels, and benchmark N models served one after another (N plan runs per request) against all N stacked in one plan run.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    // Set before adding subcommands: they copy these settings.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      // Only reached for help shown as an error (no command given); main prints one line instead.
      writeErr: () => onErrorHelp(),
      // Errors arrive as the CommanderError main catches; printing here would duplicate them.
      outputError: () => {},
      getOutHelpWidth: () => (io.stdout.isTTY && io.stdout.columns ? io.stdout.columns : 80),
      getErrHelpWidth: () => 80,
    })
    .addHelpText('after', examples([
      `${NAME} train --epochs 1 --save-model`,
      `${NAME} predict fixtures/7.png`,
      `${NAME} bench --sweep 1,2,4,8,16,32 --json`,
      `${NAME} dashboard --num-models 8`,
      `${NAME} serve --model-path fixtures/mnist_ensemble4.safetensors --num-models 4`,
      `${NAME} help train`,
    ]) + '\nExit status: 0 success, 1 the command failed, 2 invalid command line.\nSet DEBUG=mnist-gpujs to see stack traces of internal errors.\n');

  program.command('train')
    .description('Train the MNIST CNN (the PyTorch example\'s flags and defaults); optionally K models at once.')
    .addOption(new Option('--batch-size <n>', 'input batch size for training').argParser(positiveInt('--batch-size')).default(64))
    .addOption(new Option('--test-batch-size <n>', 'input batch size for testing').argParser(positiveInt('--test-batch-size')).default(1000))
    .addOption(new Option('--epochs <n>', 'number of epochs to train').argParser(positiveInt('--epochs')).default(14))
    .addOption(new Option('--lr <x>', 'learning rate').argParser(positiveNumber('--lr')).default(1.0, '1.0'))
    .addOption(new Option('--gamma <x>', 'learning rate step gamma (multiplies lr after each epoch)').argParser(positiveNumber('--gamma')).default(0.7))
    .addOption(new Option('--seed <n>', `random seed (0..${MAX_SEED})`).argParser(nonNegativeInt('--seed', MAX_SEED)).default(1))
    .addOption(new Option('--log-interval <n>', 'how many batches to wait before logging training status').argParser(positiveInt('--log-interval')).default(10))
    .option('--dry-run', 'quickly check a single pass')
    .option('--save-model', 'save the trained model to --model-path')
    .addOption(new Option(`--optimizer <${OPTIMIZERS.join('|')}>`, 'optimizer').argParser(choice('--optimizer', OPTIMIZERS)).default('adadelta'))
    .addOption(new Option('--momentum <x>', 'momentum (--optimizer sgd only)').argParser(nonNegativeNumber('--momentum')).default(0))
    .addOption(new Option('--weight-decay <x>', 'L2 weight decay').argParser(nonNegativeNumber('--weight-decay')).default(0))
    .addOption(backendOption())
    .option('--data-dir <dir>', 'directory with the MNIST IDX files (default: the 10,000 digits bundled with the mnist package)')
    .addOption(new Option('--limit <n>', 'use at most this many training digits').argParser(positiveInt('--limit')))
    .addOption(new Option('--test-limit <n>', 'evaluate on at most this many test digits').argParser(positiveInt('--test-limit')))
    .addOption(new Option('--model-path <file>', 'where the model is saved; giving it implies --save-model').default('mnist_cnn.safetensors'))
    .addOption(numModelsOption(1, 'train this many models together, stacked: one kernel call per layer for all of them', 'k'))
    .option('--resume <file>', 'continue from a checkpoint (<model>.ckpt.safetensors, written by --save-model after each epoch), optimizer state included; implies --save-model')
    .option('--json', 'print results as JSON on stdout')
    .addHelpText('after', examples([
      `${NAME} train --epochs 1 --save-model`,
      `${NAME} train --dry-run --limit 640`,
      `${NAME} train --optimizer sgd --lr 0.05 --momentum 0.9 --num-models 4`,
      `${NAME} train --epochs 4 --save-model --resume mnist_cnn.ckpt.safetensors`,
    ]))
    .action(async (raw, cmd: Command) => runCommand(buildTrainOptions(raw, ctxOf(cmd)), () => import('./commands/train.ts')));

  addRunLoopOptions(program.command('bench')
    .description('Benchmark N models served one after another (sequential: N plan runs per request) against all N stacked in one plan (single dispatch: one plan run).')
    .addOption(numModelsOption(2, 'number of models')))
    .addOption(new Option('--sweep <list>', 'benchmark each model count in a comma-separated list, e.g. 1,2,4,8,16,32 (overrides --num-models)')
      .argParser(positiveIntList('--sweep')))
    .option('--json', 'print results as JSON on stdout (implies --no-ui)')
    .option('--no-ui', 'plain text progress instead of the live terminal UI')
    .addOption(invertOption())
    .addHelpText('after', examples([
      `${NAME} bench`,
      `${NAME} bench --num-models 16 --iters 200`,
      `${NAME} bench --sweep 1,2,4,8,16,32 --json > sweep.json`,
      `${NAME} bench --backend cpu --no-ui`,
      `npm run setup:peers && ${NAME} bench --num-models 8 --peers all`,
    ]))
    .action(async (raw, cmd: Command) => runCommand(buildBenchOptions(raw, ctxOf(cmd)), () => import('./commands/bench.ts')));

  program.command('predict')
    .description('Classify PNG digit images with the model(s) in a model file.')
    .argument('<image...>', 'PNG file(s), any size; resized to 28x28')
    .addOption(numModelsOption(undefined, 'number of models to run (default: every model in the file; a single-model file is replicated)'))
    .addOption(modelPathOption())
    .addOption(backendOption())
    .addOption(invertOption())
    .option('--json', 'print predictions as JSON on stdout')
    .addHelpText('after', examples([
      `${NAME} predict fixtures/7.png`,
      `${NAME} predict fixtures/*.png --json`,
      `${NAME} predict photo.png --invert yes --model-path mnist_cnn.safetensors`,
    ]))
    .action(async (images: string[], raw, cmd: Command) =>
      runCommand(buildPredictOptions(images, raw, ctxOf(cmd)), () => import('./commands/predict.ts')));

  addRunLoopOptions(program.command('dashboard')
    .description('Live terminal dashboard: the sequential and the single-dispatch path side by side.')
    .addOption(numModelsOption(2, 'number of models')))
    .addOption(invertOption())
    .addHelpText('after', examples([
      `${NAME} dashboard`,
      `${NAME} dashboard --num-models 8 --batch-size 4`,
    ]))
    .action(async (raw, cmd: Command) => runCommand(buildDashboardOptions(raw, ctxOf(cmd)), () => import('./commands/dashboard.ts')));

  const serve = program.command('serve')
    .description('HTTP inference server for N models (TorchServe and KServe v2 endpoints, Prometheus metrics, a drawing page), with concurrent requests batched into plan runs.')
    .addOption(modelPathOption())
    .addOption(numModelsOption(2, 'number of models served (model0 … model{N-1}, and ensemble)'))
    .addOption(backendOption())
    .addOption(new Option('--host <address>', 'address to listen on (0.0.0.0: every interface)').default('127.0.0.1'))
    .addOption(new Option('--port <n>', 'port to listen on; 0 picks a free one (the URL is printed)').argParser(port('--port')).default(8080))
    .addOption(new Option(`--path <${SERVE_PATHS.join('|')}>`, 'single: one plan run for all N models per batch; sequential: N plan runs (the comparison)')
      .argParser(choice('--path', SERVE_PATHS)).default('single'))
    .addOption(new Option('--max-batch-size <n>', 'images folded into one plan run at most (a request holds at most this many)')
      .argParser(positiveInt('--max-batch-size', 1024)).default(16))
    .addOption(new Option('--max-batch-delay-ms <ms>', 'how long a batch may wait for more requests, from its oldest request\'s arrival; 0: only requests that queued during the previous run join')
      .argParser(nonNegativeNumber('--max-batch-delay-ms')).default(0))
    .addOption(new Option('--batch-buckets <list>', 'batch sizes the plans are built for (a batch is padded up to the next; all are compiled before ready)')
      .argParser(positiveIntList('--batch-buckets', 1024)).default([1, 2, 4, 8, 16], '1,2,4,8,16'))
    .addOption(new Option('--queue-size <n>', 'requests waiting at most; beyond it 503 "queue full" with Retry-After').argParser(positiveInt('--queue-size')).default(100))
    .addOption(new Option('--queue-timeout-ms <ms>', 'a request waiting longer is answered 503 and never run').argParser(positiveNumber('--queue-timeout-ms')).default(5000))
    .addOption(new Option('--body-limit <size>', 'largest request body (e.g. 1mb, 512kb); larger ones get 413').argParser(byteSize('--body-limit')).default(1024 ** 2, '1mb'))
    .addOption(new Option('--exit-timeout-s <s>', 'on SIGTERM/SIGINT, how long queued and running requests may take to finish').argParser(nonNegativeNumber('--exit-timeout-s')).default(30))
    .option('--json-log', 'one JSON line per request on stdout (instead of the status line or plain log lines on stderr)')
    .option('--web-only', 'serve the page and its files only, no models: visitors compute in their browser (needs `npm run build:web`; the same as `mnist-gpujs web`)')
    .addHelpText('after', examples([
      `${NAME} serve`,
      `${NAME} serve --model-path fixtures/mnist_ensemble4.safetensors --num-models 4 --port 0`,
      'curl -T fixtures/7.png http://127.0.0.1:8080/predictions/ensemble',
      `${NAME} serve --path sequential --max-batch-delay-ms 2 --json-log`,
    ]))
    .action(async (raw, cmd: Command) => runCommand(buildServeOptions(raw, ctxOf(cmd)), () => import('./commands/serve.ts')));

  program.command('web')
    .description('Serve the page alone (`serve --web-only`): the models run in the visitor\'s browser on WebGPU, WebGL2 or plain JavaScript, with its benchmark panel; this machine computes nothing. Needs `npm run build:web`.')
    .addOption(new Option('--host <address>', 'address to listen on (0.0.0.0: every interface)').default('127.0.0.1'))
    .addOption(new Option('--port <n>', 'port to listen on; 0 picks a free one (the URL is printed)').argParser(port('--port')).default(8080))
    .addOption(new Option('--exit-timeout-s <s>', 'on SIGTERM/SIGINT, how long open requests may take to finish').argParser(nonNegativeNumber('--exit-timeout-s')).default(30))
    .option('--json-log', 'one JSON line per request on stdout (instead of plain log lines on stderr)')
    .addHelpText('after', examples([
      'npm run build:web',
      `${NAME} web`,
      `${NAME} web --host 0.0.0.0 --port 8000`,
    ]))
    // serve's other options keep their defaults: nothing here reads them
    .action(async (raw, cmd: Command) => runCommand(buildServeOptions({ ...serve.opts(), ...raw, webOnly: true }, ctxOf(cmd)), () => import('./commands/serve.ts')));

  return program;
}

let epipeGuarded = false;
/**
 * `mnist-gpujs --help | head` closes the pipe early; Node then emits EPIPE as an unhandled 'error'
 * event and dies with a stack trace. A closed stdout just means nobody is reading: ignore it.
 */
function ignoreEpipe(): void {
  if (epipeGuarded) return;
  epipeGuarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
    });
  }
}

export async function main(argv: string[], mainIO: MainIO = {}): Promise<number> {
  if (!mainIO.stdout || !mainIO.stderr) ignoreEpipe();
  const io: CliIO = { stdout: mainIO.stdout ?? process.stdout, stderr: mainIO.stderr ?? process.stderr };
  const cwd = mainIO.cwd ?? process.cwd();
  const env = mainIO.env ?? process.env;
  const fail = (line: string, code: number): number => {
    io.stderr.write(`${NAME}: ${line}\n`);
    return code;
  };

  let exitCode = EXIT_OK;
  let errorHelp = false;
  const ctxOf = (cmd: Command): ParseContext => ({
    cwd,
    explicit: new Set(cmd.options.map((o) => o.attributeName()).filter((k) => cmd.getOptionValueSource(k) === 'cli')),
  });
  // Commands are imported only when run, so --help and flag errors stay fast.
  const runCommand: CommandLauncher = async ({ options, warnings }, load) => {
    for (const w of warnings) io.stderr.write(`${NAME}: warning: ${w}\n`);
    const { run } = await load();
    const code = await run(options, io);
    exitCode = Number.isInteger(code) ? code : EXIT_FAILURE;
  };

  try {
    const program = buildProgram(io, ctxOf, runCommand, () => { errorHelp = true; });
    await program.parseAsync(argv, { from: 'node' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT_OK;
      // `help <command>` reports 'commander.help' too (with process.exitCode as its code, so that is
      // no guide); only help sent to stderr is an error: no command given, or `help <unknown>`.
      if (err.code === 'commander.help' && !errorHelp) return EXIT_OK;
      if (err.code === 'commander.help') {
        const args = argv.slice(2);
        if (args[0] === 'help' && args[1]) return fail(`error: unknown command '${args[1]}'`, EXIT_USAGE);
        return fail(`error: missing command (train, bench, predict, dashboard, serve or web); see '${NAME} --help'`, EXIT_USAGE);
      }
      return fail(oneLine(err.message), EXIT_USAGE);
    }
    if (err instanceof UsageError) return fail(`error: ${oneLine(err.message)}`, EXIT_USAGE);
    if (err instanceof InputError) return fail(oneLine(err.message), EXIT_FAILURE);
    const message = err instanceof Error ? err.message : String(err);
    if (debugEnabled(env)) {
      fail(`internal error: ${oneLine(message)}`, EXIT_FAILURE);
      io.stderr.write(`${err instanceof Error && err.stack ? err.stack : String(err)}\n`);
      return EXIT_FAILURE;
    }
    return fail(`internal error: ${oneLine(message)} (set DEBUG=${NAME} to see the stack trace)`, EXIT_FAILURE);
  }
}
