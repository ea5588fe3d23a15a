"""Parameters and FLOPs of a config's model (detector, segmentor or
classifier), with FSLA's clustering and attention counted.

    python tools/analysis_tools/get_flops.py CONFIG         # standard input
    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1333
    python tools/analysis_tools/get_flops.py CONFIG --show-table # per module

Counts with MMEngine's ``get_model_complexity_info`` (as mmdet, mmseg and
mmpretrain's own ``get_flops.py``, which count BOAT models the same way
once ``mmboat`` is imported): multiply-adds of matrix products,
convolutions, FSLA's clustering and attention (``mmboat.analysis.flops``),
plus norms, upsampling and pooling. The model has random weights and runs
its test forward in ``tensor`` mode on one image of H x W (by default the
task's standard input, ``mmboat.analysis.TASKS``: 1280 x 800 detection,
2048 x 512 segmentation, 224 x 224 classification, W x H).
"""
import argparse
import logging

from mmengine.analysis.print_helper import _format_size


def parse_args(argv=None):
    from mmboat.analysis.tasks import describe_sizes
    parser = argparse.ArgumentParser(
        description="Parameters and FLOPs of a config's model")
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        metavar='SIZE',
        help='input H W (or one size for a square), default: the '
        f"task's standard input, {describe_sizes()}")
    parser.add_argument(
        '--show-table',
        action='store_true',
        help='also print the per-module table')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='override settings of the config, as in tools/train.py')
    args = parser.parse_args(argv)
    if args.shape is not None:
        if len(args.shape) not in (1, 2) or min(args.shape) < 1:
            parser.error(f'--shape takes H W or one size > 0, got '
                         f'{args.shape}: e.g. --shape 800 1333')
        args.shape = tuple(args.shape * (3 - len(args.shape)))[:2]
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.registry import MODELS, init_default_scope

    from mmboat.analysis import TASKS, load_task_config, model_complexity
    from mmboat.utils.runner_cli import exit_with_error
    try:
        cfg = load_task_config(args.config, args.cfg_options)
    except (FileNotFoundError, ValueError) as e:
        exit_with_error(f'error: {e}', e)
    scope = cfg.default_scope
    init_default_scope(scope)
    backbone = cfg.model.get('backbone', {})
    if backbone.get('init_cfg'):
        backbone.init_cfg = None  # random weights: FLOPs need no checkpoint
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)  # MMEngine's per-op warnings
    try:
        model = MODELS.build(cfg.model).eval()
        hw = args.shape or TASKS[scope].input_hw
        from rich.console import Console
        with Console(stderr=True).status(
                f'tracing and counting {args.config} at {hw[0]} x {hw[1]} '
                '(H x W)'):
            info = model_complexity(model, scope, hw, args.show_table)
    finally:
        logger.setLevel(level)
    if args.show_table:
        print(info['table'])
    line = '=' * 30
    print(f'{line}\nInput shape: (1, 3, {hw[0]}, {hw[1]})\n'
          f"Flops: {_format_size(info['flops'])} ({info['flops']} "
          f"multiply-adds)\nParams: {_format_size(info['params'])} "
          f"({info['params']})\n{line}")


if __name__ == '__main__':
    main()
