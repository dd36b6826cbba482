/**
 * onnxruntime-node (its CPU execution provider, the binary inside the package) as a peer: N sessions of the
 * one-model graph (sequential) and one session of the stacked graph (onnx-graph.ts). Threads: each session's
 * intra-op pool gets `threads`; one by default, since several sessions' pools on two cores fight (measured: 2 threads
 * made N = 8 seven times slower than 1).
 */
import { createRequire } from 'node:module';
import { NUM_CLASSES } from '../model/cnn.ts';
import type { ModelSource } from '../model/stack.ts';
import { stackedCnnGraph } from './onnx-graph.ts';
import { PeerRunner, concatenated, requirePeerPackage, type Importer, type Peer } from './peer.ts';

export async function openPeer(threads: number, importer: Importer): Promise<Peer> {
  const ort = await requirePeerPackage('onnxruntime', 'onnxruntime-node', importer);
  const proto = await requirePeerPackage('onnxruntime', 'onnx-proto', importer);
  const { onnx } = (proto.default ?? proto) as { onnx: { ModelProto: { encode(m: object): { finish(): Uint8Array }; fromObject(o: object): object } } };
  const version = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  const ortApi = ort.default ?? ort;

  const session = async (params: Parameters<typeof stackedCnnGraph>[0], n: number) => {
    const bytes = onnx.ModelProto.encode(onnx.ModelProto.fromObject(stackedCnnGraph(params, n))).finish();
    return ortApi.InferenceSession.create(bytes, {
      executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    });
  };
  const run = async (s: any, x: Float32Array, B: number): Promise<Float32Array> => {
    const out = await s.run({ x: new ortApi.Tensor('float32', x, [B, 1, 28, 28]) });
    return new Float32Array(out.logp.data as Float32Array);
  };

  return {
    engine: 'onnxruntime', version, backend: 'cpu', threads,
    async paths(models: ModelSource, N: number) {
      const singles: any[] = [];
      for (let m = 0; m < N; m++) singles.push(await session(models.slice(m, 1), 1));
      const stacked = await session(models.slice(0, N), N);
      const release = (s: any) => void s.release?.();
      return {
        numModels: N,
        sequential: new PeerRunner('sequential', N, N, 'onnxruntime sessions', async (x, B) => {
          const parts: Float32Array[] = [];
          for (const s of singles) parts.push(await run(s, x, B));
          return concatenated(parts);
        }, () => singles.forEach(release)),
        singleDispatch: new PeerRunner('single-dispatch', N, 1, 'onnxruntime stacked graph', async (x, B) => {
          const out = await run(stacked, x, B);
          if (out.length !== N * B * NUM_CLASSES) throw new Error(`onnxruntime: the stacked graph gave ${out.length} values, expected ${N * B * NUM_CLASSES}`);
          return out;
        }, () => release(stacked)),
      };
    },
  };
}
