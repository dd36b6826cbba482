/** `mnist-gpujs predict`: options arrive parsed and validated by main.ts (see options.ts). */
import type { CliIO, PredictOptions } from '../options.ts';

export type { PredictOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs the command and returns its exit code. */
export async function run(_opts: PredictOptions, io: CliIO = processIO): Promise<number> {
  io.stderr.write('mnist-gpujs predict: not implemented yet\n');
  return 1;
}
