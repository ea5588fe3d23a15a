"""An ImageClassifier with a training-only dense auxiliary loss."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models import ImageClassifier
from mmpretrain.structures import DataSample

from mmboat.registry import MODELS


def dense_targets(seg_maps: torch.Tensor, num_classes: int,
                  size: Sequence[int]) -> torch.Tensor:
    """The share of each class in each cell of a ``size`` grid.

    Args:
        seg_maps: (B, H, W) integer label maps, values in [0, num_classes).
        num_classes: number of labels, background included.
        size: (h, w) of the grid.

    Returns:
        torch.Tensor: (B, num_classes, h, w), summing to 1 over dim 1.
    """
    onehot = F.one_hot(seg_maps.long(), num_classes).permute(0, 3, 1, 2)
    return F.adaptive_avg_pool2d(onehot.float(), tuple(size))


@MODELS.register_module()
class DenseAuxImageClassifier(ImageClassifier):
    """mmpretrain's ``ImageClassifier`` with an auxiliary dense loss for
    pretraining on data with label maps (``gt_seg_map`` in the data
    samples, e.g. :class:`~mmboat.datasets.TinyShapesStream` with
    ``with_seg=True``).

    A 1 x 1 convolution on each backbone output predicts, for every token,
    the share of background and of each class in the pixels it covers
    (soft cross-entropy against :func:`dense_targets`); the mean over the
    outputs, times ``aux_weight``, is added as ``loss_dense``. It is a
    training aid: prediction and the backbone are those of
    ``ImageClassifier``, and the ``aux_heads.*`` weights are not part of
    the backbone's checkpoint.

    Args:
        aux_in_channels (Sequence[int]): channels of each backbone output
            (the backbone's ``out_indices``).
        num_aux_classes (int): labels of the maps, background included.
            Default: 5 (background + 4 tiny-shapes classes).
        aux_weight (float): weight of the dense loss. Default: 1.0.
        **kwargs: the arguments of ``ImageClassifier``; its neck must
            take the backbone's tuple (``GlobalAveragePooling`` does), and
            its head uses the last output.
    """

    def __init__(self,
                 *args,
                 aux_in_channels: Sequence[int],
                 num_aux_classes: int = 5,
                 aux_weight: float = 1.0,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.num_aux_classes = num_aux_classes
        self.aux_weight = aux_weight
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(c, num_aux_classes, 1) for c in aux_in_channels)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        feats = self.backbone(inputs)
        if len(feats) != len(self.aux_heads):
            raise ValueError(
                f'DenseAuxImageClassifier: the backbone gives {len(feats)} '
                f'outputs but aux_in_channels has {len(self.aux_heads)}: '
                'list the channels of every output in out_indices')
        losses = self.head.loss(
            self.neck(feats) if self.with_neck else feats, data_samples)
        seg_maps = torch.stack([
            torch.as_tensor(sample.gt_seg_map) for sample in data_samples
        ]).to(inputs.device)
        dense = inputs.new_zeros(())
        for feat, head in zip(feats, self.aux_heads):
            target = dense_targets(seg_maps, self.num_aux_classes,
                                   feat.shape[-2:])
            log_prob = F.log_softmax(head(feat).float(), dim=1)
            dense = dense - (target * log_prob).sum(1).mean()
        losses['loss_dense'] = self.aux_weight * dense / len(feats)
        return losses
