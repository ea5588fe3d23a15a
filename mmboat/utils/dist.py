"""Distributed runs on CPU-only machines (torchrun + gloo)."""
import datetime

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel


def sync_bn_to_bn(node) -> int:
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


def use_cpu_distributed(cfg: Config, training: bool) -> None:
    """Run a ``--launcher pytorch`` job on CPU processes with gloo when no
    CUDA GPU is visible; do nothing otherwise.

    MMEngine 0.10 would call ``torch.cuda.set_device``, open an NCCL group
    and give DDP ``device_ids=[LOCAL_RANK]``, all of which need CUDA. Here
    the gloo group is opened first (the runner then keeps it), DDP gets no
    device ids and, for training, SyncBN layers (which only sync CUDA
    tensors) become BN; they do not sync in evaluation.
    """
    if cfg.launcher == 'none' or torch.cuda.is_available():
        return
    script = 'dist_train.sh' if training else 'dist_test.sh'
    if cfg.launcher != 'pytorch':
        raise SystemExit(
            f'--launcher {cfg.launcher} needs CUDA GPUs and none is '
            f'visible; on CPUs, run tools/{script} (torchrun, gloo)')
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
    note = ''
    if training:
        num_sync_bn = sync_bn_to_bn(cfg.model)
        if cfg.get('sync_bn'):
            cfg.sync_bn = None
        if num_sync_bn:
            note = f' ({num_sync_bn} SyncBN norm configs set to BN)'
    if torch_dist.get_rank() == 0:
        print(
            f'[mmboat] no CUDA GPU visible: the '
            f'{torch_dist.get_world_size()} processes '
            f'{"train" if training else "test"} on the CPU with the gloo '
            f'backend{note}',
            flush=True)
