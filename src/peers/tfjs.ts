/**
 * TensorFlow.js 4.22 on its WebAssembly backend (XNNPACK, SIMD; no threads in Node) as a peer. Sequential: N
 * graphs of the one model (fused conv2d + bias + ReLU, max-pool, fused matmuls). Stacked: one graph for all N:
 * conv1 with N×32 output channels over the shared input; conv2 as a grouped convolution (group = N), written as
 * nine shifted 3x3 taps, each a batched matmul [N, B·576, 32] × [N, 32, 64], since TF.js has no grouped conv2d;
 * fc1 and fc2 as batched matmuls [N, B, ·] × [N, ·, ·]. Inputs and weights are NHWC, as TF.js wants; the flatten
 * before fc1 follows PyTorch's (channel, row, column) order, so outputs equal the model's.
 */
import { createRequire } from 'node:module';
import { CONV1, CONV2, FC1, FC2, IMAGE_SIDE, type ParamSet } from '../model/cnn.ts';
import type { ModelSource } from '../model/stack.ts';
import { PeerRunner, concatenated, requirePeerPackage, transposeEach, type Importer, type Peer } from './peer.ts';

const K = 3;
const CONV1_SIDE = IMAGE_SIDE - 2;
const CONV2_SIDE = CONV1_SIDE - 2;

/** PyTorch's conv weight [N·outC, inC, K, K] → TF's [K, K, inC, N·outC]. */
function filterHwio(w: Float32Array, outC: number, inC: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let o = 0; o < outC; o++) for (let i = 0; i < inC; i++) for (let ky = 0; ky < K; ky++) for (let kx = 0; kx < K; kx++) {
    out[((ky * K + kx) * inC + i) * outC + o] = w[((o * inC + i) * K + ky) * K + kx]!;
  }
  return out;
}

/** conv2's weight for N models [N, 64, 32, K, K] → per tap [K·K, N, 32, 64]: tap t's batched matmul operand. */
function tapsPerModel(w: Float32Array, N: number): Float32Array {
  const { inChannels: inC, outChannels: outC } = CONV2;
  const out = new Float32Array(w.length);
  for (let n = 0; n < N; n++) for (let o = 0; o < outC; o++) for (let i = 0; i < inC; i++) for (let t = 0; t < K * K; t++) {
    out[((t * N + n) * inC + i) * outC + o] = w[(((n * outC + o) * inC + i) * K * K) + t]!;
  }
  return out;
}

