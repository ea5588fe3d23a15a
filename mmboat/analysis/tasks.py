"""The task of each library and its standard input size: the one table.

Every analysis tool that needs an input size for a config and is given
none takes it from :data:`TASKS`, by the config's ``default_scope``:
``get_flops.py`` and ``model_zoo.py`` (FLOPs), ``benchmark.py`` (speed and
memory), ``benchmark_fsla.py`` (its layer shapes and backbones).

The sizes are the ones the figures of each field are quoted at:

- detection (mmdet, COCO): 1280 x 800 (W x H), the input of mmdet's
  ``get_flops.py`` and of the FLOPs of the Swin and CSWin Mask R-CNN
  papers (Swin-T Mask R-CNN: 267G);
- segmentation (mmseg, ADE20K): 2048 x 512 (W x H), ADE20K's test scale
  (images resized to fit 2048 x 512) and the input of the Swin and CSWin
  UperNet FLOPs;
- classification (mmpretrain, ImageNet-1k): 224 x 224.
"""
from typing import NamedTuple, Tuple


class Task(NamedTuple):
    """A library's task (``name``) and standard input ``(H, W)``."""
    name: str
    input_hw: Tuple[int, int]


#: ``default_scope`` -> :class:`Task`
TASKS = {
    'mmdet': Task('COCO det. + inst. seg.', (800, 1280)),
    'mmseg': Task('ADE20K sem. seg.', (512, 2048)),
    'mmpretrain': Task('ImageNet-1k cls.', (224, 224)),
}


def describe_sizes() -> str:
    """The standard inputs as text, for help messages."""
    kinds = dict(
        mmdet='detection', mmseg='segmentation', mmpretrain='classification')
    return 'H W ' + ', '.join(f'{h} {w} {kinds[scope]}'
                              for scope, (_, (h, w)) in TASKS.items())
