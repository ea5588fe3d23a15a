"""BOAT-Swin: a Swin Transformer whose shifted blocks also run FSLA.

A BOAT-Swin block is a Swin block with a feature-space local attention
(:class:`~mmboat.models.layers.FeatureSpaceLocalAttention`) branch between
the window attention and the MLP::

    x = x + DropPath(W-MSA(LN1(x)))
    x = x + FSLA(LN_fsla(x))          # no DropPath on this branch
    x = x + DropPath(MLP(LN2(x)))

The stem is Swin's 4 x 4 patch embedding, the merge its 2 x 2 patch merging
(:mod:`mmboat.models.layers.embedding`); the rest is
:class:`~.base.BaseBOATBackbone`.
"""
from typing import Optional, Sequence, Tuple, Union

from mmboat.families import BOAT_SWIN
from mmboat.registry import MODELS
from ..layers import PaddedShiftWindowMSA, PatchStem, UnfoldMerging
from ..validate import check_image_size, check_int
from .base import BaseBOATBackbone, BaseBOATBlock


class BOATSwinBlock(BaseBOATBlock):
    """Swin block (window attention, shifted or not) with an optional FSLA
    branch, which has no stochastic depth. The arguments are those of
    :class:`~.base.BaseBOATBlock`; ``attn_cfg`` holds ``window_size`` and
    ``shift_size`` (``window_size // 2`` in a shifted block, else 0)."""
    attention = PaddedShiftWindowMSA
    fsla_drop_path = False


def published_fsla_blocks(depths: Sequence[int],
                          window_size: int = 7,
                          pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                          patch_size: int = 4) -> Tuple[Tuple[int, ...], ...]:
    """FSLA placement of the published BOAT-Swin models.

    FSLA sits in the shifted blocks (odd index) of the stages whose grid at
    ``pretrain_img_size`` is larger than the window: at 224 with window 7
    that is stages 1-3 (56, 28, 14), not stage 4 (7).
    """
    if isinstance(pretrain_img_size, int):
        pretrain_img_size = (pretrain_img_size, pretrain_img_size)
    side = min(-(-s // patch_size) for s in pretrain_img_size)
    blocks = []
    for depth in depths:
        blocks.append(tuple(range(1, depth, 2)) if side > window_size else ())
        side = -(-side // 2)
    return tuple(blocks)


@MODELS.register_module()
class BOATSwinTransformer(BaseBOATBackbone):
    """BOAT-Swin backbone for classification and dense prediction.

    `BOAT: Bilateral Local Attention Vision Transformer
    <https://arxiv.org/abs/2201.13027>`_. Built like mmdet's Swin backbone:
    any input size (padded to windows and merges inside), LayerNorm
    ``norm{i}`` on every output stage, ``frozen_stages``, ``with_cp``.

    Presets (``arch``, from :data:`mmboat.families.BOAT_SWIN`; ImageNet-1k
    drop path 0.2 / 0.3 / 0.5):

    ======  ==========  ===========  =============
    arch    embed_dims  depths       num_heads
    ======  ==========  ===========  =============
    tiny    96          2, 2, 6, 2   3, 6, 12, 24
    small   96          2, 2, 18, 2  3, 6, 12, 24
    base    128         2, 2, 18, 2  4, 8, 16, 32
    ======  ==========  ===========  =============

    Args:
        arch (str | dict): a preset name, or a dict with ``embed_dims``,
            ``depths`` and ``num_heads``. Default: 'tiny'.
        pretrain_img_size (int | tuple[int]): input size of pre-training;
            only decides the default FSLA placement. Default: 224.
        in_channels (int): input channels. Default: 3.
        window_size (int): window side. Default: 7.
        drop_rate (float): dropout after the patch embedding, the
            projections and in the MLP. Default: 0.
        fsla_blocks (Sequence[Sequence[int]], optional): per stage, the
            indices of the blocks with FSLA. Default (None): the published
            placement, see :func:`published_fsla_blocks`.
        **kwargs: the arguments shared by the BOAT backbones, see
            :class:`~.base.BaseBOATBackbone`: ``mlp_ratio`` (4),
            ``qkv_bias`` (True), ``attn_drop_rate`` (0),
            ``drop_path_rate`` (0.1), ``out_indices`` ((0, 1, 2, 3)),
            ``frozen_stages`` (-1), ``with_cp`` (False), ``fsla_cfg``
            (FSLA's defaults, ``qk_scale`` head_dims ** -0.5) and
            ``init_cfg`` (None: from scratch; ``dict(type='Pretrained',
            checkpoint=PATH)``: an mmboat checkpoint).

    Shape:
        x: (B, in_channels, H, W). Returns a tuple with, for every stage i
        of ``out_indices``, (B, embed_dims * 2**i, ceil(H / 2**(i+2)),
        ceil(W / 2**(i+2))).
    """
    description = BOAT_SWIN
    family = BOAT_SWIN.name
    arch_zoo = BOAT_SWIN.arch_zoo
    patch_size = 4
    published_fsla_blocks = staticmethod(published_fsla_blocks)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 window_size: int = 7,
                 drop_rate: float = 0.,
                 fsla_blocks: Optional[Sequence[Sequence[int]]] = None,
                 **kwargs):
        super().__init__(
            arch, in_channels=in_channels, drop_rate=drop_rate, **kwargs)
        self.window_size = check_int(
            'window_size', window_size, 1,
            'use e.g. window_size=7 (the published models)', self.family,
            ' (window side in tokens)')
        self.patch_embed = PatchStem(self.in_channels, self.embed_dims,
                                     self.patch_size,
                                     self.block_cfg['drop_rate'])
        pretrain_img_size = check_image_size('pretrain_img_size',
                                             pretrain_img_size, self.family)
        if fsla_blocks is None:
            fsla_blocks = published_fsla_blocks(self.depths, self.window_size,
                                                pretrain_img_size,
                                                self.patch_size)
        self.build_stages(fsla_blocks)

    def build_block(self, stage: int, index: int, **kwargs) -> BOATSwinBlock:
        shift_size = self.window_size // 2 if index % 2 == 1 else 0
        return BOATSwinBlock(
            self.num_features[stage],
            self.num_heads[stage],
            attn_cfg=dict(window_size=self.window_size, shift_size=shift_size),
            **kwargs)

    def build_merging(self, stage: int) -> UnfoldMerging:
        return UnfoldMerging(self.num_features[stage],
                             self.num_features[stage + 1])
