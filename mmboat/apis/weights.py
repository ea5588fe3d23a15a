"""The one function through which mmboat's tools load weights into a model.

Every command of ``tools/`` that loads a checkpoint into a model calls
:func:`load_model_weights` (directly, or through
:func:`mmboat.apis.build_inferencer`), or gives the checkpoint to
MMEngine's Runner as ``load_from``, which mmboat's ``SafeCheckpointHook``
checks the same way (``tools/train.py``, ``tools/test.py``). So every tool
reads files without running code from them, refuses weights that hold NaN
or Inf, refuses a checkpoint that does not fit a model with an mmboat
backbone (of the other family, of another task or size, an unconverted
release file) and offers the same escape, ``--allow-partial``.
``tests/tools/test_one_weight_loader.py`` fails when a tool loads weights
another way.
"""
import os
from typing import Union

import torch

from mmboat.models.backbones.base import BaseBOATBackbone
from mmboat.models.backbones.loading import (WeightsDoNotFitError,
                                             load_backbone_weights)
from mmboat.utils.checkpoint import PARTIAL_LOAD_HINT
from mmboat.utils.mmengine_compat import load_weights_into


def load_model_weights(model: torch.nn.Module,
                       checkpoint: Union[str, os.PathLike],
                       allow_partial: bool = False) -> dict:
    """Load ``checkpoint`` into ``model``, every weight checked.

    A bare BOAT backbone takes an mmboat checkpoint of a backbone, or the
    ``backbone.*`` weights of a classifier, detector or segmentor
    checkpoint, as ``init_cfg`` does
    (:func:`mmboat.models.backbones.loading.load_backbone_weights`: its
    output norms may start fresh). Any other model (a classifier,
    detector or segmentor, with or without an mmboat backbone) takes a
    checkpoint of its own weights through MMEngine's loader
    (:func:`mmboat.utils.mmengine_compat.load_weights_into`), checked by
    :func:`mmboat.utils.checkpoint.check_model_fits` when it holds an
    mmboat backbone.

    Args:
        model (nn.Module): the model (or bare BOAT backbone).
        checkpoint (str | PathLike): a file, ``mmboat://NAME`` or a URL
            (not for a bare backbone).
        allow_partial (bool): load the weights that fit and warn about
            the others, instead of refusing (``--allow-partial``).

    Returns:
        dict: the checkpoint, as read.

    Raises:
        CheckpointError: the file is missing, unreadable, holds objects
            other than weights and training state, holds NaN or Inf, or
            does not fit (unless ``allow_partial``), with what to do.
    """
    checkpoint = os.fspath(checkpoint)
    if isinstance(model, BaseBOATBackbone):
        try:
            return load_backbone_weights(
                model, checkpoint, allow_partial=allow_partial)
        except WeightsDoNotFitError as e:
            raise WeightsDoNotFitError(
                f'{e}\nNothing was loaded. {PARTIAL_LOAD_HINT}') from None
    return load_weights_into(model, checkpoint, allow_partial=allow_partial)
