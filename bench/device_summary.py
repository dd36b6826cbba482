#!/usr/bin/env python3
"""The GPU check's table (bench/device-check.sh): for B = 1 and B = 64, per N, this project's sequential and
single-dispatch paths on webgpu and webasm and PyTorch's loop and vmap, as p50 latency and requests/s, with
the speedups. Reads the JSON files the check wrote into the folder given; a missing or failed step shows as –.

    python3 bench/device_summary.py test-output/device-check > summary.md
"""
import json
import os
import sys


def load(folder, name):
    try:
        with open(os.path.join(folder, name + '.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def by_n(doc, key='sweep'):
    return {e['numModels']: e for e in doc[key]} if doc and key in doc else {}


def cell(stats):
    return f"{stats['p50Ms']:.2f} ms, {stats['requestsPerSecond']:.1f}/s" if stats else '–'


def ratio(a, b):
    return f'{a / b:.2f}×' if a and b else '–'


def table(folder, batch):
    gpu = by_n(load(folder, f'bench-webgpu-b{batch}'))
    cpu = by_n(load(folder, f'bench-webasm-b{batch}'))
    torch_doc = load(folder, f'torch-b{batch}')
    torch = by_n(torch_doc)
    bench = load(folder, f'bench-webgpu-b{batch}') or {}
    counts = sorted(set(gpu) | set(cpu) | set(torch))
    lines = [f'### B = {batch}', '',
             f"webgpu adapter: {bench.get('adapter', '–')}; PyTorch: "
             + (f"{torch_doc['version']} on {torch_doc['gpu'] or torch_doc['device']}" if torch_doc else '–'), '',
             '| N | webgpu sequential | webgpu single dispatch | speedup | webasm single dispatch | PyTorch loop | PyTorch vmap | vmap speedup | single dispatch / vmap (mean latency) |',
             '|---:|---|---|---:|---|---|---|---:|---:|']
    for n in counts:
        g, c, t = gpu.get(n), cpu.get(n), torch.get(n)
        seq = g['sequential'] if g else None
        sd = g['singleDispatch'] if g else None
        loop = t['loop'] if t else None
        vmap = t['vmap'] if t else None
        lines.append(f"| {n} | {cell(seq)} | {cell(sd)} | {ratio(seq and seq['meanMs'], sd and sd['meanMs'])} | "
                     f"{cell(c['singleDispatch'] if c else None)} | {cell(loop)} | {cell(vmap)} | "
                     f"{ratio(loop and loop['meanMs'], vmap and vmap['meanMs'])} | {ratio(sd and sd['meanMs'], vmap and vmap['meanMs'])} |")
    return '\n'.join(lines) + '\n'


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: device_summary.py FOLDER')
    folder = sys.argv[1]
    print(table(folder, 1))
    print(table(folder, 64))


if __name__ == '__main__':
    main()
