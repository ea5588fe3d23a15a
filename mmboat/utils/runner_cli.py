"""Command-line handling shared by ``tools/train.py`` and ``tools/test.py``:
the common options, the config they give, and the runner built from it."""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .dist import use_cpu_distributed


def runner_parser(description: str, config_help: str,
                  work_dir_help: str) -> argparse.ArgumentParser:
    """A parser with the ``config`` argument and ``--work-dir``; a tool adds
    its own arguments, then calls :func:`parse_runner_args`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help=config_help)
    parser.add_argument('--work-dir', help=work_dir_help)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Add ``--cfg-options``, ``--launcher`` and ``--local-rank``, parse
    ``argv`` (default: the command line) and set ``LOCAL_RANK`` in the
    environment when the launcher has not."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, xxx=yyy format')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def load_runner_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with ``--launcher``, ``--cfg-options``
    and ``--work-dir`` applied; without a work dir in either, it is
    ``./work_dirs/<config name>``."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config, training: bool) -> Runner:
    """The runner of ``cfg`` (its ``runner_type`` if set), on CPU processes
    with gloo for a distributed run without CUDA
    (:func:`~.dist.use_cpu_distributed`)."""
    use_cpu_distributed(cfg, training=training)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
