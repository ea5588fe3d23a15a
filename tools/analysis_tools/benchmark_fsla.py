"""Benchmark feature-space local attention (FSLA) against Swin's W-MSA.

For the four Swin-T stage shapes at a given input size, times one FSLA layer
and one window attention layer of the same dims (the one BOAT-Swin runs:
``PaddedShiftWindowMSA``, mmpretrain's ``ShiftWindowMSA`` computation,
window 7, no shift) in the same process, interleaved, and prints their
forward and forward+backward times and the ratio FSLA / W-MSA. Report
ratios: absolute times on shared machines are noisy.

    python tools/analysis_tools/benchmark_fsla.py    # 224x224 and 800x1280
    python tools/analysis_tools/benchmark_fsla.py --sizes 224x224 --batch 8
    python tools/analysis_tools/benchmark_fsla.py --device cuda --amp bf16
    python tools/analysis_tools/benchmark_fsla.py --no-compile   # eager only

The last column times ``torch.compile(fsla, fullgraph=True,
dynamic=False)`` against the same layer in eager mode (forward; compiled
afresh for every shape, untimed): static shapes, the best case of a fixed
input size. Graphs with dynamic shapes take the masked path at every size
(see ``mmboat/models/layers/padding.py``) and ran slower still here.

Two columns say where FSLA's time goes: ``FLOPs`` is the ratio FSLA /
W-MSA of forward multiply-adds (``torch.utils.flop_counter``, with the
matrix products of FSLA's clustering counted, see
:mod:`mmboat.analysis.flops`), the floor of the time ratio for code that
runs FSLA's products as fast as W-MSA's; ``clust.`` is the time of FSLA's
clustering op alone (the same queries) over W-MSA's forward time. The
first line says which CPU kernel the op runs: the compiled one
(``mmboat._ext``) or, with ``MMBOAT_CLUSTER_IMPL=eager`` in the
environment (or where it is not built), its torch code.

Then the backbones (``--no-backbones`` skips them), measured as
``benchmark.py CONFIG --part backbone`` measures them, for the T-size
Mask R-CNN configs: BOAT-Swin-T against mmdet's Swin-T and BOAT-CSWin-T
against the same backbone without FSLA blocks (CSWin-T), for a training
step at 224 x 224, batch 8 (time and peak memory) and an inference step at
800 x 1280, batch 1 (time), eager, with the ratio of their forward FLOPs
at both inputs. Unless ``--no-compile``, the inference step again with
every backbone compiled (``torch.compile``, static shapes; a few minutes
of compilation per backbone on a CPU).

Default sizes are the standard inputs of :data:`mmboat.analysis.TASKS`:
classification (224 x 224) and detection (H x W 800 x 1280).
"""
import argparse
import statistics
import sys
from functools import partial
from pathlib import Path

import torch

from mmboat.analysis.tasks import TASKS
from mmboat.models.layers import (FeatureSpaceLocalAttention,
                                  PaddedShiftWindowMSA)
from mmboat.ops.cluster_order import cluster_order_impl
from mmboat.utils.benchmark import timed

SWIN_T = [(96, 3), (192, 6), (384, 12), (768, 24)]  # (channels, heads)
REPO = Path(__file__).resolve().parents[2]
#: the configs whose backbones are compared (mmdet: Swin's baseline is
#: mmdet's SwinTransformer)
BACKBONE_CONFIGS = ('configs/boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py',
                    'configs/boat_cswin/mask-rcnn_boat-cswin-t_fpn_1x_coco.py')
#: the standard inputs, HxW: classification and detection
CLS_SIZE, DET_SIZE = ('{}x{}'.format(*TASKS[scope].input_hw)
                      for scope in ('mmpretrain', 'mmdet'))


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


