#!/usr/bin/env python3
"""The PyTorch anchor for bench/device-check.sh: the PyTorch-examples MNIST CNN with this project's shipped
weights, N models served one after another (a loop over N modules) against all N in one call
(torch.func.vmap over stack_module_state), at the same N and B as `mnist-gpujs bench`, timed with CUDA
synchronisation around every call.

    python3 bench/torch_anchor.py --model fixtures/mnist_cnn.safetensors --image fixtures/1.png \
        --sweep 1,2,4,8,16,32,64 --batch-size 1 --iters 100 --warmup 10 > torch.json

`--check-inputs` needs only numpy: it reads the weights and the image the way the timed run does and checks a
float64 numpy forward of them against log-probabilities given with `--expect` (the JSON `mnist-gpujs predict
--json` prints), so the anchor's inputs are known to match the engine's before any GPU time is spent.

It reads safetensors and the fixtures' 8-bit gray PNGs itself, so it needs no package beyond torch (or numpy).
"""
import argparse
import json
import math
import struct
import sys
import time
import zlib

from torch_cnn import MEAN, STD, cnn_class
# each tensor's rank in one model; a stacked file adds a leading model dimension
RANKS = {'conv1.weight': 4, 'conv1.bias': 1, 'conv2.weight': 4, 'conv2.bias': 1, 'fc1.weight': 2, 'fc1.bias': 1, 'fc2.weight': 2, 'fc2.bias': 1}


def read_safetensors(path):
    """{name: (shape, little-endian float32 bytes)} of model 0 of an F32 model file (single or stacked)."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, rank in RANKS.items():
        t = header[name]
        if t['dtype'] != 'F32':
            sys.exit(f'torch_anchor: {path}: {name} is {t["dtype"]}, expected F32')
        begin, _ = t['data_offsets']
        shape = t['shape'][1:] if len(t['shape']) == rank + 1 else t['shape']
        out[name] = (shape, data[begin:begin + 4 * math.prod(shape)])
    return out


def read_gray_png(path):
    """28x28 pixels 0..255 of an 8-bit gray, non-interlaced PNG (what the fixtures are)."""
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:8] != b'\x89PNG\r\n\x1a\n':
        sys.exit(f'torch_anchor: {path}: not a PNG')
    pos, idat, width, height = 8, b'', 0, 0
    while pos < len(raw):
        (length,) = struct.unpack('>I', raw[pos:pos + 4])
        kind = raw[pos + 4:pos + 8]
        body = raw[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height, depth, color, _, _, interlace = struct.unpack('>IIBBBBB', body)
            if depth != 8 or color != 0 or interlace != 0:
                sys.exit(f'torch_anchor: {path}: only 8-bit gray non-interlaced PNGs are read here')
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    rows = zlib.decompress(idat)
    pixels, prev = [], [0] * width
    for y in range(height):
        line = rows[y * (width + 1):(y + 1) * (width + 1)]
        filt, cur = line[0], list(line[1:])
        for x in range(width):
            a = cur[x - 1] if x > 0 else 0
            b = prev[x]
            c = prev[x - 1] if x > 0 else 0
            if filt == 1:
                cur[x] = (cur[x] + a) & 255
            elif filt == 2:
                cur[x] = (cur[x] + b) & 255
            elif filt == 3:
                cur[x] = (cur[x] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[x] = (cur[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        pixels.extend(cur)
        prev = cur
    if width != 28 or height != 28:
        sys.exit(f'torch_anchor: {path} is {width}x{height}, expected 28x28')
    return pixels


def check_inputs(args):
    """A float64 numpy forward of model 0 against the engine's log-probabilities."""
    import numpy as np
    params = {k: np.frombuffer(v[1], dtype='<f4').astype(np.float64).reshape(v[0]) for k, v in read_safetensors(args.model).items()}
    x = (np.array(read_gray_png(args.image), dtype=np.float64).reshape(1, 28, 28) / 255 - MEAN) / STD

    def conv(x, w, b):
        c_out, c_in, k, _ = w.shape
        h = x.shape[1] - k + 1
        cols = np.stack([x[:, i:i + h, j:j + h] for i in range(k) for j in range(k)], axis=1)  # [c_in, k*k, h, h]
        return np.einsum('ckhw,ock->ohw', cols, w.reshape(c_out, c_in, k * k)) + b[:, None, None]

    h = np.maximum(conv(x, params['conv1.weight'], params['conv1.bias']), 0)
    h = np.maximum(conv(h, params['conv2.weight'], params['conv2.bias']), 0)
    h = h.reshape(64, 12, 2, 12, 2).max(axis=(2, 4)).reshape(-1)
    h = np.maximum(params['fc1.weight'] @ h + params['fc1.bias'], 0)
    z = params['fc2.weight'] @ h + params['fc2.bias']
    logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
    with open(args.expect) as f:
        doc = json.load(f)
    image = next(i for i in doc['images'] if i['path'].endswith(args.image.split('/')[-1]))
    engine = np.log(np.array(image['models'][0]['probabilities']))
    diff = float(np.abs(engine - logp).max())
    print(json.dumps({'check': 'inputs', 'model': args.model, 'image': args.image, 'maxAbsDiff': diff, 'tolerance': 1e-4,
                      'prediction': int(logp.argmax()), 'enginePrediction': image['models'][0]['prediction']}))
    if not diff <= 1e-4:
        sys.exit(f'torch_anchor: the numpy forward differs from the engine by {diff:.2e} (tolerance 1e-4)')


