"""Images per second and peak memory of a BOAT config against its baseline.

    python tools/analysis_tools/benchmark.py CONFIG --shape 128 128 --batch 2
    python tools/analysis_tools/benchmark.py CONFIG --part backbone \\
        --mode inference --repeats 10 --device cuda

Builds the backbone, or the whole model (detector, segmentor or classifier
of the config), with random weights, and its baseline: for BOAT-Swin the
stock Swin of the config's library (mmdet, mmseg or mmpretrain
``SwinTransformer``) with the same dims, used when its parameters match the
BOAT-Swin backbone without FSLA one for one, else that backbone; for
BOAT-CSWin the same backbone without FSLA blocks (OpenMMLab has no CSWin).
Both run on the same synthetic batch (tiny-shapes images of H x W with
their boxes, masks, label maps or labels), one inference step (eval mode,
no gradients; the model in ``tensor`` mode: detectors run the RPN and the
RoI heads on the RPN proposals, no post-processing) and one training step
(MMEngine's ``train_step`` with the config's optimizer; the backbone:
forward, the mean of its outputs, backward, optimizer step), in turns,
after warm-up, and prints a markdown table of the medians, the peak memory
of a step (:mod:`mmboat.utils.benchmark`) and the ratios BOAT / baseline.
Progress goes to stderr, the table to stdout.
"""
import argparse
import logging

import torch

from mmboat.analysis.speed import MODES, load_config, measure, table
from mmboat.analysis.tasks import describe_sizes
from mmboat.apis.inference import check_device


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Images per second and peak memory of a BOAT config '
        'against its baseline without FSLA')
    parser.add_argument(
        'config',
        help='config file of mmdet, mmseg or '
        'mmpretrain with a BOAT backbone')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input height and width (default: the task\'s standard input, '
        f'{describe_sizes()})')
    parser.add_argument(
        '--batch', type=int, default=2, help='images per step (default: 2)')
    parser.add_argument(
        '--mode',
        choices=('inference', 'train', 'both'),
        default='both',
        help='inference step, training step or both (default: both)')
    parser.add_argument(
        '--part',
        choices=('backbone', 'model'),
        default='model',
        help='the backbone alone or the whole model (default: model)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='timed steps per model and mode; medians (default: 5)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=1,
        help='untimed steps first, per model and mode (default: 1)')
    parser.add_argument(
        '--device', default='cpu', help='cpu, cuda, cuda:1... (default: cpu)')
    return parser.parse_args(argv)


def check_args(args):
    """Refuse what cannot be measured, with the fix."""
    if args.shape is not None and min(args.shape) < 1:
        raise ValueError(f'--shape {args.shape[0]} {args.shape[1]}: height '
                         'and width must be at least 1 pixel, e.g. '
                         '--shape 224 224')
    for name in ('batch', 'repeats'):
        if getattr(args, name) < 1:
            raise ValueError(f'--{name} {getattr(args, name)}: must be at '
                             f'least 1, e.g. --{name} 2')
    if args.warmup < 0:
        raise ValueError(f'--warmup {args.warmup}: must be 0 or more')
    check_device(args.device)  # a name, and a device this machine has
    device = torch.device(args.device)
    if device.type not in ('cpu', 'cuda'):
        raise ValueError(f'--device {args.device}: only cpu and cuda are '
                         'measured')
    return device


def main(argv=None):
    args = parse_args(argv)
    from mmengine.logging import MMLogger

    import mmboat  # noqa: F401  (registers the mmboat modules)
    from mmboat.utils.runner_cli import exit_with_error
    try:
        device = check_args(args)
        cfg, scope = load_config(args.config)
    except (FileNotFoundError, ValueError) as e:
        exit_with_error(f'error: {e}', e)
    # MMEngine logs to stdout, where the table goes: only errors while here
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        rows, info = measure(cfg, scope, args, device)
    finally:
        logger.setLevel(level)
    modes = MODES if args.mode == 'both' else (args.mode, )
    threads = f', {torch.get_num_threads()} thread(s)' \
        if device.type == 'cpu' else f' ({torch.cuda.get_device_name(device)})'
    memory = ('torch.cuda.max_memory_allocated' if device.type == 'cuda' else
              "PyTorch's CPU allocations, from torch.profiler memory events")
    print(f'config: {args.config} ({scope}, {args.part})')
    _, _, H, W = info['input']
    print(f'input: batch {args.batch} x 3 x {H} x {W} (after the data '
          'preprocessor)')
    print(f'device: {device}{threads}; {args.repeats} timed steps per model '
          f'and mode, in turns, medians; {args.warmup} warm-up step(s)')
    print(f'peak memory: the most a step allocates above what was '
          f'allocated before it ({memory})')
    print(f"FSLA blocks: {info['fsla']}")
    print(f"baseline: {info['baseline']}")
    print()
    print(table(rows, modes))
    return rows


if __name__ == '__main__':
    main()