def forward_flops(module, *inputs):
    """FLOPs (2 per multiply-add) of one forward pass, without autograd."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


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
        default=[CLS_SIZE, DET_SIZE],
        help='input image sizes HxW (default: %(default)s)')
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
        help='skip the torch.compile(fsla, fullgraph=True) column and the '
        'compiled backbones (every first call compiles: up to a minute per '
        'layer shape and a few minutes per backbone on a CPU)')
    parser.add_argument(
        '--compile-backend',
        default='inductor',
        help='torch.compile backend (default: %(default)s)')
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
        default=CLS_SIZE,
        help='HxW of the backbone training step (default: %(default)s)')
    parser.add_argument(
        '--backbone-batch',
        type=int,
        default=8,
        help='batch of the backbone training step (default: %(default)s)')
    parser.add_argument(
        '--backbone-test-size',
        default=DET_SIZE,
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
          f'torch={torch.__version__} cluster_order (CPU)='
          f'{cluster_order_impl()}')
    header = (f'{"input":>9} {"batch":>5} {"grid":>9} {"C":>4} {"h":>3} | '
              f'{"W-MSA fwd":>10} {"FSLA fwd":>10} {"ratio":>6} '
              f'{"FLOPs":>7} {"clust.":>6} | '
              f'{"W-MSA f+b":>10} {"FSLA f+b":>10} {"ratio":>6}')
    if not args.no_compile:
        header += f' | {"compiled fwd":>12} {"/ eager":>7}'
    print(header)
    print('-' * len(header))
    ratios = {'fwd': [], 'f+b': [], 'flops': [], 'compiled': []}
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
            with torch.no_grad():  # the queries FSLA clusters
                qkv = fsla.project_qkv(x)
            fwd = bench_pair([wmsa, fsla, lambda *_: fsla.cluster_order(qkv)],
                             x, (gh, gw), args.repeats, False, device, amp)
            flops = (
                forward_flops(fsla, x,
                              (gh, gw)) / forward_flops(wmsa, x, (gh, gw)))
            xg = x.clone().requires_grad_()
            fb = bench_pair([wmsa, fsla], xg, (gh, gw), args.repeats, True,
                            device, amp)
            ratios['fwd'].append(fwd[1] / fwd[0])
            ratios['flops'].append(flops)
            ratios['f+b'].append(fb[1] / fb[0])
            line = (f'{size:>9} {batch:>5} {gh:>4}x{gw:<4} {c:>4} {heads:>3} '
                    f'| {fwd[0] * 1e3:>8.1f}ms {fwd[1] * 1e3:>8.1f}ms '
                    f'{fwd[1] / fwd[0]:>5.2f}x {flops:>6.3f}x '
                    f'{fwd[2] / fwd[0]:>5.2f}x | {fb[0] * 1e3:>8.1f}ms '
                    f'{fb[1] * 1e3:>8.1f}ms {fb[1] / fb[0]:>5.2f}x')
            if not args.no_compile:
                torch._dynamo.reset()  # a static graph for every shape
                compiled = torch.compile(
                    fsla,
                    fullgraph=True,
                    dynamic=False,
                    backend=args.compile_backend)
                eager, comp = bench_pair([fsla, compiled], x, (gh, gw),
                                         args.repeats, False, device, amp)
                ratios['compiled'].append(comp / eager)
                line += f' | {comp * 1e3:>10.1f}ms {comp / eager:>6.2f}x'
            print(line, flush=True)
    gmean = {k: statistics.geometric_mean(v) for k, v in ratios.items() if v}
    print(f'geometric mean ratio FSLA / W-MSA: forward {gmean["fwd"]:.2f}x, '
          f'forward+backward {gmean["f+b"]:.2f}x; forward FLOPs '
          f'{gmean["flops"]:.2f}x')
    if 'compiled' in gmean:
        print('geometric mean ratio compiled FSLA / eager FSLA (forward): '
              f'{gmean["compiled"]:.2f}x')
    if not args.no_backbones:
        bench_backbones(args, device)


def bench_backbones(args, device):
    """Each family's T-size Mask R-CNN config through ``benchmark.py``'s
    ``measure`` (the backbone part against its baseline): a training step
    (time, peak memory) and an inference step (time)."""
    import logging
    from argparse import Namespace

    from mmengine.logging import MMLogger

    from mmboat.analysis.speed import (baseline_backbone, build, load_config,
                                       measure)

    (th, tw), tb = parse_size(args.backbone_train_size), args.backbone_batch
    ih, iw = parse_size(args.backbone_test_size)
    print(f'\nbackbones ({args.backbone_arch}, eager, benchmark.py --part '
          f'backbone): training step {th}x{tw} batch {tb}, inference '
          f'{ih}x{iw} batch 1; ratio = BOAT / baseline')
    header = (f'{"BOAT":>10} {"baseline":>23} | {"train":>9} {"ratio":>6} '
              f'| {"train peak":>10} {"ratio":>6} | {"inference":>9} '
              f'{"ratio":>6} | {"FLOPs train":>11} {"inference":>9}')
    print(header)
    print('-' * len(header))
    logger = MMLogger.get_current_instance()
    logger.setLevel(logging.ERROR)  # MMEngine logs to stdout
    compiled_rows = []
    for config in BACKBONE_CONFIGS:
        cfg, scope = load_config(str(REPO / config))
        cfg.model.backbone.arch = args.backbone_arch
        runs = [
            measure(
                cfg, scope,
                Namespace(
                    shape=shape,
                    batch=batch,
                    mode=mode,
                    part='backbone',
                    repeats=args.repeats,
                    warmup=1), device)[0]
            for mode, shape, batch in (('train', (th, tw), tb), ('inference',
                                                                 (ih, iw), 1))
        ]
        train, test = runs[0], runs[1]
        name, base_name = train  # the BOAT model first
        # per mode: (images per second, peak bytes); time is batch / speed
        (boat_speed, boat_peak), (base_speed,
                                  base_peak) = (train[name]['train'],
                                                train[base_name]['train'])
        boat_test, base_test = (test[name]['inference'][0],
                                test[base_name]['inference'][0])
        # forward FLOPs of the two backbones, BOAT / baseline, per input
        backbones = [
            build(c, scope, device)
            for c in (cfg.model.backbone, baseline_backbone(cfg, scope)[0])
        ]
        flops = [
            forward_flops(backbones[0], x) / forward_flops(backbones[1], x)
            for x in (torch.randn(1, 3, th, tw, device=device),
                      torch.randn(1, 3, ih, iw, device=device))
        ]
        cells = [
            f'{tb / boat_speed:.2f}s', f'{base_speed / boat_speed:.2f}x',
            f'{boat_peak / 2**20:.2f}MiB',
            f'{boat_peak / max(base_peak, 1):.2f}x', f'{1 / boat_test:.2f}s',
            f'{base_test / boat_test:.2f}x', f'{flops[0]:.3f}x',
            f'{flops[1]:.3f}x'
        ]
        print(
            f'{name:>10} {base_name:>23} | {cells[0]:>9} {cells[1]:>6} | '
            f'{cells[2]:>10} {cells[3]:>6} | {cells[4]:>9} {cells[5]:>6} | '
            f'{cells[6]:>11} {cells[7]:>9}',
            flush=True)
        if not args.no_compile:
            compiled_rows.append((name, base_name,
                                  bench_compiled(backbones, (ih, iw), args,
                                                 device)))
    if compiled_rows:
        print(f'\ncompiled backbones (torch.compile, backend '
              f'{args.compile_backend}, static shapes): inference '
              f'{ih}x{iw} batch 1; ratio = BOAT / baseline, both compiled')
        header = (f'{"BOAT":>10} {"baseline":>23} | {"compiled":>9} '
                  f'{"ratio":>6} | {"/ eager":>7} {"baseline / eager":>16}')
        print(header)
        print('-' * len(header))
    for name, base_name, (eager, compiled) in compiled_rows:
        boat_speedup, base_speedup = (compiled[0] / eager[0],
                                      compiled[1] / eager[1])
        print(
            f'{name:>10} {base_name:>23} | {compiled[0]:>8.2f}s '
            f'{compiled[0] / compiled[1]:>5.2f}x | {boat_speedup:>6.2f}x '
            f'{base_speedup:>15.2f}x',
            flush=True)


def bench_compiled(backbones, hw, args, device):
    """Inference of each backbone, eager and compiled (static shapes; the
    first call compiles, untimed).

    Returns:
        tuple: median seconds ``(eager, compiled)``, each a list in the
        order of ``backbones``.
    """
    from mmboat.utils.benchmark import interleaved_medians
    x = torch.randn(1, 3, *hw, device=device)
    steps = {}
    torch._dynamo.reset()  # graphs of this pair only, compiled afresh
    for i, backbone in enumerate(backbones):
        backbone.eval()
        compiled = torch.compile(
            backbone, dynamic=False, backend=args.compile_backend)
        print(
            f'compiling {type(backbone).__name__} at {hw[0]}x{hw[1]} '
            '(minutes on a CPU)...',
            file=sys.stderr,
            flush=True)
        with torch.no_grad():
            compiled(x)
        steps[('eager', i)] = partial(backbone, x)
        steps[('compiled', i)] = partial(compiled, x)
    with torch.no_grad():
        medians = interleaved_medians(steps, args.repeats, device)
    return tuple([medians[(kind, i)] for i in range(len(backbones))]
                 for kind in ('eager', 'compiled'))


if __name__ == '__main__':
    main()
