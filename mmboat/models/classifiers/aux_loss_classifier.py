"""An ImageClassifier with training-only auxiliary losses for short
pretraining runs: a dense loss from label maps and distillation from a
frozen CNN teacher. Prediction, and the backbone it ships, are those of
mmpretrain's ``ImageClassifier``."""
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models import ImageClassifier
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample

from mmboat.registry import MODELS
from mmboat.utils import load_checkpoint_file


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


def feature_distance(student: torch.Tensor,
                     teacher: torch.Tensor) -> torch.Tensor:
    """Mean over positions of the squared distance between the
    channel-normalised feature vectors; (B, C, h, w) each, same size."""
    return (F.normalize(student, dim=1) -
            F.normalize(teacher, dim=1)).pow(2).sum(1).mean()


@MODELS.register_module()
class AuxLossImageClassifier(ImageClassifier):
    """mmpretrain's ``ImageClassifier`` plus training-only losses that
    shorten the plateau of a transformer learning from scratch.

    - ``dense``: a 1 x 1 convolution on each backbone output predicts, for
      every token, the share of background and of each class in the pixels
      it covers (soft cross-entropy against :func:`dense_targets` of the
      ``gt_seg_map`` of the data samples, e.g.
      :class:`~mmboat.datasets.TinyShapesStream` with ``with_seg=True``);
      ``loss_dense`` is the mean over outputs times ``weight``.
    - ``distill``: a frozen teacher classifier (built from ``model``, its
      weights from ``checkpoint``, always in eval mode) sees the same
      inputs. ``loss_distill_feat``: a 1 x 1 convolution maps each backbone
      output to the teacher's output of the same index, scored by
      :func:`feature_distance` (the teacher's outputs must have the same
      sizes); ``loss_distill_logit``: KL divergence from the teacher's
      class probabilities to the student's, as DeiT's soft distillation.

    The auxiliary modules are ``aux_heads``, ``distill_adapters`` and
    ``teacher``; the backbone (``backbone.*``) is what a pretraining run
    ships.

    Args:
        dense (dict, optional): ``in_channels`` (one per backbone output),
            ``num_classes`` (labels of the maps, background included;
            default 5) and ``weight`` (default 1.0).
        distill (dict, optional): ``model`` (the teacher's config),
            ``checkpoint`` (its weights, a file or ``mmboat://NAME``),
            ``in_channels`` (the student's, one per backbone output),
            ``teacher_channels`` (one per teacher backbone output),
            ``feat_weight`` and ``logit_weight`` (default 1.0 each).
        **kwargs: the arguments of ``ImageClassifier``; its neck must take
            the backbone's tuple (``GlobalAveragePooling`` does), and its
            head uses the last output.
    """

    def __init__(self,
                 *args,
                 dense: Optional[dict] = None,
                 distill: Optional[dict] = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.dense = {'num_classes': 5, 'weight': 1.0, **(dense or {})}
        self.aux_heads = nn.ModuleList(
            nn.Conv2d(c, self.dense['num_classes'], 1)
            for c in self.dense.get('in_channels', ())) if dense else None
        self.distill = None
        if distill:
            self.distill = {'feat_weight': 1.0, 'logit_weight': 1.0, **distill}
            # an mmpretrain model, whatever the default scope
            self.teacher = PRETRAIN_MODELS.build(distill['model'])
            self.teacher.requires_grad_(False)
            self.distill_adapters = nn.ModuleList(
                nn.Conv2d(c, t, 1) for c, t in zip(
                    distill['in_channels'], distill['teacher_channels']))

    def init_weights(self):
        super().init_weights()
        if self.distill:  # after the teacher's own init_weights
            ckpt = load_checkpoint_file(self.distill['checkpoint'])
            self.teacher.load_state_dict(ckpt.get('state_dict', ckpt))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.distill:
            self.teacher.eval()
        return self

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        feats = self.backbone(inputs)
        for name, heads in (('dense', self.aux_heads),
                            ('distill', self.distill
                             and self.distill_adapters)):
            if heads and len(heads) != len(feats):
                raise ValueError(
                    f'AuxLossImageClassifier: the backbone gives '
                    f'{len(feats)} outputs but {name} in_channels lists '
                    f'{len(heads)}: give one per output in out_indices')
        neck_feats = self.neck(feats) if self.with_neck else feats
        losses = self.head.loss(neck_feats, data_samples)
        if self.aux_heads:
            losses['loss_dense'] = self.dense['weight'] * self._dense_loss(
                feats, data_samples)
        if self.distill:
            with torch.no_grad():
                teacher_feats = self.teacher.backbone(inputs)
                teacher_logits = self.teacher.head(
                    self.teacher.neck(teacher_feats))
            feat_loss = sum(
                feature_distance(adapter(f), t) for f, t, adapter in zip(
                    feats, teacher_feats, self.distill_adapters))
            losses['loss_distill_feat'] = \
                self.distill['feat_weight'] * feat_loss / len(feats)
            logits = self.head(neck_feats)
            losses['loss_distill_logit'] = self.distill['logit_weight'] * \
                F.kl_div(F.log_softmax(logits, 1),
                         F.log_softmax(teacher_logits, 1),
                         reduction='batchmean', log_target=True)
        return losses

    def _dense_loss(self, feats, data_samples) -> torch.Tensor:
        seg_maps = torch.stack([
            torch.as_tensor(sample.gt_seg_map) for sample in data_samples
        ]).to(feats[0].device)
        total = feats[0].new_zeros(())
        for feat, head in zip(feats, self.aux_heads):
            target = dense_targets(seg_maps, self.dense['num_classes'],
                                   feat.shape[-2:])
            log_prob = F.log_softmax(head(feat).float(), dim=1)
            total = total - (target * log_prob).sum(1).mean()
        return total / len(feats)
