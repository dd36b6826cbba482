#!/usr/bin/env node
// The package ships TypeScript sources; tsx loads them without a build step,
// so `npx mnist-gpujs` works in a fresh clone right after `npm install`.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv);
