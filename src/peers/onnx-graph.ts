/**
 * The CNN as an ONNX graph for N models stacked, written from the model file's weights (N = 1: the plain model):
 * conv1 as one convolution with N×32 output channels over the shared input, conv2 as a grouped convolution
 * (group = N: model n's 64 filters see only model n's 32 channels), then per model a flatten in PyTorch's order and
 * fc1, fc2 as batched matmuls [N, B, ·] × [N, ·, ·], and log_softmax. Input `x` [B, 1, 28, 28], output `logp`
 * [N, B, 10]: this project's layout, so the outputs compare element by element.
 */
import { CONV1, CONV2, FC1, FC2, IMAGE_SIDE, type ParamSet } from '../model/cnn.ts';
import { transposeEach } from './peer.ts';

const FLOAT = 1;
const INT64 = 7;
const OPSET = 17;

interface Tensor { name: string; dims: number[]; dataType: number; rawData: Uint8Array }

function floatTensor(name: string, dims: number[], data: Float32Array): Tensor {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
}

function int64Tensor(name: string, values: number[]): Tensor {
  return { name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer) };
}

const ints = (name: string, v: number[]) => ({ name, type: 7 /* INTS */, ints: v });
const int = (name: string, v: number) => ({ name, type: 2 /* INT */, i: v });

/** The ModelProto's fields for `onnx-proto`'s encoder; `numModels` models stacked in `p`. */
export function stackedCnnGraph(p: ParamSet, numModels: number): object {
  const N = numModels;
  const pooled = (IMAGE_SIDE - 4) / 2; // two valid 3x3 convolutions, then a 2x2 pool: 12
  const initializer = [
    floatTensor('conv1.w', [N * CONV1.outChannels, CONV1.inChannels, 3, 3], p['conv1.weight']),
    floatTensor('conv1.b', [N * CONV1.outChannels], p['conv1.bias']),
    floatTensor('conv2.w', [N * CONV2.outChannels, CONV2.inChannels, 3, 3], p['conv2.weight']),
    floatTensor('conv2.b', [N * CONV2.outChannels], p['conv2.bias']),
    floatTensor('fc1.w', [N, FC1.inFeatures, FC1.outFeatures], transposeEach(p['fc1.weight'], N, FC1.outFeatures, FC1.inFeatures)),
    floatTensor('fc1.b', [N, 1, FC1.outFeatures], p['fc1.bias']),
    floatTensor('fc2.w', [N, FC2.inFeatures, FC2.outFeatures], transposeEach(p['fc2.weight'], N, FC2.outFeatures, FC2.inFeatures)),
    floatTensor('fc2.b', [N, 1, FC2.outFeatures], p['fc2.bias']),
    int64Tensor('flat.shape', [0, N, CONV2.outChannels * pooled * pooled]),
  ];
  const node = (opType: string, input: string[], output: string, attribute: object[] = []) => ({ opType, input, output: [output], attribute, name: output });
  const graph = {
    name: `mnist_cnn_x${N}`,
    node: [
      node('Conv', ['x', 'conv1.w', 'conv1.b'], 'c1', [ints('kernel_shape', [3, 3])]),
      node('Relu', ['c1'], 'r1'),
      node('Conv', ['r1', 'conv2.w', 'conv2.b'], 'c2', [ints('kernel_shape', [3, 3]), int('group', N)]),
      node('Relu', ['c2'], 'r2'),
      node('MaxPool', ['r2'], 'p', [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])]),
      // [B, N·64, 12, 12] → [B, N, 9216] (each model's channels, rows, columns: PyTorch's flatten) → [N, B, 9216]
      node('Reshape', ['p', 'flat.shape'], 'flat'),
      node('Transpose', ['flat'], 'per_model', [ints('perm', [1, 0, 2])]),
      node('MatMul', ['per_model', 'fc1.w'], 'f1'),
      node('Add', ['f1', 'fc1.b'], 'f1b'),
      node('Relu', ['f1b'], 'h'),
      node('MatMul', ['h', 'fc2.w'], 'f2'),
      node('Add', ['f2', 'fc2.b'], 'logits'),
      node('LogSoftmax', ['logits'], 'logp', [int('axis', -1)]),
    ],
    initializer,
    input: [valueInfo('x', ['B', 1, IMAGE_SIDE, IMAGE_SIDE])],
    output: [valueInfo('logp', [N, 'B', FC2.outFeatures])],
  };
  return { irVersion: 8, producerName: 'mnist-gpujs', opsetImport: [{ domain: '', version: OPSET }], graph };
}

function valueInfo(name: string, dims: Array<number | string>): object {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}
