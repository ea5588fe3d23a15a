"""Print the model-zoo table of the BOAT configs as markdown.

    python tools/analysis_tools/model_zoo.py                 # configs/boat_*
    python tools/analysis_tools/model_zoo.py CONFIG [CONFIG ...] \\
        [--cfg-options model.backbone.fsla_blocks="[[],[],[],[]]"]

One row per config: task, parameters, FLOPs at the task's standard input
(detection 1280 x 800, segmentation 512 x 2048, classification 224 x 224),
the published checkpoint that initialises the model (detection /
segmentation: its ImageNet backbone; classification: the model itself) and
the command that converts it for mmboat.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one real
forward pass of the randomly initialised model in eval mode (detectors in
``tensor`` mode, as mmdet's ``get_flops.py`` runs them: backbone, neck, RPN
and RoI heads on the RPN's proposals). It counts matrix products,
convolutions and scaled-dot-product attention; sorts, gathers, norms,
softmax and element-wise ops are not counted. They are reported as
multiply-adds (the counter's FLOPs / 2), the unit of the Swin and CSWin
papers and of OpenMMLab's tables. Progress goes to stderr, the table to
stdout.
"""
import argparse
import logging
import re
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from mmboat.analysis import TASKS, load_task_config, standard_forward
from mmboat.utils.runner_cli import exit_with_error

REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Print the model-zoo table (markdown) of BOAT configs: '
        'params, FLOPs, published checkpoint, conversion command.')
    parser.add_argument(
        'configs',
        nargs='*',
        type=Path,
        help='config files (default: every config of configs/boat_swin and '
        'configs/boat_cswin)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        metavar='KEY=VALUE',
        help='override settings of every config, as in tools/train.py')
    return parser.parse_args(argv)


def count_flops(forward) -> int:
    """Multiply-adds of ``forward()`` (matmul / conv / SDPA and FSLA's
    clustering products, :mod:`mmboat.analysis.flops`)."""
    import mmboat  # noqa: F401  (registers the counting of its ops)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        forward()
    return counter.get_total_flops() // 2


def published_source(cfg, model):
    """(published file, model name, converted file, converter) of the
    checkpoint that initialises the model, or None. The facts are those of
    the backbone's family (:mod:`mmboat.families`)."""
    from mmboat.families import family_of
    backbone = model.backbone
    family = family_of(backbone)
    release = None if family is None else family.release(backbone.arch)
    # the releases have the default FSLA placement
    if (release is None or cfg.model.backbone.get('fsla_blocks') is not None):
        return None
    init_cfg = cfg.model.backbone.get('init_cfg') or {}
    # a classifier has no init_cfg: the published file is the model itself
    target = init_cfg.get(
        'checkpoint', f'checkpoints/{release.model.lower()}_in1k_mmboat.pth')
    return release.file, release.model, target, family.converter


def measure(cfg):
    """Task, input size, parameters and multiply-adds of a config's model."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    __import__('mmboat')
    torch.manual_seed(0)  # the detectors' proposals depend on the weights
    model = MODELS.build(cfg.model).eval()
    task, hw = TASKS[cfg.default_scope]
    params = sum(p.numel() for p in model.parameters())
    macs = count_flops(standard_forward(model, cfg.default_scope, hw))
    return dict(
        task=task,
        hw=hw,
        params=params,
        macs=macs,
        source=published_source(cfg, model))


def zoo_order(path):
    """Sort key of a zoo config: detection, segmentation, classification;
    then size T, S, B; then schedule."""
    task = next((i for i, prefix in enumerate(('mask-rcnn_', 'upernet_'))
                 if path.name.startswith(prefix)), 2)
    size = re.search(r'boat-c?swin-([a-z]+)', path.name)
    size = 'tsb'.find(size[1]) if size and size[1] in 'tsb' else 3
    return task, size, path.name


def row(path, info):
    try:
        shown = path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        shown = path
    hw = info['hw']
    source = info['source']
    if source is None:
        published = command = '-'
    else:
        file, name, target, converter = source
        published = f'{name} (`{file}`)'
        command = f'`python {converter} {file} {target}`'
    return (f"| [{path.stem}]({shown}) | {info['task']} | "
            f"{info['params'] / 1e6:.2f} | "
            f"{info['macs'] / 1e9:.1f} ({hw[1]} x {hw[0]}) | "
            f'{published} | {command} |')


HEADER = (
    '| config | task | params (M) | GFLOPs (matmul / conv / SDPA '
    'multiply-adds) at input W x H | published checkpoint | convert with |\n'
    '|---|---|---|---|---|---|')


def zoo_rows(configs, cfg_options):
    """One table row per config, with progress on stderr."""
    rows, measured = [], {}
    for i, path in enumerate(configs, 1):
        if not path.is_file():
            exit_with_error(f'error: config not found: {path}')
        start = time.perf_counter()
        print(
            f'[{i}/{len(configs)}] {path.name}: measuring',
            file=sys.stderr,
            flush=True)
        try:
            cfg = load_task_config(path, cfg_options)
        except ValueError as e:
            exit_with_error(f'error: {e}', e)
        # configs differing only in schedule / data share one measurement
        key = (cfg.default_scope, repr(cfg.model.to_dict()))
        if key not in measured:
            measured[key] = measure(cfg)
        info = measured[key]
        rows.append(row(path, info))
        print(
            f"[{i}/{len(configs)}] {path.name}: "
            f"{info['params'] / 1e6:.2f}M params, "
            f"{info['macs'] / 1e9:.1f} GFLOPs, "
            f'{time.perf_counter() - start:.0f} s',
            file=sys.stderr,
            flush=True)
    return rows


def main(argv=None):
    args = parse_args(argv)
    folders = [REPO_ROOT / 'configs' / d for d in ('boat_swin', 'boat_cswin')]
    configs = args.configs or [
        p for folder in folders
        for p in sorted(folder.glob('*.py'), key=zoo_order)
    ]
    # MMEngine logs to stdout, where the table goes: only errors while here
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        rows = zoo_rows(configs, args.cfg_options)
    finally:
        logger.setLevel(level)
    print('FLOPs: multiply-adds of matrix products, convolutions and '
          'scaled-dot-product attention, counted by '
          '`torch.utils.flop_counter.FlopCounterMode` on one forward pass '
          '(detectors: backbone, neck, RPN and RoI heads on the RPN '
          "proposals, as mmdet's `get_flops.py`); FSLA's clustering (sorts, "
          'gathers) and element-wise ops are not counted.\n')
    print(HEADER)
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
