/** Opening the device a command asked for, as every command does it. */
import { openDevice as openEngineDevice, type BackendChoice, type Device } from '../engine/device-node.ts';
import type { CliIO } from './options.ts';

/** Opens the backend and shows its note, if any (webasm on an unpatched gpu.js), as one line on stderr. */
export async function openDevice(choice: BackendChoice, io: CliIO): Promise<Device> {
  const device = await openEngineDevice(choice);
  if (device.note) io.stderr.write(`mnist-gpujs: note: ${device.note}\n`);
  return device;
}