export async function openPeer(_threads: number, importer: Importer): Promise<Peer> {
  const tfModule = await requirePeerPackage('tfjs', '@tensorflow/tfjs-core', importer);
  await requirePeerPackage('tfjs', '@tensorflow/tfjs-backend-wasm', importer);
  const tf = tfModule.default ?? tfModule;
  if (!(await tf.setBackend('wasm'))) throw new Error('TF.js: the wasm backend did not initialise');
  await tf.ready();
  const require = createRequire(import.meta.url);
  const wasmVersion = (require('@tensorflow/tfjs-backend-wasm/package.json') as { version: string }).version;

  /** One model's graph: weights uploaded once, a call runs the forward in a tidy scope. */
  const single = (p: ParamSet) => {
    const w = {
      c1: tf.tensor4d(filterHwio(p['conv1.weight'], CONV1.outChannels, CONV1.inChannels), [K, K, CONV1.inChannels, CONV1.outChannels]),
      b1: tf.tensor1d(p['conv1.bias']),
      c2: tf.tensor4d(filterHwio(p['conv2.weight'], CONV2.outChannels, CONV2.inChannels), [K, K, CONV2.inChannels, CONV2.outChannels]),
      b2: tf.tensor1d(p['conv2.bias']),
      f1: tf.tensor2d(transposeEach(p['fc1.weight'], 1, FC1.outFeatures, FC1.inFeatures), [FC1.inFeatures, FC1.outFeatures]),
      fb1: tf.tensor1d(p['fc1.bias']),
      f2: tf.tensor2d(transposeEach(p['fc2.weight'], 1, FC2.outFeatures, FC2.inFeatures), [FC2.inFeatures, FC2.outFeatures]),
      fb2: tf.tensor1d(p['fc2.bias']),
    };
    const forward = async (x: Float32Array, B: number): Promise<Float32Array> => {
      const logp = tf.tidy(() => {
        const input = tf.tensor4d(x, [B, IMAGE_SIDE, IMAGE_SIDE, 1]);
        const h1 = tf.fused.conv2d({ x: input, filter: w.c1, strides: 1, pad: 'valid', bias: w.b1, activation: 'relu' });
        const h2 = tf.fused.conv2d({ x: h1, filter: w.c2, strides: 1, pad: 'valid', bias: w.b2, activation: 'relu' });
        const pooled = tf.maxPool(h2, 2, 2, 'valid');
        const flat = tf.reshape(tf.transpose(pooled, [0, 3, 1, 2]), [B, FC1.inFeatures]);
        const h3 = tf.fused.matMul({ a: flat, b: w.f1, bias: w.fb1, activation: 'relu' });
        return tf.logSoftmax(tf.fused.matMul({ a: h3, b: w.f2, bias: w.fb2 }));
      });
      const data = (await logp.data()) as Float32Array;
      logp.dispose();
      return data;
    };
    return { forward, dispose: () => Object.values(w).forEach((t: any) => t.dispose()) };
  };

  /** All N models' graph in one. */
  const stacked = (p: ParamSet, N: number) => {
    const w = {
      c1: tf.tensor4d(filterHwio(p['conv1.weight'], N * CONV1.outChannels, CONV1.inChannels), [K, K, CONV1.inChannels, N * CONV1.outChannels]),
      b1: tf.tensor1d(p['conv1.bias']),
      taps: tf.tensor4d(tapsPerModel(p['conv2.weight'], N), [K * K, N, CONV2.inChannels, CONV2.outChannels]),
      b2: tf.tensor3d(p['conv2.bias'], [N, 1, CONV2.outChannels]),
      f1: tf.tensor3d(transposeEach(p['fc1.weight'], N, FC1.outFeatures, FC1.inFeatures), [N, FC1.inFeatures, FC1.outFeatures]),
      fb1: tf.tensor3d(p['fc1.bias'], [N, 1, FC1.outFeatures]),
      f2: tf.tensor3d(transposeEach(p['fc2.weight'], N, FC2.outFeatures, FC2.inFeatures), [N, FC2.inFeatures, FC2.outFeatures]),
      fb2: tf.tensor3d(p['fc2.bias'], [N, 1, FC2.outFeatures]),
    };
    const tapWeights = tf.unstack(w.taps); // K·K tensors [N, 32, 64]
    const forward = async (x: Float32Array, B: number): Promise<Float32Array> => {
      const logp = tf.tidy(() => {
        const input = tf.tensor4d(x, [B, IMAGE_SIDE, IMAGE_SIDE, 1]);
        const h1 = tf.fused.conv2d({ x: input, filter: w.c1, strides: 1, pad: 'valid', bias: w.b1, activation: 'relu' });
        // each tap: the shifted window [B, 24, 24, N·32] → [N, B·576, 32], each model's channels as its own matrix
        let sum = null;
        for (let t = 0; t < K * K; t++) {
          const shifted = tf.slice(h1, [0, Math.floor(t / K), t % K, 0], [B, CONV2_SIDE, CONV2_SIDE, N * CONV1.outChannels]);
          const perModel = tf.transpose(tf.reshape(shifted, [B * CONV2_SIDE * CONV2_SIDE, N, CONV1.outChannels]), [1, 0, 2]);
          const product = tf.matMul(perModel, tapWeights[t]);
          sum = sum === null ? product : tf.add(sum, product);
        }
        const h2 = tf.relu(tf.add(sum, w.b2)); // [N, B·576, 64]
        const pooled = tf.maxPool(tf.reshape(h2, [N * B, CONV2_SIDE, CONV2_SIDE, CONV2.outChannels]), 2, 2, 'valid');
        const flat = tf.reshape(tf.transpose(pooled, [0, 3, 1, 2]), [N, B, FC1.inFeatures]);
        const h3 = tf.relu(tf.add(tf.matMul(flat, w.f1), w.fb1));
        return tf.logSoftmax(tf.add(tf.matMul(h3, w.f2), w.fb2));
      });
      const data = (await logp.data()) as Float32Array;
      logp.dispose();
      return data;
    };
    return { forward, dispose: () => [...Object.values(w), ...tapWeights].forEach((t: any) => t.dispose()) };
  };

  return {
    engine: 'tfjs', version: `${tf.version_core} (tfjs-backend-wasm ${wasmVersion})`, backend: 'wasm', threads: 1,
    async paths(models: ModelSource, N: number) {
      const singles = Array.from({ length: N }, (_, m) => single(models.slice(m, 1)));
      const all = stacked(models.slice(0, N), N);
      return {
        numModels: N,
        sequential: new PeerRunner('sequential', N, N, 'tfjs graphs', async (x, B) => {
          const parts: Float32Array[] = [];
          for (const s of singles) parts.push(await s.forward(x, B));
          return concatenated(parts);
        }, () => singles.forEach((s) => s.dispose())),
        singleDispatch: new PeerRunner('single-dispatch', N, 1, 'tfjs stacked graph', all.forward, all.dispose),
      };
    },
  };
}
