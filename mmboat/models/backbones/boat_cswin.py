"""BOAT-CSWin: the CSWin Transformer with feature-space local attention.

A CSWin Transformer (Dong et al. 2022: 7x7 stride-4 convolution stem,
cross-shaped stripe attention with LePE, 3x3 stride-2 convolution merging,
full attention in the last stage) in which some blocks also carry BOAT's
feature-space local attention (FSLA). A block computes::

    x = x + DropPath(CrossShapedWindowAttention(LN(x)))
    x = x + DropPath(FSLA(LN(x)))          # blocks listed in `fsla_blocks`
    x = x + DropPath(MLP(LN(x)))

The published models put FSLA in the even blocks (0, 2, 4, ...) of every
stage and use an attention scale of 1.0 inside FSLA. The stem and merge are
in :mod:`mmboat.models.layers.embedding`; the rest is
:class:`~.base.BaseBOATBackbone`.
"""
from typing import Optional, Sequence, Union

from mmboat.families import BOAT_CSWIN
from mmboat.registry import MODELS
from ..layers import ConvMerging, ConvStem, CrossShapedWindowAttention
from ..validate import check_even_heads
from .base import BaseBOATBackbone, BaseBOATBlock


class BOATCSWinBlock(BaseBOATBlock):
    """A CSWin block, optionally with FSLA between attention and MLP; every
    branch has stochastic depth. The arguments are those of
    :class:`~.base.BaseBOATBlock`; ``attn_cfg`` holds ``split_size``
    (the stripe width) and ``full_attention`` (attend over the whole map,
    as the last stage does)."""
    attention = CrossShapedWindowAttention
    fsla_drop_path = True


@MODELS.register_module()
class BOATCSWinTransformer(BaseBOATBackbone):
    """BOAT-CSWin backbone for classification and dense prediction.

    Paper: BOAT: Bilateral Local Attention Vision Transformer (BMVC 2022),
    on top of CSWin Transformer (CVPR 2022). Works for any input size and
    batch size; stage ``i`` has stride ``4 * 2**i``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (see
            :attr:`arch_zoo`, from :data:`mmboat.families.BOAT_CSWIN`) or
            a dict with keys ``embed_dims`` (int),
            ``depths``, ``num_heads``, ``split_sizes`` (one int per stage).
            The last stage always uses full attention. Default: 'tiny'.
        in_channels (int): input channels. Default: 3.
        fsla_blocks (Sequence[Sequence[int]], optional): per stage, the block
            indices that carry FSLA. None means the even blocks of every
            stage, as in the published models.
        **kwargs: the arguments shared by the BOAT backbones, see
            :class:`~.base.BaseBOATBackbone`: ``mlp_ratio`` (4),
            ``qkv_bias`` (True), ``drop_rate`` (0), ``attn_drop_rate`` (0),
            ``drop_path_rate`` (0.1), ``out_indices`` ((0, 1, 2, 3)),
            ``frozen_stages`` (-1), ``with_cp`` (False), ``fsla_cfg``
            (over the published options, ``qk_scale=1.0``) and
            ``init_cfg`` (None: from scratch; ``dict(type='Pretrained',
            checkpoint=PATH)``: an mmboat checkpoint, see
            ``tools/model_converters/boat_cswin_to_mmboat.py``).

    Shape:
        x: (B, in_channels, H, W); returns a tuple with, for every index in
        ``out_indices``, a (B, C_i, H_i, W_i) map, ``C_i = embed_dims * 2**i``.
    """
    description = BOAT_CSWIN
    family = BOAT_CSWIN.name
    arch_zoo = BOAT_CSWIN.arch_zoo
    arch_keys = ('embed_dims', 'depths', 'num_heads', 'split_sizes')
    default_fsla_cfg = dict(qk_scale=1.0)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 fsla_blocks: Optional[Sequence[Sequence[int]]] = None,
                 **kwargs):
        super().__init__(arch, in_channels=in_channels, **kwargs)
        self.patch_embed = ConvStem(self.in_channels, self.embed_dims)
        if fsla_blocks is None:  # published: the even blocks of every stage
            fsla_blocks = tuple(tuple(range(0, d, 2)) for d in self.depths)
        self.build_stages(fsla_blocks)

    @classmethod
    def check_arch(cls, arch: dict) -> None:
        """Stripe stages (all but the last) share their heads between the
        two stripe directions: an even number."""
        check_even_heads(arch['num_heads'], range(len(arch['depths']) - 1),
                         cls.family)

    def build_block(self, stage: int, index: int, **kwargs) -> BOATCSWinBlock:
        full_attention = stage == self.num_stages - 1
        attn_cfg = dict(
            split_size=self.arch['split_sizes'][stage],
            full_attention=full_attention)
        return BOATCSWinBlock(
            self.num_features[stage],
            self.num_heads[stage],
            attn_cfg=attn_cfg,
            **kwargs)

    def build_merging(self, stage: int) -> ConvMerging:
        return ConvMerging(self.num_features[stage],
                           self.num_features[stage + 1])
