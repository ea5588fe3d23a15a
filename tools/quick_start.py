"""Quick start: train, evaluate and draw a tiny BOAT model on the embedded
tiny-shapes data, on the CPU, in minutes.

    python tools/quick_start.py              # Mask R-CNN (bbox + segm mAP)
    python tools/quick_start.py seg          # UperNet (mIoU)
    python tools/quick_start.py cls          # ImageClassifier (top-1)
    python tools/quick_start.py det --backbone cswin

It writes the data under ``data/tiny_shapes`` if absent, trains the tiny
config of ``configs/tiny/`` with MMEngine's runner, evaluates the final
checkpoint with the real evaluator, and draws the first validation image
with the library's own visualiser, four times enlarged: its ground truth on
the left, the model's predictions on the right (detection: those scoring
at least 0.5). Everything goes to
``work_dirs/quick_start/<config>/``; the last lines printed say where the
metrics and the picture are.
"""
import argparse
import json
import os.path as osp
import time

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

import mmboat  # noqa: F401  (registers the mmboat modules)
from mmboat.apis.compare import draw_ground_truth_and_prediction
from mmboat.datasets import is_complete, make_tiny_datasets
from mmboat.utils.config_checks import ConfigOptionError, check_cfg_options
from mmboat.utils.runner_cli import exit_with_error

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DESCRIPTION = ('Train, evaluate and draw a tiny BOAT model on the embedded '
               'tiny-shapes data')
BACKBONES = ('swin', 'cswin')  # BOAT-Swin, BOAT-CSWin
# the tiny configs of configs/tiny/, by task ({} is the backbone)
CONFIGS = dict(
    det='mask-rcnn_boat-{}-nano_fpn_tiny-shapes.py',
    seg='upernet_boat-{}-nano_tiny-shapes.py',
    cls='boat-{}-nano_tiny-shapes.py')
#: the picture: test image 0, enlarged, detections scoring at least this
PICTURE_SCALE, SCORE_THR = 4, 0.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument(
        'task',
        nargs='?',
        default='det',
        choices=sorted(CONFIGS),
        help='det: Mask R-CNN, seg: UperNet, '
        'cls: ImageClassifier (default: %(default)s)')
    parser.add_argument(
        '--backbone',
        default='swin',
        choices=BACKBONES,
        help='BOAT-Swin or BOAT-CSWin (default: %(default)s)')
    parser.add_argument(
        '--data-root',
        default='data/tiny_shapes',
        help='where the tiny-shapes data is, or is written')
    parser.add_argument(
        '--work-dir',
        default='work_dirs/quick_start',
        help='where the runs go (default: %(default)s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the tiny config, e.g. '
        'train_cfg.max_epochs=2')
    return parser.parse_args(argv)


def tiny_config(task: str, backbone: str, data_root: str,
                work_dir: str) -> Config:
    """The tiny config of ``task``, reading its data under ``data_root``."""
    path = osp.join(REPO, 'configs', 'tiny', CONFIGS[task].format(backbone))
    cfg = Config.fromfile(path)
    default_root = 'data/tiny_shapes'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[key].dataset
        root = dataset.data_root
        dataset.data_root = root.replace(default_root, data_root, 1)
    for key in ('val_evaluator', 'test_evaluator'):
        if 'ann_file' in cfg[key]:
            cfg[key].ann_file = cfg[key].ann_file.replace(
                default_root, data_root, 1)
    cfg.work_dir = osp.join(work_dir, osp.splitext(osp.basename(path))[0])
    return cfg


def backbone_start(cfg: Config) -> str:
    """Where the backbone of ``cfg`` starts: its pretrained file, or
    random weights."""
    init_cfg = cfg.model.backbone.get('init_cfg') or {}
    if init_cfg.get('type') == 'Pretrained':
        return f'fine-tuned from {init_cfg["checkpoint"]}'
    return 'trained from scratch (random initial weights)'


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    cfg = tiny_config(args.task, args.backbone, args.data_root, args.work_dir)
    if args.cfg_options:
        try:  # a misspelt key stops here, not inside the training loop
            check_cfg_options(cfg, args.cfg_options)
        except ConfigOptionError as e:
            exit_with_error(f'quick_start.py: error: {e}', e)
        cfg.merge_from_dict(args.cfg_options)
    if not is_complete(args.data_root, args.task):
        # missing, or left half-written by an interrupted run
        print(f'[quick start] writing the tiny-shapes {args.task} data to '
              f'{args.data_root}')
        make_tiny_datasets(args.data_root, tasks=[args.task])

    print(f'[quick start] training {cfg.filename} -> {cfg.work_dir}')
    print(f'[quick start] backbone: {backbone_start(cfg)}')
    runner = RUNNERS.build(cfg)
    runner.train()
    # MMEngine's CheckpointHook names the final checkpoint here
    with open(osp.join(cfg.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()

    print(f'[quick start] evaluating {checkpoint}')
    test_cfg = cfg.copy()
    test_cfg.load_from = checkpoint
    test_cfg.work_dir = osp.join(cfg.work_dir, 'test')
    metrics = RUNNERS.build(test_cfg).test()
    metrics_file = osp.join(cfg.work_dir, 'metrics.json')
    with open(metrics_file, 'w') as f:
        json.dump(metrics, f, indent=2)

    picture = osp.join(cfg.work_dir, 'vis', 'val_000000.png')
    print('[quick start] drawing ground truth and predictions of the first '
          f'validation image -> {picture}')
    draw_ground_truth_and_prediction(
        cfg,
        checkpoint,
        picture,
        index=0,
        scale=PICTURE_SCALE,
        score_thr=SCORE_THR)

    minutes = (time.perf_counter() - start) / 60
    print(f'\n[quick start] done in {minutes:.1f} min')
    for name, value in metrics.items():
        print(f'  {name}: {value:.4f}'
              if isinstance(value, float) else f'  {name}: {value}')
    print(f'  metrics: {metrics_file}')
    print(f'  picture: {picture} (left: ground truth, right: predictions)')


if __name__ == '__main__':
    main()
