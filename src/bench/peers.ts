/**
 * `bench --peers`: other engines timed by the same harness, on the same models, image, B, warm-up and iterations,
 * right after this project's two paths. A peer's two ways must agree with each other and with this project's
 * log-probabilities within PEER_TOLERANCE; a mismatch is an AgreementError, as between our own paths.
 */
import type { Peer, PeerInfo } from '../peers/peer.ts';
import type { ModelSource } from '../model/stack.ts';
import { AgreementError, PEER_TOLERANCE, benchmarkModels, checkAgreement, type BenchConfig, type PathStats } from './harness.ts';

/** The engines as people read them, in every front end. */
export const ENGINE_LABEL: Record<PeerInfo['engine'], string> = { tfjs: 'TF.js', onnxruntime: 'onnxruntime' };

/** One peer's entry in the JSON's `peers[]`. */
export type PeerResult = PeerInfo & ({
  sequential: PathStats;
  /** the peer's single dispatch: one graph for all N models */
  stacked: PathStats;
  /** against this project's single-dispatch log-probabilities, over both of the peer's ways */
  agreement: { maxAbsDiff: number; tolerance: number };
  error?: undefined;
} | {
  /** the engine itself failed at this N and B (e.g. TF.js's wasm heap exhausted): reported, and the run goes on */
  error: string;
});

/**
 * Times each peer both ways for N models of `models` and checks it against `ours`, this project's log-probabilities
 * [N, B, 10] for the same request. Runs one peer after another; each peer's graphs are freed before the next. A
 * peer whose engine fails is reported with its error and the others go on; a disagreement is never swallowed.
 */
export async function benchmarkPeers(peers: readonly Peer[], models: ModelSource, N: number, x: Float32Array, B: number, ours: Float32Array,
  cfg: Omit<BenchConfig, 'tolerance'>): Promise<PeerResult[]> {
  const results: PeerResult[] = [];
  for (const peer of peers) {
    const { engine, version, backend, threads } = peer;
    let paths: Awaited<ReturnType<Peer['paths']>> | undefined;
    try {
      paths = await peer.paths(models, N);
      let maxAbsDiff = 0;
      const result = await benchmarkModels(paths, x, B, {
        ...cfg, tolerance: PEER_TOLERANCE,
        onEvent: (e) => {
          cfg.onEvent?.(e);
          // every timed output of both ways is held to ours, so a peer that drifts once warm is caught
          if (e.type === 'call' && e.phase === 'timed' && e.endsChunk) {
            maxAbsDiff = Math.max(maxAbsDiff, checkAgreement(ours, e.output, N, B, PEER_TOLERANCE).maxAbsDiff);
          }
        },
      });
      results.push({ engine, version, backend, threads, sequential: result.sequential, stacked: result.singleDispatch, agreement: { maxAbsDiff, tolerance: PEER_TOLERANCE } });
    } catch (err) {
      if (err instanceof AgreementError || cfg.signal?.aborted) throw err;
      results.push({ engine, version, backend, threads, error: (err instanceof Error ? err.message : String(err)).split('\n')[0]! });
    } finally {
      paths?.sequential.destroy();
      paths?.singleDispatch.destroy();
    }
  }
  return results;
}
