"""What every BOAT backbone shares: the block, the stage, the backbone.

A BOAT backbone is a stem (image -> tokens at stride 4), then stages of
blocks; every stage but the last ends with a merge that halves the
resolution and doubles the channels, and every output stage ``i`` has its
LayerNorm ``norm{i}``. A block is an image-space local attention (windows
or stripes), in some blocks feature-space local attention (FSLA), and an
MLP::

    x = x + DropPath(Attn(LN1(x)))
    x = x + DropPath(FSLA(LN_fsla(x)))   # blocks of fsla_blocks; DropPath
                                         # only if the family has it there
    x = x + DropPath(MLP(LN2(x)))

A family (:mod:`.boat_swin`, :mod:`.boat_cswin`) gives its presets, its
block (which attention), its stem and its merge; everything else is done
here, the same way for every family: arch parsing, FSLA options and
placement, the drop path schedule, the stage loop, output norms, freezing,
``init_cfg`` and loading of state dicts written by older versions.
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.drop import drop_path
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import initialize, trunc_normal_

from mmboat.families import Family
from ..layers import FeatureSpaceLocalAttention
from ..validate import (check_backbone_args, image_batch_error, parse_arch,
                        parse_fsla_blocks, parse_fsla_cfg, parse_out_indices)
from .loading import load_backbone_weights

HWShape = Tuple[int, int]


def drop_path_rates(drop_path_rate: float,
                    depths: Sequence[int]) -> List[List[float]]:
    """Per stage, the stochastic depth of every block: rising linearly
    from 0 (first block) to ``drop_path_rate`` (last block)."""
    total = sum(depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    starts = [sum(depths[:i]) for i in range(len(depths))]
    return [rates[s:s + d] for s, d in zip(starts, depths)]


def tokens_to_map(x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
    """(B, H * W, C) tokens on a (H, W) grid -> a (B, C, H, W) map."""
    batch, _, channels = x.shape
    return x.view(batch, *hw_shape, channels).permute(0, 3, 1, 2).contiguous()


def freeze_stages(backbone: nn.Module, frozen_stages: int,
                  stem: Iterable[nn.Module]) -> None:
    """Eval mode and no gradients for the stem (``frozen_stages >= 0``) and
    for the first ``frozen_stages`` of ``backbone.stages`` with their output
    norms ``norm{i}``."""
    frozen = list(stem) if frozen_stages >= 0 else []
    for i in range(frozen_stages):
        frozen.append(backbone.stages[i])
        if i in backbone.out_indices:
            frozen.append(getattr(backbone, f'norm{i}'))
    for module in frozen:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False


class BaseBOATBlock(BaseModule):
    """A BOAT block: image-space attention, optional FSLA, MLP.

    A family's block sets :attr:`attention` (called as
    ``attention(embed_dims, num_heads, qkv_bias=..., attn_drop=...,
    proj_drop=..., **attn_cfg)``, then on ``(x, hw_shape)``) and
    :attr:`fsla_drop_path`. The MLP is mmcv's ``FFN`` (GELU), stochastic
    depth mmcv's ``drop_path``.

    Args:
        embed_dims (int): channels C.
        num_heads (int): heads of the attention and of FSLA.
        attn_cfg (dict, optional): the family's arguments of
            :attr:`attention`.
        mlp_ratio (float): MLP hidden channels / C. Default: 4.
        with_fsla (bool): add the FSLA branch. Default: False.
        fsla_cfg (dict, optional): FSLA options
            (:data:`.validate.FSLA_OPTIONS`).
        qkv_bias (bool): bias in the qkv projections. Default: True.
        drop_rate (float): dropout after projections and in the MLP.
            Default: 0.
        attn_drop_rate (float): dropout on attention weights. Default: 0.
        drop_path_rate (float): stochastic depth of the branches.
            Default: 0.
        with_cp (bool): gradient checkpointing. Default: False.

    Shape:
        x: (B, H * W, C); returns (B, H * W, C).
    """
    #: the image-space attention
    attention: Optional[type] = None
    #: whether the FSLA branch has stochastic depth too
    fsla_drop_path: bool = True

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 attn_cfg: Optional[dict] = None,
                 mlp_ratio: float = 4.,
                 with_fsla: bool = False,
                 fsla_cfg: Optional[dict] = None,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.with_cp = with_cp
        self.drop_path_rate = drop_path_rate
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = self.attention(
            embed_dims,
            num_heads,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            **(attn_cfg or {}))
        if with_fsla:
            self.norm_fsla = nn.LayerNorm(embed_dims)
            self.fsla = FeatureSpaceLocalAttention(
                embed_dims,
                num_heads,
                qkv_bias=qkv_bias,
                attn_drop=attn_drop_rate,
                proj_drop=drop_rate,
                **(fsla_cfg or {}))
        else:
            self.norm_fsla = self.fsla = None
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * mlp_ratio),
            num_fcs=2,
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            act_cfg=dict(type='GELU'),
            add_identity=True)

    def _drop_path(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_path_rate, self.training)

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:

        def _inner_forward(x):
            x = x + self._drop_path(self.attn(self.norm1(x), hw_shape))
            if self.fsla is not None:
                y = self.fsla(self.norm_fsla(x), hw_shape)
                x = x + (self._drop_path(y) if self.fsla_drop_path else y)
            return self.ffn(self.norm2(x), identity=x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


class BOATStage(BaseModule):
    """Blocks of one resolution, then an optional merge to the next stage.

    Args:
        blocks (list[nn.Module]): the blocks, called on ``(x, hw_shape)``.
        downsample (nn.Module, optional): the merge, called on
            ``(x, hw_shape)`` and returning the merged tokens and grid.

    Shape:
        x: (B, H * W, C). Returns ``(x_down, down_hw, x, hw)``: the merged
        tokens with their grid (``x`` itself without a merge) and the
        output of the last block (B, H * W, C) with its grid.
    """

    def __init__(self,
                 blocks: List[nn.Module],
                 downsample: Optional[nn.Module] = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.blocks = ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw_shape: HWShape):
        for block in self.blocks:
            x = block(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_hw_shape = self.downsample(x, hw_shape)
        return x_down, down_hw_shape, x, hw_shape


class BaseBOATBackbone(BaseModule):
    """The part of a BOAT backbone that every family shares.

    A family subclass sets the class attributes below, and its
    ``__init__`` calls this one, builds its stem as ``self.patch_embed``
    (image -> tokens and grid), then calls :meth:`build_stages`; it
    implements :meth:`build_block` and :meth:`build_merging`.

    Args:
        arch (str | dict): a preset of :attr:`arch_zoo` (any case), or a
            dict with the keys :attr:`arch_keys`.
        in_channels (int): channels of the input images. Default: 3.
        mlp_ratio (float): MLP hidden / embed channels. Default: 4.
        qkv_bias (bool): bias in the qkv projections. Default: True.
        drop_rate (float): dropout after the projections and in the MLP.
            Default: 0.
        attn_drop_rate (float): dropout on attention weights. Default: 0.
        drop_path_rate (float): stochastic depth, rising linearly from 0
            over the blocks to this value (:func:`drop_path_rates`).
            Default: 0.1.
        out_indices (Sequence[int]): stages whose outputs are returned,
            each through its LayerNorm ``norm{i}``. Default: (0, 1, 2, 3).
        frozen_stages (int): freeze the stem (0) and the first
            ``frozen_stages`` stages; -1 freezes nothing. Default: -1.
        with_cp (bool): gradient checkpointing of every block.
            Default: False.
        fsla_cfg (dict, optional): FSLA options (``cluster_size``,
            ``overlap``, ``num_iters``, ``temperature``, ``qk_scale``)
            over the family's :attr:`default_fsla_cfg`.
        init_cfg (dict, optional): see :meth:`init_weights`.

    Every argument is checked by :mod:`.validate` when the backbone is
    built, the same way for every family: a bad value raises a ValueError
    or TypeError naming it, what is allowed and the fix.
    """
    #: the family's description (:mod:`mmboat.families`): its presets,
    #: published files and the converter of its official files
    description: Optional[Family] = None
    #: the family, for messages (``description.name``)
    family: str = 'BOAT'
    #: presets: name (lower case) -> arch dict (``description.arch_zoo``)
    arch_zoo: Dict[str, dict] = {}
    #: keys of an arch dict: ``embed_dims``, then one value per stage each
    arch_keys: Tuple[str, ...] = ('embed_dims', 'depths', 'num_heads')
    #: FSLA options of the published models; the rest are FSLA's defaults
    default_fsla_cfg: dict = {}

    @property
    def official_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes of the family's unconverted official files."""
        return self.description.official_prefixes

    @property
    def converter(self) -> str:
        """The script that converts the family's official files."""
        return self.description.converter

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 fsla_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        self.arch = self.parse_arch(arch)
        self.embed_dims = self.arch['embed_dims']
        self.depths = self.arch['depths']
        self.num_heads = self.arch['num_heads']
        self.num_stages = len(self.depths)
        self.num_features = [
            self.embed_dims * 2**i for i in range(self.num_stages)
        ]
        args = check_backbone_args(
            self.family,
            self.embed_dims,
            self.num_stages,
            in_channels=in_channels,
            mlp_ratio=mlp_ratio,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate,
            frozen_stages=frozen_stages)
        self.in_channels = args['in_channels']
        self.out_indices = parse_out_indices(out_indices, self.num_stages,
                                             self.family)
        self.frozen_stages = args['frozen_stages']
        self.fsla_cfg = parse_fsla_cfg(fsla_cfg, self.default_fsla_cfg,
                                       self.family)
        self.drop_path_rate = args['drop_path_rate']
        self.block_cfg = dict(
            mlp_ratio=args['mlp_ratio'],
            qkv_bias=qkv_bias,
            drop_rate=args['drop_rate'],
            attn_drop_rate=args['attn_drop_rate'],
            with_cp=with_cp)

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """A preset name (any case) or an arch dict -> a new, checked arch
        dict: ``embed_dims`` an int, the other keys tuples of ints, one per
        stage (:func:`.validate.parse_arch`, then :meth:`check_arch`)."""
        parsed = parse_arch(arch, cls.arch_zoo, cls.arch_keys, cls.family)
        cls.check_arch(parsed)
        return parsed

    @classmethod
    def check_arch(cls, arch: dict) -> None:
        """The family's own rules on a parsed arch dict (none here)."""

    def build_stages(self, fsla_blocks: Sequence[Sequence[int]],
                     **block_cfg) -> None:
        """Build the stages (:class:`BOATStage`), the output norms
        ``norm{i}``, and freeze. ``block_cfg``: the family's arguments of
        its blocks, added to the common ones."""
        self.fsla_blocks = parse_fsla_blocks(fsla_blocks, self.depths,
                                             self.family)
        rates = drop_path_rates(self.drop_path_rate, self.depths)
        self.stages = ModuleList()
        for i, depth in enumerate(self.depths):
            blocks = [
                self.build_block(
                    i,
                    j,
                    with_fsla=j in self.fsla_blocks[i],
                    fsla_cfg=self.fsla_cfg,
                    drop_path_rate=rates[i][j],
                    **self.block_cfg,
                    **block_cfg) for j in range(depth)
            ]
            last = i == self.num_stages - 1
            downsample = None if last else self.build_merging(i)
            self.stages.append(BOATStage(blocks, downsample))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._freeze_stages()

    def build_block(self, stage: int, index: int, **kwargs) -> nn.Module:
        """Block ``index`` of stage ``stage``, with the common ``kwargs``
        (``with_fsla``, ``fsla_cfg``, ``drop_path_rate``, ``mlp_ratio``,
        ...)."""
        raise NotImplementedError

    def build_merging(self, stage: int) -> nn.Module:
        """The merge at the end of ``stage``: ``num_features[stage]`` ->
        ``num_features[stage + 1]`` channels, half the resolution."""
        raise NotImplementedError

    def forward_stages(
        self,
        x: torch.Tensor,
        num_stages: Optional[int] = None
    ) -> List[Tuple[torch.Tensor, HWShape]]:
        """(B, in_channels, H, W) images -> for each of the first
        ``num_stages`` stages (None: all), the output of its last block,
        (B, H_i * W_i, C_i) before the merge and the output norm, with its
        grid (H_i, W_i). Only the shape of the input is checked (a 4-D
        batch of ``in_channels``, H, W >= 1): one condition that compile
        and export trace; a dtype or device other than the weights' is
        refused by the stem's own layers."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or \
                x.shape[2] < 1 or x.shape[3] < 1:
            raise image_batch_error(x.shape, self.in_channels, self.family)
        x, hw_shape = self.patch_embed(x)
        outs = []
        for stage in list(self.stages)[:num_stages]:
            x, next_hw_shape, out, hw_shape = stage(x, hw_shape)
            outs.append((out, hw_shape))
            hw_shape = next_hw_shape
        return outs

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, in_channels, H, W) images -> one (B, C_i, H_i, W_i) map per
        stage of ``out_indices``, through its norm ``norm{i}``; an empty
        batch (B = 0) gives empty maps (input shapes are checked by
        :meth:`forward_stages`)."""
        return tuple(
            tokens_to_map(getattr(self, f'norm{i}')(out), hw_shape)
            for i, (out, hw_shape) in enumerate(self.forward_stages(x))
            if i in self.out_indices)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def _freeze_stages(self):
        freeze_stages(self, self.frozen_stages, [self.patch_embed])

    def init_weights(self):
        """Initialise from scratch, then as ``init_cfg`` says.

        From scratch (always first) as Swin / CSWin / BOAT: truncated
        normal (std 0.02) for linear layers and relative position tables,
        zero biases, LayerNorms at 1 / 0, convolutions at PyTorch's default.
        Then, by ``init_cfg``:

        - None: nothing more;
        - ``dict(type='Pretrained', checkpoint=PATH)``: the file is read
          with :func:`mmboat.utils.load_checkpoint_file` (no code from it
          runs) and loaded by :meth:`load_weights`.
          Its ``state_dict`` may be a backbone's, a classifier's or a
          detector's: with ``backbone.`` keys (or those under
          ``init_cfg``'s ``prefix``) only those are used, otherwise
          ``head.*`` and ``neck.*`` are ignored. ``mmboat://NAME`` is a
          checkpoint shipped with the package (``mmboat/checkpoints/NAME``,
          e.g. the tiny-shapes pretrained backbones). Every weight of
          the backbone must be there except the output norms ``norm{i}``
          (a classification checkpoint only has the last); anything else
          missing, unexpected or of the wrong shape raises a ValueError
          listing the keys;
        - any other MMEngine initialiser (``dict(type='Kaiming',
          layer='Linear')``, a list of them...): applied by MMEngine's
          ``initialize`` over the from-scratch initialisation.
        """
        cfg = self.init_cfg
        pretrained = isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'
        if pretrained and 'checkpoint' not in cfg:
            raise ValueError(
                "init_cfg=dict(type='Pretrained', checkpoint=PATH) needs a "
                f'checkpoint path, got {cfg}')
        self.init_cfg = None  # the submodules' own init_weights first
        try:
            super().init_weights()
        finally:
            self.init_cfg = cfg
        self._init_from_scratch()
        if pretrained:
            self.load_weights(cfg['checkpoint'], cfg.get('prefix'))
        elif cfg is not None:
            initialize(self, cfg)

    def load_weights(self, checkpoint: str, prefix: Optional[str] = None):
        """Load an mmboat checkpoint, every weight checked
        (:func:`.loading.load_backbone_weights`): what ``init_cfg=dict(
        type='Pretrained', checkpoint=checkpoint, prefix=prefix)`` loads."""
        load_backbone_weights(self, checkpoint, prefix)

    def _init_from_scratch(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif hasattr(m, 'relative_position_bias_table'):
                trunc_normal_(m.relative_position_bias_table, std=.02)
