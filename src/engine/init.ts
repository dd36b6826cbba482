/**
 * PyTorch's default initialisation for Conv2d and Linear: weights kaiming-uniform with a = √5, which works out
 * to U(±1/√fan_in), and biases U(±1/√fan_in); seeded, so the same seed gives the same model.
 */
import { PARAM_SPECS, elementCount, type ParamName, type ParamSet } from '../model/cnn.ts';
import { makeRng } from './random.ts';

/** fan_in of the layer a parameter belongs to: in_channels · k · k for a conv, in_features for a linear. */
function fanIn(layer: string): number {
  const weight = PARAM_SPECS.find((s) => s.name === `${layer}.weight`)!;
  return elementCount(weight.shape.slice(1));
}

export function initParams(seed: number): ParamSet {
  const rng = makeRng(seed);
  const params = {} as ParamSet;
  for (const spec of PARAM_SPECS) {
    const bound = 1 / Math.sqrt(fanIn(spec.name.split('.')[0]));
    const data = new Float32Array(elementCount(spec.shape));
    for (let i = 0; i < data.length; i++) data[i] = (rng() * 2 - 1) * bound;
    params[spec.name as ParamName] = data;
  }
  return params;
}
