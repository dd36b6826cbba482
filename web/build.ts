/**
 * `npm run build:web`: bundles the browser page's engine (web/main.ts and the engine core it imports) with esbuild
 * into web/dist/mnist-gpujs.js, one ES module that `serve` hands out at /web/mnist-gpujs.js.
 *
 * - Unminified, names kept as written: GPU.js compiles each kernel from its function's source text, so a
 *   minifier's renaming would reach the kernels (the page's tests compile every kernel of the bundle).
 * - gpu.js is bundled from its sources (src/index.js), the code Node runs with this project's patch applied,
 *   not from its prebuilt browser file. Its Node-only corners (the headless-gl addon, webasm's worker threads and
 *   CPU count) are replaced by empty modules: a browser never takes those branches.
 * - No external URL: everything the page needs comes from the server that serves it.
 */
import { build, type Metafile, type Plugin } from 'esbuild';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB_DIR = dirname(fileURLToPath(import.meta.url));
export const WEB_DIST = join(WEB_DIR, 'dist');
export const BUNDLE_NAME = 'mnist-gpujs.js';
/** What gpu.js requires only in Node. */
const NODE_ONLY_IN_GPUJS = ['gl', 'os', 'worker_threads'];

const nodeOnlyStubs: Plugin = {
  name: 'gpu.js node-only modules',
  setup(b) {
    const filter = new RegExp(`^(${NODE_ONLY_IN_GPUJS.join('|')})$`);
    b.onResolve({ filter }, (args) => (/[\\/]gpu\.js[\\/]/.test(args.importer) ? { path: args.path, namespace: 'node-only' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'node-only' }, () => ({ contents: 'module.exports = {};', loader: 'js' }));
  },
};

export interface WebBuild {
  file: string;
  bytes: number;
  metafile: Metafile;
}

/**
 * Builds the bundle into `outDir` (default web/dist/) and returns what went into it. A module that imports a Node
 * built-in fails the build (esbuild resolves for the browser). `entry` is for tests that bundle another module.
 */
export async function buildWeb(outDir = WEB_DIST, entry = join(WEB_DIR, 'main.ts')): Promise<WebBuild> {
  const require = createRequire(import.meta.url);
  const file = join(outDir, BUNDLE_NAME);
  const result = await build({
    entryPoints: [entry],
    outfile: file,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: false,
    keepNames: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'silent',
    alias: { 'gpu.js': require.resolve('gpu.js/src/index.js') },
    plugins: [nodeOnlyStubs],
  });
  const bytes = result.metafile.outputs[relative(process.cwd(), file)]?.bytes ?? Object.values(result.metafile.outputs)[0]!.bytes;
  return { file, bytes, metafile: result.metafile };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const { file, bytes } = await buildWeb();
    process.stdout.write(`built ${relative(process.cwd(), file)} (${(bytes / 1024).toFixed(0)} KiB)\n`);
  } catch (err) {
    process.stderr.write(`build:web: ${(err as Error).message.split('\n')[0]}\n`);
    process.exit(1);
  }
}
