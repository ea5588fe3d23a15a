"""BOAT-Swin and BOAT-CSWin as timm models.

:class:`BOATClassifier` is an mmboat backbone (:mod:`mmboat.models.backbones`,
its last stage out, so its final LayerNorm is ``backbone.norm{last}``) and
timm's ``ClassifierHead`` (``head.fc``): the weight names of the mmpretrain
``ImageClassifier`` that the converters write, so a converted checkpoint
loads as it is::

    model = timm.create_model(
        'boat_swin_tiny', pretrained=True,
        pretrained_cfg_overlay=dict(file='boat-swin-t_in1k_mmboat.pth'))

``features_only=True`` gives the stage outputs at strides 4, 8, 16 and 32
through :meth:`BOATClassifier.forward_intermediates` (timm's
``FeatureGetterNet``). Any keyword argument that timm does not take is an
argument of the backbone (``arch``: a preset name or an arch dict,
``drop_path_rate``, ``fsla_cfg``, ``fsla_blocks``, ``window_size``, ...).
"""
import os
from typing import Dict, List, Optional, Set, Tuple, Type, Union

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, get_device_dtype
from timm.models import build_model_with_cfg, register_model
from timm.models._features import feature_take_indices
from timm.models._registry import generate_default_cfgs

from mmboat.converters.core import what_checkpoint_is
from mmboat.families import FAMILIES, Family
from mmboat.models.backbones.base import (BaseBOATBackbone, BaseBOATBlock,
                                          tokens_to_map)
from mmboat.utils import CheckpointError, CheckpointNotFoundError
from mmboat.utils.checkpoint import check_finite_weights, looked_for

__all__ = ['BOATClassifier', 'checkpoint_filter_fn']


