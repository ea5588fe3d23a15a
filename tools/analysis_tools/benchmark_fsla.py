"""Benchmark feature-space local attention (FSLA) against Swin's W-MSA.

For the four Swin-T stage shapes at a given input size, times one FSLA layer
and one window attention layer of the same dims (the one BOAT-Swin runs:
``PaddedShiftWindowMSA``, mmpretrain's ``ShiftWindowMSA``, window 7, no
shift) in the same process, interleaved, and prints their
forward and forward+backward times and the ratio FSLA / W-MSA. Report
ratios: absolute times on shared machines are noisy.

    python tools/analysis_tools/benchmark_fsla.py    # 224 and 800x1333
    python tools/analysis_tools/benchmark_fsla.py --sizes 224x224 --batch 8
    python tools/analysis_tools/benchmark_fsla.py --device cuda --amp bf16
    python tools/analysis_tools/benchmark_fsla.py --no-compile   # eager only

The last column times ``torch.compile(fsla, fullgraph=True)`` against the
same layer in eager mode (forward; compiled once per shape, untimed).
"""
import argparse
import statistics

import torch

from mmboat.models.layers import (FeatureSpaceLocalAttention,
                                  PaddedShiftWindowMSA)
from mmboat.utils.benchmark import timed

SWIN_T = [(96, 3), (192, 6), (384, 12), (768, 24)]  # (channels, heads)


def parse_size(text):
    h, _, w = text.partition('x')
    return int(h), int(w or h)


def stage_grids(h, w, size_divisor=32):
    """Token grids of the 4 stages for an image padded to ``size_divisor``."""
    h = -(-h // size_divisor) * size_divisor
    w = -(-w // size_divisor) * size_divisor
    return [(h // s, w // s) for s in (4, 8, 16, 32)]


def build_wmsa(channels, heads):
    """BOAT-Swin's own window attention (mmpretrain's), no shift."""
    return PaddedShiftWindowMSA(channels, heads, window_size=7, shift_size=0)


def bench_pair(layers, x, hw, repeats, backward, device, amp):
    """Median seconds of each layer, runs interleaved to share the noise."""

    def step(layer):
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            out = layer(x, hw)
        if backward:
            out.float().sum().backward()

    ctx = torch.enable_grad if backward else torch.no_grad
    times = [[] for _ in layers]
    with ctx():
        for layer in layers:  # warm-up
            step(layer)
        for _ in range(repeats):
            for i, layer in enumerate(layers):
                times[i].append(timed(lambda: step(layer), device))
    return [statistics.median(t) for t in times]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument(
        '--sizes',
        nargs='+',
        default=['224x224', '800x1333'],
        help='input image sizes HxW')
    parser.add_argument(
        '--batch',
        type=int,
        nargs='+',
        default=None,
        help='batch size per input size (default: 8 for '
        'inputs up to 224x224, 1 for larger ones)')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--stages', type=int, nargs='+', default=[0, 1, 2, 3])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--amp', choices=['bf16', 'fp16'], default=None)
    parser.add_argument(
        '--no-compile',
        action='store_true',
        help='skip the torch.compile(fsla, fullgraph=True) column (its '
        'first call per shape compiles: up to a minute each on a CPU)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch CPU threads (default: torch default)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = dict(bf16=torch.bfloat16, fp16=torch.float16).get(args.amp)
    print(f'device={device} threads={torch.get_num_threads()} amp={args.amp} '
          f'torch={torch.__version__}')
    header = (f'{"input":>9} {"batch":>5} {"grid":>9} {"C":>4} {"h":>3} | '
              f'{"W-MSA fwd":>10} {"FSLA fwd":>10} {"ratio":>6} | '
              f'{"W-MSA f+b":>10} {"FSLA f+b":>10} {"ratio":>6}')
    if not args.no_compile:
        header += f' | {"compiled fwd":>12} {"/ eager":>7}'
    print(header)
    print('-' * len(header))
    ratios = {'fwd': [], 'f+b': [], 'compiled': []}
    for i, size in enumerate(args.sizes):
        H, W = parse_size(size)
        if args.batch:
            batch = args.batch[min(i, len(args.batch) - 1)]
        else:
            batch = 8 if H * W <= 224 * 224 else 1
        grids = stage_grids(H, W)
        for stage in args.stages:
            (gh, gw), (c, heads) = grids[stage], SWIN_T[stage]
            torch.manual_seed(0)
            fsla = FeatureSpaceLocalAttention(c, heads).to(device)
            wmsa = build_wmsa(c, heads).to(device)
            x = torch.randn(batch, gh * gw, c, device=device)
            fwd = bench_pair([wmsa, fsla], x, (gh, gw), args.repeats, False,
                             device, amp)
            xg = x.clone().requires_grad_()
            fb = bench_pair([wmsa, fsla], xg, (gh, gw), args.repeats, True,
                            device, amp)
            ratios['fwd'].append(fwd[1] / fwd[0])
            ratios['f+b'].append(fb[1] / fb[0])
            line = (f'{size:>9} {batch:>5} {gh:>4}x{gw:<4} {c:>4} {heads:>3} '
                    f'| {fwd[0] * 1e3:>8.1f}ms {fwd[1] * 1e3:>8.1f}ms '
                    f'{fwd[1] / fwd[0]:>5.2f}x | {fb[0] * 1e3:>8.1f}ms '
                    f'{fb[1] * 1e3:>8.1f}ms {fb[1] / fb[0]:>5.2f}x')
            if not args.no_compile:
                compiled = torch.compile(fsla, fullgraph=True)
                eager, comp = bench_pair([fsla, compiled], x, (gh, gw),
                                         args.repeats, False, device, amp)
                ratios['compiled'].append(comp / eager)
                line += f' | {comp * 1e3:>10.1f}ms {comp / eager:>6.2f}x'
            print(line, flush=True)
    gmean = {k: statistics.geometric_mean(v) for k, v in ratios.items() if v}
    print(f'geometric mean ratio FSLA / W-MSA: forward {gmean["fwd"]:.2f}x, '
          f'forward+backward {gmean["f+b"]:.2f}x')
    if 'compiled' in gmean:
        print('geometric mean ratio compiled FSLA / eager FSLA (forward): '
              f'{gmean["compiled"]:.2f}x')


if __name__ == '__main__':
    main()
