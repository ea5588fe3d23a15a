"""mmboat: BOAT-Swin and BOAT-CSWin backbones for OpenMMLab.

Importing mmboat registers its modules and fills MMEngine's tables, and
replaces nothing of MMEngine: its registries (the backbones, the stream
dataset, hooks and loops, and the ``mmboat`` scope of :mod:`.registry`),
its package table (``_base_ = 'mmboat::...'``), the FLOP counters (FSLA's
clustering and attention), and the checkpoint formats that mmboat's
messages name (:func:`mmboat.utils.use_checkpoint_formats`). It imports
no model of mmdet, mmseg or mmpretrain, nor timm: ``AuxLossImageClassifier``
registers when ``mmboat.models.classifiers`` is imported (its configs'
``custom_imports`` do), BOAT in timm with ``import mmboat.timm``.
"""
from . import datasets  # noqa: F401  (registers the stream)
from . import engine  # noqa: F401  (registers the hooks and the loop)
from . import models  # noqa: F401  (registers the backbones)
from .analysis import register_flop_counting
from .converters import OFFICIAL_FORMATS
from .registry import register_config_package
from .utils import use_checkpoint_formats
from .version import __version__

register_config_package()
register_flop_counting()
use_checkpoint_formats(OFFICIAL_FORMATS)

__all__ = ['__version__']
