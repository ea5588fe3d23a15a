"""Where mmboat registers its modules.

mmboat registers its models into MMEngine's root ``MODELS`` registry, the
parent of the ``MODELS`` registries of mmdet, mmsegmentation and mmpretrain.
A config of any of them finds ``type='BOATSwinTransformer'`` once
``mmboat`` is imported, e.g. with::

    custom_imports = dict(imports=['mmboat'], allow_failed_imports=False)

Importing ``mmboat`` imports mmcv and mmpretrain (whose window
attention BOAT-Swin reuses; mmpretrain's model utilities import mmdet in
turn), never mmseg, and never changes the default scope.
"""
from mmengine.registry import MODELS

__all__ = ['MODELS']
