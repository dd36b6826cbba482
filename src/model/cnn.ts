/**
 * The PyTorch-examples MNIST CNN, described once and knowing no device: its layers, its parameters' names and
 * shapes (PyTorch's `state_dict`), the image size and the classes. Model files, data, the engine and the front
 * ends all derive their sizes from here.
 *
 * input [B,1,28,28] → conv1 (1→32, 3x3) → ReLU → conv2 (32→64, 3x3) → ReLU → max_pool 2x2
 * → dropout(0.25) → flatten (9216) → fc1 (9216→128) → ReLU → dropout(0.5) → fc2 (128→10) → log_softmax
 */
export const IMAGE_SIDE = 28;
export const NUM_CLASSES = 10;

export const CONV1 = { inChannels: 1, outChannels: 32, kernel: 3 } as const;
export const CONV2 = { inChannels: 32, outChannels: 64, kernel: 3 } as const;
export const POOL = 2;
export const FC1 = { inFeatures: 9216, outFeatures: 128 } as const;
export const FC2 = { inFeatures: 128, outFeatures: NUM_CLASSES } as const;
export const DROPOUT1 = 0.25;
export const DROPOUT2 = 0.5;

/** A learnable tensor of one model, named and shaped as in PyTorch's `state_dict`. */
export interface ParamSpec {
  name: ParamName;
  shape: readonly number[];
}

export type ParamName =
  | 'conv1.weight' | 'conv1.bias' | 'conv2.weight' | 'conv2.bias'
  | 'fc1.weight' | 'fc1.bias' | 'fc2.weight' | 'fc2.bias';

/** State-dict order, as PyTorch lists it. */
export const PARAM_SPECS: readonly ParamSpec[] = [
  { name: 'conv1.weight', shape: [CONV1.outChannels, CONV1.inChannels, CONV1.kernel, CONV1.kernel] },
  { name: 'conv1.bias', shape: [CONV1.outChannels] },
  { name: 'conv2.weight', shape: [CONV2.outChannels, CONV2.inChannels, CONV2.kernel, CONV2.kernel] },
  { name: 'conv2.bias', shape: [CONV2.outChannels] },
  { name: 'fc1.weight', shape: [FC1.outFeatures, FC1.inFeatures] },
  { name: 'fc1.bias', shape: [FC1.outFeatures] },
  { name: 'fc2.weight', shape: [FC2.outFeatures, FC2.inFeatures] },
  { name: 'fc2.bias', shape: [FC2.outFeatures] },
];

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** One model's parameters (or M models' stacked along a leading dimension), flat float32, PyTorch layout. */
export type ParamSet = Record<ParamName, Float32Array>;


/** Total parameter count of one model. */
export function paramCount(): number {
  return PARAM_SPECS.reduce((n, s) => n + elementCount(s.shape), 0);
}

/** The architecture, printed the way PyTorch prints the example's `Net` (module definition order). */
export function formatArchitecture(): string {
  return [
    'Net(',
    `  (conv1): Conv2d(${CONV1.inChannels}, ${CONV1.outChannels}, kernel_size=(${CONV1.kernel}, ${CONV1.kernel}), stride=(1, 1))`,
    `  (conv2): Conv2d(${CONV2.inChannels}, ${CONV2.outChannels}, kernel_size=(${CONV2.kernel}, ${CONV2.kernel}), stride=(1, 1))`,
    `  (dropout1): Dropout(p=${DROPOUT1}, inplace=False)`,
    `  (dropout2): Dropout(p=${DROPOUT2}, inplace=False)`,
    `  (fc1): Linear(in_features=${FC1.inFeatures}, out_features=${FC1.outFeatures}, bias=True)`,
    `  (fc2): Linear(in_features=${FC2.inFeatures}, out_features=${FC2.outFeatures}, bias=True)`,
    ')',
  ].join('\n');
}
