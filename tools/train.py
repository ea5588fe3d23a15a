"""Train a model from a config of mmdet, mmsegmentation or mmpretrain that
uses mmboat modules.

    # CONFIG: e.g. configs/boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py
    python tools/train.py CONFIG
    python tools/train.py CONFIG --resume    # from the latest checkpoint
    python tools/train.py CONFIG --amp --cfg-options key=value ...
    python tools/train.py CONFIG --cfg-options load_from=CKPT --allow-partial

The config's ``default_scope`` (mmdet / mmseg / mmpretrain) selects the
library whose datasets, models and metrics are used; importing mmboat
registers its backbones and lets MMEngine load its own checkpoints on
torch >= 2.6.
"""
from mmengine.runner import find_latest_checkpoint

import mmboat  # noqa: F401  (registers the mmboat modules)
from mmboat.utils.config_checks import check_data
from mmboat.utils.runner_cli import (build_runner, exit_on_clear_errors,
                                     load_runner_config, parse_runner_args,
                                     runner_parser)


def parse_args(argv=None):
    parser = runner_parser('Train a model', 'train config file path',
                           'where to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest checkpoint in '
        'the work dir when no path is given')
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    with exit_on_clear_errors('train.py'):
        train(args)


def train(args):
    """Train as the config and the options of ``args`` say."""
    cfg = load_runner_config(args)
    check_data(cfg, ['train_dataloader'] +
               (['val_dataloader'] if cfg.get('val_cfg') is not None else []))
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
        if find_latest_checkpoint(cfg.work_dir) is None:
            # MMEngine then logs 'Auto resumed from ... None' and starts over
            print(
                f'--resume: no checkpoint to resume in {cfg.work_dir} (it '
                'has no last_checkpoint file): training starts from '
                'scratch',
                flush=True)
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    build_runner(cfg, training=True).train()


if __name__ == '__main__':
    main()