def run_torch(args):
    import torch
    from torch.func import functional_call, stack_module_state, vmap

    Net = cnn_class()  # in eval mode below: dropout off

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    weights = {k: torch.frombuffer(bytearray(v[1]), dtype=torch.float32).reshape(v[0]) for k, v in read_safetensors(args.model).items()}
    image = (torch.tensor(read_gray_png(args.image), dtype=torch.float32).reshape(1, 1, 28, 28) / 255 - MEAN) / STD
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    results = []
    for N in args.sweep:
        models = []
        for _ in range(N):
            m = Net().to(device).eval()
            m.load_state_dict(weights)
            models.append(m)
        params, buffers = stack_module_state(models)
        base = Net().to('meta')
        x = image.repeat(args.batch_size, 1, 1, 1).to(device)

        def loop():
            return [m(x) for m in models]

        def stacked():
            return vmap(lambda p, b: functional_call(base, (p, b), (x,)), in_dims=(0, 0))(params, buffers)

        row = {'numModels': N, 'batchSize': args.batch_size}
        with torch.inference_mode():
            outputs = {}
            for name, fn in (('loop', loop), ('vmap', stacked)):
                for _ in range(args.warmup):
                    fn()
                sync()
                samples = []
                for _ in range(args.iters):
                    t0 = time.perf_counter()
                    out = fn()
                    sync()
                    samples.append((time.perf_counter() - t0) * 1000)
                outputs[name] = torch.stack(out) if isinstance(out, list) else out
                samples.sort()
                mean = sum(samples) / len(samples)
                row[name] = {'meanMs': mean, 'p50Ms': samples[math.ceil(0.5 * len(samples)) - 1],
                             'p95Ms': samples[math.ceil(0.95 * len(samples)) - 1], 'samples': len(samples),
                             'requestsPerSecond': 1000 / mean, 'modelEvaluationsPerSecond': N * args.batch_size * 1000 / mean}
            row['maxAbsDiff'] = float((outputs['loop'] - outputs['vmap']).abs().max())
            row['prediction'] = int(outputs['vmap'][0, 0].argmax())
        row['speedup'] = row['loop']['meanMs'] / row['vmap']['meanMs']
        results.append(row)
        print(f'torch_anchor: N={N} B={args.batch_size}: loop {row["loop"]["meanMs"]:.3f} ms, vmap {row["vmap"]["meanMs"]:.3f} ms', file=sys.stderr)
    gpu = torch.cuda.get_device_name(0) if device.type == 'cuda' else None
    print(json.dumps({'engine': 'pytorch', 'version': torch.__version__, 'device': device.type, 'gpu': gpu,
                      'cuda': torch.version.cuda, 'iters': args.iters, 'warmup': args.warmup, 'sweep': results}, indent=2))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='fixtures/mnist_cnn.safetensors')
    p.add_argument('--image', default='fixtures/1.png')
    p.add_argument('--sweep', default='1,2,4,8,16,32,64', type=lambda s: [int(v) for v in s.split(',')])
    p.add_argument('--batch-size', default=1, type=int)
    p.add_argument('--iters', default=100, type=int)
    p.add_argument('--warmup', default=10, type=int)
    p.add_argument('--check-inputs', action='store_true', help='check the inputs against --expect with numpy; no torch')
    p.add_argument('--expect', help='`mnist-gpujs predict --json` output for --image and --model')
    args = p.parse_args()
    if args.check_inputs:
        if not args.expect:
            sys.exit('torch_anchor: --check-inputs needs --expect')
        check_inputs(args)
    else:
        run_torch(args)


if __name__ == '__main__':
    main()
