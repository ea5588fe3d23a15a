"""Test (evaluate) a checkpoint with a config of mmdet, mmsegmentation or
mmpretrain that uses mmboat modules.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]
"""
import mmboat  # noqa: F401  (registers the mmboat modules)
from mmboat.utils.runner_cli import (build_runner, load_runner_config,
                                     parse_runner_args, runner_parser)


def parse_args():
    parser = runner_parser('Test (and eval) a model', 'test config file path',
                           'where to save the evaluation')
    parser.add_argument('checkpoint', help='checkpoint file')
    return parse_runner_args(parser)


def main():
    args = parse_args()
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    build_runner(cfg, training=False).test()


if __name__ == '__main__':
    main()