def _check_num_classes(num_classes) -> None:
    """Refuse a ``num_classes`` that is not an int >= 0 (timm: 0 is no
    classifier, the model returns pooled features)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
            or num_classes < 0:
        raise ValueError(
            f'num_classes={num_classes!r} is not allowed: it must be an int '
            '>= 0. Fix: num_classes=0 for no classifier (the model returns '
            "pooled features, timm's convention), or the number of classes")


class BOATClassifier(nn.Module):
    """A BOAT backbone with timm's classifier head (pooling, dropout,
    linear), with timm's model interface.

    Args:
        backbone_type (type): the backbone of a family
            (:attr:`mmboat.families.Family.backbone`).
        arch (str | dict): a preset of ``backbone_type.arch_zoo`` or an
            arch dict. Default: 'tiny'.
        num_classes (int): classes; 0 for no classifier. Default: 1000.
        global_pool (str): timm's pooling type; '' for none.
            Default: 'avg'.
        in_chans (int): input channels. Default: 3.
        drop_rate (float): dropout before the classifier. Default: 0.
        proj_drop_rate (float): dropout after the projections and in the
            MLPs (the backbone's ``drop_rate``). Default: 0.
        device, dtype: where and in what type the weights are, as in
            timm's models. Default: PyTorch's defaults.
        **kwargs: the other arguments of the backbone.

    Shape:
        x: (B, in_chans, H, W), any H and W the backbone takes; returns
        (B, num_classes) logits.
    """

    def __init__(self,
                 backbone_type: Type[BaseBOATBackbone],
                 arch: Union[str, dict] = 'tiny',
                 num_classes: int = 1000,
                 global_pool: str = 'avg',
                 in_chans: int = 3,
                 drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 device: Optional[Union[str, torch.device]] = None,
                 dtype: Optional[torch.dtype] = None,
                 **kwargs):
        super().__init__()
        _check_num_classes(num_classes)
        if 'init_cfg' in kwargs:
            raise TypeError(
                'BOATClassifier takes no init_cfg: load weights the timm '
                'way, pretrained=True, pretrained_cfg_overlay=dict(file=PATH)')
        depths = backbone_type.parse_arch(arch)['depths']
        last = len(depths) - 1
        self.backbone = backbone_type(
            arch=arch,
            in_channels=in_chans,
            drop_rate=proj_drop_rate,
            out_indices=(last, ),
            **kwargs)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.backbone.num_features[last]
        self.final_norm_name = f'norm{last}'
        self.feature_info = [
            dict(
                num_chs=channels,
                reduction=4 * 2**i,
                module=f'backbone.stages.{i}')
            for i, channels in enumerate(self.backbone.num_features)
        ]
        self.head = ClassifierHead(
            self.num_features,
            num_classes,
            pool_type=global_pool,
            drop_rate=drop_rate)
        self.head_hidden_size = self.head.num_features
        self.init_weights()
        self.to(device=device, dtype=dtype)

    def init_weights(self) -> None:
        """From scratch, as the backbones (:meth:`BaseBOATBackbone.
        init_weights` without ``init_cfg``, minus MMEngine's logging of
        every parameter) and their classifiers."""
        self.backbone._init_from_scratch()
        if isinstance(self.head.fc, nn.Linear):
            trunc_normal_(self.head.fc.weight, std=.02)
            nn.init.zeros_(self.head.fc.bias)

    @property
    def final_norm(self) -> nn.Module:
        """The LayerNorm after the last stage (``backbone.norm{last}``)."""
        return getattr(self.backbone, self.final_norm_name)

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        """Relative position tables (BOAT-Swin), as the mmboat configs."""
        return {
            name
            for name, _ in self.named_parameters()
            if 'relative_position_bias_table' in name
        }

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of every block (the backbone's
        ``with_cp``)."""
        for module in self.backbone.modules():
            if isinstance(module, BaseBOATBlock):
                module.with_cp = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self,
                         num_classes: int,
                         global_pool: Optional[str] = None) -> None:
        """A new, untrained classifier of ``num_classes`` (0: none), and
        pooling ``global_pool`` (None: unchanged)."""
        _check_num_classes(num_classes)
        self.num_classes = num_classes
        self.head.reset(
            num_classes, pool_type=global_pool, **get_device_dtype(self))
        self.head_hidden_size = self.head.num_features
        if global_pool is not None:
            self.global_pool = global_pool

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs, as timm's Swin.

        Args:
            x (Tensor): (B, in_chans, H, W) images.
            indices (int | list[int], optional): the stages (None: all,
                n: the last n, or a list of indices).
            norm (bool): the last stage's output through the final norm.
            stop_early (bool): run no stage after the last one taken.
            output_fmt (str): 'NCHW' only.
            intermediates_only (bool): return the stage outputs only.

        Returns:
            list[Tensor] | tuple: for each stage i taken, the output of its
            last block, (B, C_i, H_i, W_i) on the backbone's grid of stride
            4 * 2**i (BOAT-Swin: H_i = ceil(H / 2**(i+2))); without
            ``intermediates_only``, ``(features, outputs)`` with the
            features of the last stage run (after the final norm if it is
            the last stage).
        """
        assert output_fmt == 'NCHW', 'the outputs are NCHW maps'
        num_stages = len(self.backbone.stages)
        take, last_taken = feature_take_indices(num_stages, indices)
        stages = self.backbone.forward_stages(
            x, last_taken + 1 if stop_early else None)
        intermediates = []
        for i, (out, hw_shape) in enumerate(stages):
            if i in take:
                if norm and i == num_stages - 1:
                    out = self.final_norm(out)
                intermediates.append(tokens_to_map(out, hw_shape))
        if intermediates_only:
            return intermediates
        out, hw_shape = stages[-1]
        if len(stages) == num_stages:
            out = self.final_norm(out)
        return tokens_to_map(out, hw_shape), intermediates

    def prune_intermediate_layers(self,
                                  indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (and the final
        norm and the classifier with them, which are sized for the last
        stage), the final norm with ``prune_norm``, the classifier with
        ``prune_head``. Returns the indices taken."""
        stages = self.backbone.stages
        take, last_taken = feature_take_indices(len(stages), indices)
        if last_taken < len(stages) - 1:
            self.backbone.stages = stages[:last_taken + 1]
            self.backbone.stages[-1].downsample = None
            self.num_features = self.feature_info[last_taken]['num_chs']
            self.head.in_features = self.num_features
            prune_norm = prune_head = True
        if prune_norm:
            setattr(self.backbone, self.final_norm_name, nn.Identity())
        if prune_head:
            self.reset_classifier(0, '')
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, num_features, H_last, W_last): the
        last stage (stride 32) through the final norm."""
        out, hw_shape = self.backbone.forward_stages(x)[-1]
        return tokens_to_map(self.final_norm(out), hw_shape)

    def forward_head(self,
                     x: torch.Tensor,
                     pre_logits: bool = False) -> torch.Tensor:
        """Features -> (B, num_classes) logits, or the pooled (B,
        num_features) features with ``pre_logits``."""
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict,
                         model: BOATClassifier) -> Dict[str, torch.Tensor]:
    """The weights of an mmboat checkpoint for ``model``: the names that
    the converters write and mmpretrain's ``ImageClassifier`` has
    (``backbone.*``, ``head.fc.*``) are the model's already.

    Raises:
        CheckpointError: for an official release file, unconverted (with
            the converter command), an mmboat checkpoint of the other
            family, or weights that hold NaN or Inf.
    """
    state_dict = state_dict.get('state_dict', state_dict)
    path = model.pretrained_cfg.get('file') or 'the checkpoint'
    problem = what_checkpoint_is(state_dict, path, model.backbone)
    if problem:
        raise CheckpointError(problem)
    check_finite_weights(state_dict, path)
    return state_dict


def _pretrained_source_error(variant: str, kwargs: dict) -> Optional[str]:
    """Why ``pretrained=True`` cannot load weights for ``variant`` with
    the ``pretrained_cfg`` / ``pretrained_cfg_overlay`` of ``kwargs``: no
    file given (there is no download), or a file that does not exist;
    None when it can."""
    from timm.models._builder import resolve_pretrained_cfg
    cfg = resolve_pretrained_cfg(variant, kwargs.get('pretrained_cfg'),
                                 kwargs.get('pretrained_cfg_overlay'))
    if cfg.state_dict is not None or cfg.url or cfg.hf_hub_id:
        return None
    family, preset = variant.rsplit('_', 1)
    family = TIMM_FAMILIES[family]
    arch = kwargs.get('arch', preset)
    release = family.published.get(arch.lower()) if isinstance(
        arch, str) else family.release(arch)
    source = release.file if release else 'SRC.pth'
    model = release.model if release else f'a {family.name} model'
    converted = f'checkpoints/{variant}_mmboat.pth'
    how = (f'Convert the published {model} weights ({source}) and give '
           'the converted file:\n'
           f'    python {family.converter} {source} {converted}\n'
           f"    timm.create_model('{variant}', pretrained=True, "
           f"pretrained_cfg_overlay=dict(file='{converted}'))\n"
           'or use pretrained=False for random weights (docs/timm.md).')
    if not cfg.file:
        return (f'No pretrained weights exist for {variant} to download: '
                f'mmboat publishes no URL. {how}')
    if not os.path.isfile(cfg.file):
        return (f'pretrained file {cfg.file} of {variant} does not exist'
                f'{looked_for(cfg.file)}. {how}')
    return None


#: the family of each prefix of the timm model names (``boat_swin`` of
#: ``boat_swin_tiny``), whose presets are the suffixes
TIMM_FAMILIES: Dict[str, Family] = {
    family.key.replace('-', '_'): family
    for family in FAMILIES.values()
}


def _create_boat(variant: str,
                 pretrained: bool = False,
                 **kwargs) -> BOATClassifier:
    """``variant`` (``{family}_{preset}``) built by timm's
    ``build_model_with_cfg``; ``kwargs`` over the preset."""
    if pretrained:
        error = _pretrained_source_error(variant, kwargs)
        if error is not None and error.startswith('No pretrained'):
            raise RuntimeError(error)  # timm's error type for it
        if error is not None:
            raise CheckpointNotFoundError(error)
    family, preset = variant.rsplit('_', 1)
    backbone_type = TIMM_FAMILIES[family].backbone
    kwargs.setdefault('arch', preset)
    depths = backbone_type.parse_arch(kwargs['arch'])['depths']
    out_indices = kwargs.pop('out_indices', tuple(range(len(depths))))
    return build_model_with_cfg(
        BOATClassifier,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls='getter', out_indices=out_indices),
        backbone_type=backbone_type,
        **kwargs)


def _cfg(**kwargs) -> dict:
    """No download: convert the published file and give it as
    ``pretrained_cfg_overlay=dict(file=...)``."""
    return dict(
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        classifier='head.fc',
        paper_name='BOAT: Bilateral Local Attention Vision Transformer',
        paper_ids='arXiv:2201.13027',
        origin_url='https://github.com/mahaoyuHKU/pytorch-boat',
        **kwargs)


# evaluation crops: Swin's (resize 256, crop 224), CSWin's (0.9)
_CFGS = dict(
    boat_swin=_cfg(
        crop_pct=0.875, first_conv='backbone.patch_embed.projection'),
    boat_cswin=_cfg(crop_pct=0.9, first_conv='backbone.patch_embed.proj'))
default_cfgs = generate_default_cfgs({
    f'{name}_{preset}.in1k': _CFGS[name]
    for name, family in TIMM_FAMILIES.items()
    for preset in family.arch_zoo
})


@register_model
def boat_swin_tiny(pretrained: bool = False, **kwargs) -> BOATClassifier:
    """BOAT-Swin-T, ImageNet-1k at 224 (30.27M parameters)."""
    return _create_boat('boat_swin_tiny', pretrained, **kwargs)


@register_model
def boat_swin_small(pretrained: bool = False, **kwargs) -> BOATClassifier:
    """BOAT-Swin-S, ImageNet-1k at 224 (55.16M parameters)."""
    return _create_boat('boat_swin_small', pretrained, **kwargs)


@register_model
def boat_swin_base(pretrained: bool = False, **kwargs) -> BOATClassifier:
    """BOAT-Swin-B, ImageNet-1k at 224 (97.61M parameters)."""
    return _create_boat('boat_swin_base', pretrained, **kwargs)


@register_model
def boat_cswin_tiny(pretrained: bool = False, **kwargs) -> BOATClassifier:
    """BOAT-CSWin-T, ImageNet-1k at 224 (26.39M parameters)."""
    return _create_boat('boat_cswin_tiny', pretrained, **kwargs)


@register_model
def boat_cswin_small(pretrained: bool = False, **kwargs) -> BOATClassifier:
    """BOAT-CSWin-S, ImageNet-1k at 224 (40.11M parameters)."""
    return _create_boat('boat_cswin_small', pretrained, **kwargs)


@register_model
def boat_cswin_base(pretrained: bool = False, **kwargs) -> BOATClassifier:
    """BOAT-CSWin-B, ImageNet-1k at 224 (89.63M parameters)."""
    return _create_boat('boat_cswin_base', pretrained, **kwargs)
