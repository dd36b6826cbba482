/** `mnist-gpujs bench`: options arrive parsed and validated by main.ts (see options.ts). */
import type { CliIO, BenchOptions } from '../options.ts';

export type { BenchOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs the command and returns its exit code. */
export async function run(_opts: BenchOptions, io: CliIO = processIO): Promise<number> {
  io.stderr.write('mnist-gpujs bench: not implemented yet\n');
  return 1;
}
