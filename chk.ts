import { Device } from './src/engine/device.ts';
import { cnnShapes, stackParams } from './src/engine/architecture.ts';
import { initParams } from './src/engine/init.ts';
import * as F from './kernels/fused-forward.ts';
const M = Number(process.argv[2] ?? 1), B = 1;
const d = await Device.open('webasm');
const p = stackParams(Array.from({ length: M }, (_, i) => initParams(i + 1)));
const s = cnnShapes(M, B, true);
const steps = [
  F.conv2dBiasReluResident(s.conv1, { weight: p['conv1.weight'], bias: p['conv1.bias'] }),
  F.conv2dBiasReluPoolResident(s.conv2, s.pool, { weight: p['conv2.weight'], bias: p['conv2.bias'] }),
  F.linearBiasReluResident(s.fc1, { weight: F.transposeLinearWeight(p['fc1.weight'], M, 128, 9216), bias: p['fc1.bias'] }),
  F.linearLogSoftmaxResident(s.fc2, { weight: p['fc2.weight'], bias: p['fc2.bias'] }),
];
const x = new Float32Array(784).map((_, i) => Math.sin(i));
for (let n = 1; n <= 4; n++) {
  const plan = d.plan(steps.slice(0, n), (ks, inp) => ks.reduce((h: unknown, k) => k(h), inp));
  for (let i = 0; i < 10; i++) await plan.run(x);
  const times: number[] = [];
  for (let i = 0; i < 60; i++) { const t0 = performance.now(); await plan.run(x); times.push(performance.now() - t0); }
  times.sort((a, b) => a - b);
  console.log(`M=${M} steps 1..${n}: p50 ${times[30].toFixed(2)} ms, min ${times[0].toFixed(2)} (${plan.executorKind})`);
  plan.destroy();
}
d.destroy();
