"""Train a model from a config of mmdet, mmsegmentation or mmpretrain that
uses mmboat modules.

    python tools/train.py configs/boat_swin/mask-rcnn_boat-swin-t_fpn_1x_coco.py
    python tools/train.py CONFIG --resume            # from the latest checkpoint
    python tools/train.py CONFIG --amp --cfg-options train_dataloader.batch_size=2

The config's ``default_scope`` (mmdet / mmseg / mmpretrain) selects the
library whose datasets, models and metrics are used; importing mmboat
registers its backbones and lets MMEngine load its own checkpoints on
torch >= 2.6.
"""
import argparse
import datetime
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from mmengine.runner import Runner
from torch.nn.parallel import DistributedDataParallel

import mmboat  # noqa: F401  (registers the mmboat modules)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest checkpoint in '
        'the work dir when no path is given')
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
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def sync_bn_to_bn(node):
    """Turn the CUDA-only SyncBN / MMSyncBN norm configs inside ``node``
    into BN, in place; return how many."""
    if isinstance(node, dict):
        count = int(node.get('type') in ('SyncBN', 'MMSyncBN'))
        if count:
            node['type'] = 'BN'
        children = node.values()
    elif isinstance(node, (list, tuple)):
        count, children = 0, node
    else:
        return 0
    return count + sum(sync_bn_to_bn(child) for child in children)


def use_cpu_distributed(cfg):
    """Run a ``--launcher pytorch`` job on CPU processes with gloo when no
    CUDA GPU is visible.

    MMEngine 0.10 would call ``torch.cuda.set_device``, open an NCCL group
    and give DDP ``device_ids=[LOCAL_RANK]``, all of which need CUDA. Here
    the gloo group is opened first (the runner then keeps it), DDP gets no
    device ids and SyncBN layers, which only sync CUDA tensors, become BN.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise SystemExit(
            f'--launcher {cfg.launcher} needs CUDA GPUs and none is '
            'visible; on CPUs, run tools/dist_train.sh (torchrun, gloo)')
    timeout = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('timeout')
    kwargs = {} if timeout is None else dict(
        timeout=datetime.timedelta(seconds=timeout))
    torch_dist.init_process_group(backend='gloo', **kwargs)
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper_type = MODEL_WRAPPERS.get(
        wrapper.get('type', 'MMDistributedDataParallel'))
    if issubclass(wrapper_type, DistributedDataParallel):
        wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    num_sync_bn = sync_bn_to_bn(cfg.model)
    if cfg.get('sync_bn'):
        cfg.sync_bn = None
    if torch_dist.get_rank() == 0:
        note = f' ({num_sync_bn} SyncBN norm configs set to BN)' \
            if num_sync_bn else ''
        print(f'[mmboat] no CUDA GPU visible: the '
              f'{torch_dist.get_world_size()} processes train on the CPU '
              f'with the gloo backend{note}', flush=True)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print('AMP is already enabled in the config')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    use_cpu_distributed(cfg)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
