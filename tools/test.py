"""Test (evaluate) a checkpoint with a config of mmdet, mmsegmentation or
mmpretrain that uses mmboat modules.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options ...]

A CHECKPOINT whose weights do not fit a model with an mmboat backbone
(missing, unexpected or misshapen weights, a file of the other family, an
unconverted release file) stops the test with the list and what to do,
unless ``--allow-partial`` asks to load the weights that fit. A test set
that is not on disk stops it before any work, with the command that writes
the tiny-shapes data or the paths the config reads.
"""
import mmboat  # noqa: F401  (registers the mmboat modules)
from mmboat.utils.config_checks import check_data
from mmboat.utils.runner_cli import (build_runner, check_checkpoint_path,
                                     exit_on_clear_errors, load_runner_config,
                                     parse_runner_args, runner_parser)


def parse_args(argv=None):
    parser = runner_parser('Test (and eval) a model', 'test config file path',
                           'where to save the evaluation')
    parser.add_argument('checkpoint', help='checkpoint file')
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    with exit_on_clear_errors('test.py'):
        cfg = load_runner_config(args)
        check_checkpoint_path(args.checkpoint)
        check_data(cfg, ['test_dataloader'])
        cfg.load_from = args.checkpoint
        build_runner(cfg, training=False).test()


if __name__ == '__main__':
    main()
