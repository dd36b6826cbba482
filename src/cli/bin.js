#!/usr/bin/env node
// The package ships TypeScript sources; tsx loads them without a build step, so `npx mnist-gpujs` works in a
// fresh clone right after `npm install`. The package's own tsconfig is named explicitly: tsx would otherwise
// look for one in the user's working directory and compile the Ink (.tsx) files with the wrong JSX mode.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../../tsconfig.json', import.meta.url)) });
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv);
