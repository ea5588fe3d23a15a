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

Then the backbones (``--no-backbones`` skips them): BOAT-Swin-T against
mmdet's Swin-T and BOAT-CSWin-T against the same backbone without FSLA
blocks (CSWin-T), for a training step at 224 x 224, batch 8 (time and
peak memory) and an inference step at 800 x 1344, batch 1 (time), eager,
drop path off, all four stage outputs.
"""
import argparse
import statistics

import torch

from mmboat.models.backbones import BOATCSWinTransformer, BOATSwinTransformer
from mmboat.models.layers import (FeatureSpaceLocalAttention,
                                  PaddedShiftWindowMSA)
from mmboat.utils.benchmark import interleaved_medians, peak_memory, timed

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
        '--no-backbones',
        action='store_true',
        help='skip the backbone comparison (minutes on a CPU)')
    parser.add_argument(
        '--backbone-arch',
        default='tiny',
        help='preset of both BOAT backbones (default: %(default)s)')
    parser.add_argument(
        '--backbone-train-size',
        default='224x224',
        help='HxW of the backbone training step (default: %(default)s)')
    parser.add_argument(
        '--backbone-batch',
        type=int,
        default=8,
        help='batch of the backbone training step (default: %(default)s)')
    parser.add_argument(
        '--backbone-test-size',
        default='800x1344',
        help='HxW of the backbone inference step, batch 1 '
        '(default: %(default)s)')
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
    if not args.no_backbones:
        bench_backbones(args, device)


def build_backbone_pairs(arch):
    """(name, BOAT backbone, baseline name, baseline) of both families."""
    from mmdet.models.backbones import SwinTransformer

    kw = dict(arch=arch, drop_path_rate=0.)
    boat_swin = BOATSwinTransformer(**kw)
    swin = SwinTransformer(
        embed_dims=boat_swin.embed_dims,
        depths=boat_swin.depths,
        num_heads=boat_swin.num_heads,
        drop_path_rate=0.)
    return [('BOAT-Swin', boat_swin, 'Swin (mmdet)', swin),
            ('BOAT-CSWin', BOATCSWinTransformer(**kw), 'CSWin (no FSLA)',
             BOATCSWinTransformer(fsla_blocks=[[]] * 4, **kw))]


def bench_backbones(args, device):
    """Training step (time, peak memory) and inference (time) of each BOAT
    backbone against its baseline, interleaved."""
    (th, tw), tb = parse_size(args.backbone_train_size), args.backbone_batch
    ih, iw = parse_size(args.backbone_test_size)
    print(f'\nbackbones ({args.backbone_arch}, eager): training step '
          f'{th}x{tw} batch {tb}, inference {ih}x{iw} batch 1; ratio = BOAT / '
          'baseline')
    header = (f'{"BOAT":>10} {"baseline":>16} | {"train":>9} {"ratio":>6} | '
              f'{"train peak":>10} {"ratio":>6} | {"inference":>9} '
              f'{"ratio":>6}')
    print(header)
    print('-' * len(header))
    torch.manual_seed(0)
    x_train = torch.randn(tb, 3, th, tw, device=device)
    x_test = torch.randn(1, 3, ih, iw, device=device)
    for name, boat, base_name, base in build_backbone_pairs(
            args.backbone_arch):
        models = {name: boat.to(device), base_name: base.to(device)}

        def train_step(model):
            return lambda: sum(o.sum() for o in model(x_train)).backward()

        def test_step(model):

            def step():
                with torch.no_grad():
                    model(x_test)

            return step

        for model in models.values():
            model.train()
        train = interleaved_medians(
            {
                k: train_step(m)
                for k, m in models.items()
            }, args.repeats, device)
        peak = {
            k: peak_memory(train_step(m), device)
            for k, m in models.items()
        }
        for model in models.values():
            model.eval()
        test = interleaved_medians({
            k: test_step(m)
            for k, m in models.items()
        }, args.repeats, device)
        row = [name, base_name]
        for figures, unit, scale in ((train, 's', 1), (peak, 'MiB', 2**-20),
                                     (test, 's', 1)):
            boat_value, base_value = figures[name], figures[base_name]
            row.append(f'{boat_value * scale:.2f}{unit}')
            row.append(f'{boat_value / base_value:.2f}x')
        print(
            f'{row[0]:>10} {row[1]:>16} | {row[2]:>9} {row[3]:>6} | '
            f'{row[4]:>10} {row[5]:>6} | {row[6]:>9} {row[7]:>6}',
            flush=True)


if __name__ == '__main__':
    main()
