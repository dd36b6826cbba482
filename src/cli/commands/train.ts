/** `mnist-gpujs train`: options arrive parsed and validated by main.ts (see options.ts). */
import type { CliIO, TrainOptions } from '../options.ts';

export type { TrainOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs the command and returns its exit code. */
export async function run(_opts: TrainOptions, io: CliIO = processIO): Promise<number> {
  io.stderr.write('mnist-gpujs train: not implemented yet\n');
  return 1;
}
