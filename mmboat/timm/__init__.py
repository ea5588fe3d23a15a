"""BOAT-Swin and BOAT-CSWin in timm's model registry.

Importing this package (``import mmboat.timm``; ``import mmboat`` does not
import timm) registers
``boat_swin_{tiny,small,base}`` and ``boat_cswin_{tiny,small,base}``, so
that ``timm.create_model`` builds them (:mod:`.boat`).
"""
from .boat import BOATClassifier, checkpoint_filter_fn

__all__ = ['BOATClassifier', 'checkpoint_filter_fn']
