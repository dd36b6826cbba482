/** `mnist-gpujs dashboard`: options arrive parsed and validated by main.ts (see options.ts). */
import type { CliIO, DashboardOptions } from '../options.ts';

export type { DashboardOptions };

const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs the command and returns its exit code. */
export async function run(_opts: DashboardOptions, io: CliIO = processIO): Promise<number> {
  io.stderr.write('mnist-gpujs dashboard: not implemented yet\n');
  return 1;
}
