"""Parameters and FLOPs of a config's model, as OpenMMLab counts them.

The model runs its standard test forward on one (1, 3, H, W) input in
``tensor`` mode, as mmdet's ``get_flops.py`` runs it (detectors: backbone,
neck, RPN and RoI heads on the RPN's proposals, no post-processing),
under MMEngine's ``get_model_complexity_info``, with FSLA's clustering and
attention counted (:mod:`.flops`).
"""
from functools import partial
from typing import Callable, Dict, Sequence, Tuple

import torch

from .tasks import TASKS


def load_task_config(path, cfg_options: Sequence[str] = ()):
    """The config at ``path`` with ``--cfg-options`` style ``KEY=VALUE``
    overrides merged, checked to be a detection, segmentation or
    classification config (``default_scope`` in :data:`TASKS`).

    Raises:
        FileNotFoundError: no config file at ``path``.
        ValueError: another ``default_scope``.
    """
    import argparse

    from mmengine.config import DictAction

    from mmboat.apis import load_config
    cfg = load_config(str(path))
    if cfg_options:
        options = argparse.Namespace()
        DictAction(option_strings=[], dest='o')(None, options, cfg_options)
        cfg.merge_from_dict(options.o)
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'{path}: default_scope {scope!r} is none of '
                         f'{sorted(TASKS)}; give a detection, segmentation '
                         'or classification config')
    return cfg


def standard_inputs(scope: str, hw: Tuple[int, int]) -> dict:
    """Keyword arguments of ``model.forward`` for one random (1, 3, H, W)
    image in ``tensor`` mode."""
    inputs = torch.randn(1, 3, *hw)
    if scope != 'mmdet':
        return dict(inputs=inputs, mode='tensor')
    from mmdet.structures import DetDataSample
    sample = DetDataSample(
        metainfo=dict(
            img_shape=hw,
            ori_shape=hw,
            pad_shape=hw,
            batch_input_shape=hw,
            scale_factor=(1., 1.)))
    return dict(inputs=inputs, data_samples=[sample], mode='tensor')


def standard_forward(model: torch.nn.Module, scope: str,
                     hw: Tuple[int, int]) -> Callable:
    """A closure running :func:`standard_inputs` through ``model``."""
    kwargs = standard_inputs(scope, hw)
    return lambda: model(**kwargs)


def model_complexity(model: torch.nn.Module,
                     scope: str,
                     hw: Tuple[int, int],
                     show_table: bool = False) -> Dict:
    """MMEngine's ``get_model_complexity_info`` of the standard forward.

    Returns:
        dict: ``flops`` (multiply-adds) and ``params`` (int), and ``table``
        (str, per module) when ``show_table``.
    """
    from mmengine.analysis import get_model_complexity_info
    kwargs = standard_inputs(scope, hw)
    inputs = kwargs.pop('inputs')
    forward = model.forward
    model.forward = partial(forward, **kwargs)
    try:
        with torch.no_grad():
            info = get_model_complexity_info(
                model,
                inputs=(inputs, ),
                show_table=show_table,
                show_arch=False)
    finally:
        model.forward = forward
    result = dict(flops=info['flops'], params=info['params'])
    if show_table:
        result['table'] = info['out_table']
    return result
