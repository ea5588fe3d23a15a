"""BOAT-Swin: a Swin Transformer whose shifted blocks also run FSLA.

A BOAT-Swin block is a Swin block with a feature-space local attention
(:class:`~mmboat.models.layers.FeatureSpaceLocalAttention`) branch between
the window attention and the MLP::

    x = x + DropPath(W-MSA(LN1(x)))
    x = x + FSLA(LN_fsla(x))          # no DropPath on this branch
    x = x + DropPath(MLP(LN2(x)))
"""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed, PatchMerging
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.utils.attention import ShiftWindowMSA

from mmboat.registry import MODELS
from mmboat.utils import load_backbone_weights
from ..layers import FeatureSpaceLocalAttention
from .utils import freeze_stages, parse_fsla_blocks, parse_out_indices

ARCH_KEYS = ('embed_dims', 'depths', 'num_heads')


class PaddedShiftWindowMSA(ShiftWindowMSA):
    """(Shifted) window attention that runs on any H x W.

    mmpretrain's ``ShiftWindowMSA`` (window attention with relative position
    bias, cyclic shift and shift masks, DropPath on the output) with the
    window rule of the published model: the map is zero-padded at the
    bottom/right to a multiple of the window (small maps included), and the
    shift is skipped when the padded map is a single window, as official
    Swin does for a 7 x 7 map (stage 4 at 224). ``relative_position_index``
    is derived, so it is kept out of the state dict.

    Shape:
        query: (B, H * W, C) tokens in row-major order; returns (B, H * W, C).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int,
                 shift_size: int = 0,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.,
                 drop_path: float = 0.):
        super().__init__(
            embed_dims,
            num_heads,
            window_size,
            shift_size=shift_size,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path),
            pad_small_map=True,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop)
        index = self.w_msa.relative_position_index
        del self.w_msa.relative_position_index
        self.w_msa.register_buffer(
            'relative_position_index', index, persistent=False)

    def forward(self, query: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, L, C = query.shape
        H, W = hw_shape
        ws = self.window_size
        x = F.pad(query.view(B, H, W, C), (0, 0, 0, -W % ws, 0, -H % ws))
        H_pad, W_pad = x.shape[1:3]
        shift = self.shift_size if max(H_pad, W_pad) > ws else 0
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        mask = self.get_attn_mask((H_pad, W_pad), ws, shift, device=x.device)
        if mask is not None:
            mask = mask.to(x.dtype)
        windows = self.window_partition(x, ws).view(-1, ws * ws, C)
        windows = self.w_msa(windows, mask=mask).view(-1, ws, ws, C)
        x = self.window_reverse(windows, H_pad, W_pad, ws)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        x = x[:, :H, :W].reshape(B, H * W, C)
        return self.drop(x)


class BOATSwinBlock(BaseModule):
    """Swin block with an optional FSLA branch.

    Args:
        embed_dims (int): channels C.
        num_heads (int): heads of both attentions.
        feedforward_channels (int): hidden channels of the MLP.
        window_size (int): window side. Default: 7.
        shift (bool): shifted windows (by ``window_size // 2``).
        with_fsla (bool): add the FSLA branch.
        qkv_bias (bool): bias in the qkv projections. Default: True.
        drop_rate (float): dropout after projections. Default: 0.
        attn_drop_rate (float): dropout on attention weights. Default: 0.
        drop_path_rate (float): stochastic depth of the W-MSA and MLP
            branches. Default: 0.
        fsla_cfg (dict, optional): extra arguments of
            :class:`FeatureSpaceLocalAttention` (``cluster_size``...).
        with_cp (bool): gradient checkpointing. Default: False.

    Shape:
        x: (B, H * W, C); returns (B, H * W, C).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 feedforward_channels: int,
                 window_size: int = 7,
                 shift: bool = False,
                 with_fsla: bool = False,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 fsla_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = PaddedShiftWindowMSA(
            embed_dims,
            num_heads,
            window_size,
            shift_size=window_size // 2 if shift else 0,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            drop_path=drop_path_rate)
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
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            act_cfg=dict(type='GELU'),
            add_identity=True)

    def forward(self, x: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:

        def _inner_forward(x):
            x = x + self.attn(self.norm1(x), hw_shape)
            if self.fsla is not None:
                x = x + self.fsla(self.norm_fsla(x), hw_shape)
            return self.ffn(self.norm2(x), identity=x)

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_inner_forward, x, use_reentrant=False)
        return _inner_forward(x)


class BOATSwinStage(BaseModule):
    """Blocks of one stage, then an optional 2x2 patch merging.

    Args:
        embed_dims (int): channels C of the stage.
        depth (int): number of blocks.
        num_heads (int): attention heads.
        fsla_blocks (Sequence[int]): indices of the blocks with FSLA.
        drop_path_rates (Sequence[float]): stochastic depth of every block.
        downsample (bool): end with a patch merging to 2C channels.
        **block_kwargs: the other :class:`BOATSwinBlock` arguments.

    Shape:
        x: (B, H * W, C). Returns ``(x_down, down_hw, x, hw)``: the merged
        tokens (B, H/2 * W/2, 2C) (``x`` itself without downsample) with
        their grid, and the output of the last block (B, H * W, C) with its.
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 fsla_blocks: Sequence[int],
                 drop_path_rates: Sequence[float],
                 downsample: bool,
                 init_cfg=None,
                 **block_kwargs):
        super().__init__(init_cfg)
        self.blocks = ModuleList([
            BOATSwinBlock(
                embed_dims,
                num_heads,
                shift=i % 2 == 1,
                with_fsla=i in fsla_blocks,
                drop_path_rate=drop_path_rates[i],
                **block_kwargs) for i in range(depth)
        ])
        self.downsample = PatchMerging(
            embed_dims, 2 * embed_dims,
            norm_cfg=dict(type='LN')) if downsample else None

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]):
        for block in self.blocks:
            x = block(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_hw = self.downsample(x, hw_shape)
        return x_down, down_hw, x, hw_shape


def published_fsla_blocks(depths: Sequence[int],
                          window_size: int = 7,
                          pretrain_img_size: Union[int, Tuple[int,
                                                              int]] = 224,
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
class BOATSwinTransformer(BaseModule):
    """BOAT-Swin backbone for classification and dense prediction.

    `BOAT: Bilateral Local Attention Vision Transformer
    <https://arxiv.org/abs/2201.13027>`_. Built like mmdet's Swin backbone:
    any input size (padded to windows and merges inside), LayerNorm
    ``norm{i}`` on every output stage, ``frozen_stages``, ``with_cp``.

    Presets (``arch``; ImageNet-1k drop path 0.2 / 0.3 / 0.5):

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
        mlp_ratio (float): MLP hidden / embed channels. Default: 4.
        qkv_bias (bool): bias in the qkv projections. Default: True.
        drop_rate (float): dropout after the patch embedding and the
            projections. Default: 0.
        attn_drop_rate (float): dropout on attention weights. Default: 0.
        drop_path_rate (float): stochastic depth, growing linearly from 0
            over the blocks to this value. Default: 0.1.
        out_indices (Sequence[int]): stages whose outputs are returned.
            Default: (0, 1, 2, 3).
        frozen_stages (int): freeze the patch embedding (0) and the first
            ``frozen_stages`` stages; -1 freezes nothing. Default: -1.
        with_cp (bool): gradient checkpointing of every block.
            Default: False.
        fsla_blocks (Sequence[Sequence[int]], optional): per stage, the
            indices of the blocks with FSLA. Default (None): the published
            placement, see :func:`published_fsla_blocks`.
        fsla_cfg (dict, optional): extra arguments of
            :class:`FeatureSpaceLocalAttention` (``cluster_size``,
            ``overlap``, ``num_iters``, ``temperature``, ``qk_scale``).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an mmboat checkpoint (see
            :meth:`init_weights`); other initialisers as in MMEngine.

    Shape:
        x: (B, in_channels, H, W). Returns a tuple with, for every stage i
        of ``out_indices``, (B, embed_dims * 2**i, ceil(H / 2**(i+2)),
        ceil(W / 2**(i+2))).
    """
    arch_zoo = {
        'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2),
                     num_heads=(3, 6, 12, 24)),
        'small': dict(embed_dims=96, depths=(2, 2, 18, 2),
                      num_heads=(3, 6, 12, 24)),
        'base': dict(embed_dims=128, depths=(2, 2, 18, 2),
                     num_heads=(4, 8, 16, 32)),
    }
    patch_size = 4

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 pretrain_img_size: Union[int, Tuple[int, int]] = 224,
                 in_channels: int = 3,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 fsla_blocks: Optional[Sequence[Sequence[int]]] = None,
                 fsla_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        arch = self.parse_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.depths = tuple(arch['depths'])
        self.num_heads = tuple(arch['num_heads'])
        num_stages = len(self.depths)
        self.num_features = [self.embed_dims * 2**i for i in range(num_stages)]
        self.out_indices = parse_out_indices(out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages
        if fsla_blocks is None:
            fsla_blocks = published_fsla_blocks(self.depths, window_size,
                                                pretrain_img_size,
                                                self.patch_size)
        self.fsla_blocks = parse_fsla_blocks(fsla_blocks, self.depths)

        self.patch_embed = PatchEmbed(
            in_channels=in_channels,
            embed_dims=self.embed_dims,
            conv_type='Conv2d',
            kernel_size=self.patch_size,
            stride=self.patch_size,
            norm_cfg=dict(type='LN'))
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        num_blocks = sum(self.depths)
        dpr = [drop_path_rate * i / max(num_blocks - 1, 1)
               for i in range(num_blocks)]
        self.stages = ModuleList()
        for i, (depth, dims) in enumerate(zip(self.depths,
                                              self.num_features)):
            start = sum(self.depths[:i])
            self.stages.append(
                BOATSwinStage(
                    embed_dims=dims,
                    depth=depth,
                    num_heads=self.num_heads[i],
                    fsla_blocks=self.fsla_blocks[i],
                    drop_path_rates=dpr[start:start + depth],
                    downsample=i < num_stages - 1,
                    feedforward_channels=int(mlp_ratio * dims),
                    window_size=window_size,
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    fsla_cfg=fsla_cfg,
                    with_cp=with_cp))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """A preset name or an arch dict -> validated arch dict."""
        hint = (f"use one of {sorted(cls.arch_zoo)} or a dict with keys "
                f"{list(ARCH_KEYS)}, e.g. dict(embed_dims=96, "
                "depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))")
        if isinstance(arch, str):
            if arch not in cls.arch_zoo:
                raise ValueError(f'unknown BOAT-Swin arch {arch!r}: {hint}')
            return dict(cls.arch_zoo[arch])
        if not isinstance(arch, dict):
            raise ValueError(f'arch must be a str or a dict, got '
                             f'{type(arch).__name__}: {hint}')
        missing = [k for k in ARCH_KEYS if k not in arch]
        unknown = sorted(set(arch) - set(ARCH_KEYS))
        if missing or unknown:
            raise ValueError(f'BOAT-Swin arch dict: missing keys {missing}, '
                             f'unknown keys {unknown}: {hint}')
        arch = dict(arch)
        depths, heads = tuple(arch['depths']), tuple(arch['num_heads'])
        if len(depths) != len(heads) or not depths:
            raise ValueError(f'arch depths {depths} and num_heads {heads} '
                             'must give one value per stage')
        for i, h in enumerate(heads):
            if (arch['embed_dims'] * 2**i) % h:
                raise ValueError(
                    f'stage {i} has {arch["embed_dims"] * 2**i} channels, '
                    f'not divisible by num_heads[{i}]={h}')
        return dict(embed_dims=arch['embed_dims'], depths=depths,
                    num_heads=heads)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def _freeze_stages(self):
        freeze_stages(self, self.frozen_stages, [self.patch_embed, self.drop_after_pos])

    def init_weights(self):
        """Initialise from scratch, or load ``init_cfg.checkpoint``.

        From scratch as Swin / BOAT: truncated normal (std 0.02) for linear
        layers and relative position tables, zero biases, LayerNorms at 1/0,
        convolutions at PyTorch's default.

        With ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` the file
        is read with :func:`mmboat.utils.load_checkpoint_file` (no code from
        it runs). Its ``state_dict`` may be a backbone's, a classifier's or a
        detector's: with ``backbone.`` keys only those are used, otherwise
        ``head.*`` and ``neck.*`` are ignored. Every weight of the backbone
        must be there except the output norms ``norm{i}`` (a classification
        checkpoint only has the last); anything else missing, unexpected or
        of the wrong shape raises a ValueError listing the keys.
        """
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            if cfg is None:
                self._init_from_scratch()
            return
        if 'checkpoint' not in cfg:
            raise ValueError("init_cfg of type 'Pretrained' needs a "
                             "'checkpoint' path")
        self._init_from_scratch()
        load_backbone_weights(self, cfg['checkpoint'],
                              ('layers.', 'patch_embed.proj.'),
                              'tools/model_converters/boat_swin_to_mmboat.py')
        self._is_init = True

    def _init_from_scratch(self):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, PaddedShiftWindowMSA):
                trunc_normal_(m.w_msa.relative_position_bias_table, std=.02)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x, hw_shape = self.patch_embed(x)
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x, hw_shape, out, out_hw_shape = stage(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                out = out.view(-1, *out_hw_shape, self.num_features[i])
                outs.append(out.permute(0, 3, 1, 2).contiguous())
        return tuple(outs)
