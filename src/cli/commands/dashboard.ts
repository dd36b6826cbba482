/**
 * `mnist-gpujs dashboard` (and `bench` on a terminal): the live Ink dashboard of src/ui/, sequential and
 * single-dispatch serving side by side, driven by the benchmark harness. Options arrive parsed and validated
 * by main.ts (see options.ts).
 *
 * Startup is checked like plain bench: a model file or image that cannot be read, an N the file cannot
 * provide or an unavailable backend is one stderr line and exit 1 (thrown to main) before anything is drawn.
 * Once it runs, the same problems (after `+`, `b` or `r`, which read the inputs again) are a red line inside
 * the dashboard. `q` exits 0; Ctrl-C exits 130 like an interrupted bench.
 *
 * Without an interactive terminal (stdout and stdin both TTYs) the dashboard refuses with one line and exit 2
 * rather than falling back to plain bench output: the dashboard is interactive and idles until `q`, while
 * plain bench runs to completion, so a script or pipe that asked for it most likely made a mistake, and
 * quietly running a long benchmark there would hide it. The line names `bench --no-ui` for plain output.
 */
import '../../ui/terminal-mode.ts';
import { createElement } from 'react';
import { render } from 'ink';
import { makePaths } from '../../bench/harness.ts';
import { benchmarkPeers } from '../../bench/peers.ts';
import { openPeers } from '../../peers/peer.ts';
import { dashboardChunks } from '../../ui/dashboard-state.ts';
import { openDevice } from '../device.ts';
import { readDigitPng } from '../../io/png.ts';
import { App } from '../../ui/App.tsx';
import { BenchController } from '../../ui/controller.ts';
import { loadServedModels } from '../../io/model-file.ts';
import { UsageError, type CliIO, type DashboardOptions, type Writer } from '../options.ts';

export type { DashboardOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** A Writer that is a real terminal stream Ink can draw on (size, resize events). */
function isTerminalStream(w: Writer): w is NodeJS.WriteStream {
  return w.isTTY === true && typeof (w as { on?: unknown }).on === 'function';
}

/** Why the dashboard cannot run with these streams, or undefined when it can. */
export function dashboardUnavailable(io: CliIO, stdin: { isTTY?: boolean } = process.stdin): string | undefined {
  if (!isTerminalStream(io.stdout)) return 'stdout is not a terminal';
  if (stdin.isTTY !== true) return 'stdin is not a terminal (the dashboard reads keys)';
  return undefined;
}

/** Runs the command and returns its exit code. */
export async function run(opts: DashboardOptions, io: CliIO = processIO): Promise<number> {
  const unavailable = dashboardUnavailable(io);
  if (unavailable !== undefined) {
    throw new UsageError(`the dashboard needs an interactive terminal: ${unavailable}; for plain output run \`mnist-gpujs bench --no-ui\``);
  }
  // Startup inputs fail here, as in plain mode, before anything is drawn.
  const models = loadServedModels(opts.modelPath, opts.numModels);
  const digit = readDigitPng(opts.imagePath, { invert: opts.invert });
  const peers = opts.peers.length > 0 ? await openPeers(opts.peers, opts.peerThreads) : [];
  const device = await openDevice(opts.backend, io);

  const controller = new BenchController({
    backend: device.description, // the backend, and the adapter behind a GPU backend
    modelPath: opts.modelPath,
    imagePath: opts.imagePath,
    numModels: opts.numModels,
    batchSize: opts.batchSize,
    warmup: opts.warmup,
    iters: opts.iters,
    peers: peers.length > 0,
    initial: { models, digit },
    deps: {
      loadModels: (n) => loadServedModels(opts.modelPath, n),
      loadImage: () => readDigitPng(opts.imagePath, { invert: opts.invert }),
      makePaths: (models, n) => makePaths(device, models, n),
      ...(peers.length > 0 ? {
        runPeers: (models, n, x, B, ours, signal) => benchmarkPeers(peers, models, n, x, B, ours, {
          warmup: opts.warmup, iters: opts.iters, chunks: dashboardChunks(opts.iters), signal,
        }),
      } : {}),
    },
  });
  const ink = render(createElement(App, { controller }), {
    stdout: io.stdout as NodeJS.WriteStream,
    stderr: process.stderr,
    stdin: process.stdin,
    // Ctrl-C arrives as a key (raw mode); the App quits on it with exit status 130
    exitOnCtrlC: false,
  });
  controller.start();
  try {
    const result = await ink.waitUntilExit();
    return typeof result === 'number' ? result : 0;
  } finally {
    // the run stops at its next chunk boundary; only then may the device go
    await controller.stop();
    device.destroy();
  }
}
