"""BOAT-CSWin: the CSWin Transformer with feature-space local attention.

A CSWin Transformer (Dong et al. 2022: 7x7 stride-4 convolution stem,
cross-shaped stripe attention with LePE, 3x3 stride-2 convolution merging,
full attention in the last stage) in which some blocks also carry BOAT's
feature-space local attention (FSLA). A block computes::

    x = x + DropPath(CrossShapedWindowAttention(LN(x)))
    x = x + DropPath(FSLA(LN(x)))          # blocks listed in `fsla_blocks`
    x = x + DropPath(MLP(LN(x)))

The published models put FSLA in the even blocks (0, 2, 4, ...) of every
stage and use an attention scale of 1.0 inside FSLA.
"""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from timm.layers import DropPath, Mlp

from mmboat.registry import MODELS
from mmboat.utils import load_backbone_weights
from ..layers import FeatureSpaceLocalAttention
from .utils import freeze_stages, parse_fsla_blocks, parse_out_indices

HWShape = Tuple[int, int]


class CrossShapedWindowAttention(nn.Module):
    """CSWin's cross-shaped window self-attention with LePE, for any H x W.

    The channels and heads are split in two branches: the first attends
    inside vertical stripes (full height, ``split_size`` columns), the second
    inside horizontal stripes (``split_size`` rows, full width). With
    ``full_attention=True`` a single branch with all heads attends over the
    whole map (CSWin's last stage). Every branch adds LePE: a depthwise 3x3
    convolution of its values, computed inside each stripe.

    When a side of the map is not a multiple of ``split_size`` the map is
    zero-padded inside the attention: padded tokens are masked out as keys,
    contribute zeros to LePE (like the convolution's own zero padding) and
    their outputs are dropped, so the last stripe acts as a narrower stripe.

    Args:
        embed_dims (int): channels C.
        num_heads (int): heads, shared by the branches.
        split_size (int): stripe width in tokens.
        full_attention (bool): one branch over the whole map.
        qkv_bias (bool): bias in the qkv projection. Default: True.
        attn_drop (float): dropout on attention weights. Default: 0.
        proj_drop (float): dropout after the output projection. Default: 0.

    Shape:
        x: (B, H*W, C) tokens in row-major order; returns (B, H*W, C).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 split_size: int,
                 full_attention: bool = False,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        self.num_branches = 1 if full_attention else 2
        if num_heads % self.num_branches or embed_dims % num_heads:
            raise ValueError(
                f'embed_dims={embed_dims} must be divisible by num_heads='
                f'{num_heads}' + ('' if full_attention else
                                  ', and num_heads must be even (half the '
                                  'heads per stripe direction)'))
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.split_size = split_size
        self.scale = (embed_dims // num_heads)**-0.5
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        branch_dims = embed_dims // self.num_branches
        self.lepe = nn.ModuleList([
            nn.Conv2d(branch_dims, branch_dims, 3, padding=1,
                      groups=branch_dims) for _ in range(self.num_branches)
        ])
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        stripes = 'full map' if self.num_branches == 1 else \
            f'split_size={self.split_size}'
        return f'embed_dims={self.embed_dims}, ' \
               f'num_heads={self.num_heads}, {stripes}'

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw_shape
        qkv = self.qkv(x).view(B, H, W, 3, C)
        if self.num_branches == 1:
            out = self.stripe_attention(qkv, self.lepe[0], (H, W))
        else:
            c, s = C // 2, self.split_size
            out = torch.cat([
                self.stripe_attention(qkv[..., :c], self.lepe[0], (H, s)),
                self.stripe_attention(qkv[..., c:], self.lepe[1], (s, W))
            ], dim=-1)
        return self.proj_drop(self.proj(out.reshape(B, N, C)))

    def stripe_attention(self, qkv: torch.Tensor, lepe: nn.Module,
                         stripe_hw: HWShape) -> torch.Tensor:
        """Attention + LePE inside stripes of ``stripe_hw`` tokens.

        Args:
            qkv (Tensor): (B, H, W, 3, c), the branch's channels of q, k, v.
            lepe (nn.Module): the branch's depthwise 3x3 convolution.
            stripe_hw (tuple[int]): stripe height and width.

        Returns:
            Tensor: (B, H, W, c).
        """
        B, H, W, _, c = qkv.shape
        sh, sw = min(stripe_hw[0], H), min(stripe_hw[1], W)
        pad_h, pad_w = -H % sh, -W % sw
        if pad_h or pad_w:
            qkv = F.pad(qkv, (0, 0, 0, 0, 0, pad_w, 0, pad_h))
        nh, nw = (H + pad_h) // sh, (W + pad_w) // sw
        heads = self.num_heads // self.num_branches
        d = c // heads
        # (B, nh, sh, nw, sw, 3, heads, d) -> 3 x (B, nh*nw, heads, sh*sw, d)
        q, k, v = qkv.reshape(B, nh, sh, nw, sw, 3, heads, d).permute(
            5, 0, 1, 3, 6, 2, 4, 7).reshape(3, B, nh * nw, heads, sh * sw,
                                            d).unbind(0)
        mask = None
        if pad_h or pad_w:
            valid = torch.zeros(nh, sh, nw, sw, dtype=torch.bool,
                                device=qkv.device)
            valid.view(nh * sh, nw * sw)[:H, :W] = True
            mask = valid.transpose(1, 2).reshape(nh * nw, 1, 1, sh * sw)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        # LePE per stripe, channels head-major
        v_img = v.transpose(-1, -2).reshape(B * nh * nw, c, sh, sw)
        out = out + lepe(v_img).view(B, nh * nw, heads, d,
                                     sh * sw).transpose(-1, -2)
        out = out.view(B, nh, nw, heads, sh, sw, d).permute(
            0, 1, 4, 2, 5, 3, 6).reshape(B, nh * sh, nw * sw, c)
        return out[:, :H, :W] if pad_h or pad_w else out


class BOATCSWinBlock(nn.Module):
    """A CSWin block, optionally with FSLA between attention and MLP.

    Args:
        embed_dims (int): channels C.
        num_heads (int): heads of the stripe attention and of FSLA.
        split_size (int): stripe width.
        full_attention (bool): attend over the whole map (last stage).
        with_fsla (bool): add the FSLA branch.
        fsla_cfg (dict): keyword arguments of
            :class:`FeatureSpaceLocalAttention`.
        mlp_ratio (float): MLP hidden channels / C.
        qkv_bias (bool): bias in the qkv projections.
        drop_rate (float): dropout after projections and in the MLP.
        attn_drop_rate (float): dropout on attention weights.
        drop_path_rate (float): stochastic depth of every branch.
        with_cp (bool): gradient checkpointing of the block.

    Shape:
        x: (B, H*W, C); returns (B, H*W, C).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 split_size: int,
                 full_attention: bool,
                 with_fsla: bool,
                 fsla_cfg: dict,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = CrossShapedWindowAttention(
            embed_dims, num_heads, split_size, full_attention, qkv_bias,
            attn_drop_rate, drop_rate)
        if with_fsla:
            self.norm_fsla = nn.LayerNorm(embed_dims)
            self.fsla = FeatureSpaceLocalAttention(
                embed_dims, num_heads, qkv_bias=qkv_bias,
                attn_drop=attn_drop_rate, proj_drop=drop_rate, **fsla_cfg)
        else:
            self.norm_fsla = self.fsla = None
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop=drop_rate)
        self.drop_path = DropPath(drop_path_rate) \
            if drop_path_rate > 0. else nn.Identity()

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:

        def _forward(x):
            x = x + self.drop_path(self.attn(self.norm1(x), hw_shape))
            if self.fsla is not None:
                x = x + self.drop_path(self.fsla(self.norm_fsla(x), hw_shape))
            return x + self.drop_path(self.ffn(self.norm2(x)))

        if self.with_cp and x.requires_grad:
            return cp.checkpoint(_forward, x, use_reentrant=False)
        return _forward(x)


class ConvStem(nn.Module):
    """CSWin's patch embedding: Conv2d 7x7 stride 4 padding 2 + LayerNorm.

    Shape:
        x: (B, C_in, H, W); returns tokens (B, H'*W', C) and (H', W') with
        ``H' = (H - 3) // 4 + 1``.
    """

    def __init__(self, in_channels: int, embed_dims: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dims, 7, 4, 2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, HWShape]:
        x = self.proj(x)
        hw_shape = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(hw_shape)


class ConvMerging(nn.Module):
    """CSWin's merge block: Conv2d 3x3 stride 2 padding 1 + LayerNorm.

    Shape:
        x: (B, H*W, C_in); returns (B, H'*W', C_out) and (H', W') with
        ``H' = ceil(H / 2)``.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor,
                hw_shape: HWShape) -> Tuple[torch.Tensor, HWShape]:
        B, _, C = x.shape
        x = self.conv(x.transpose(1, 2).reshape(B, C, *hw_shape))
        hw_shape = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(hw_shape)


class BOATCSWinStage(nn.Module):
    """Blocks of one resolution, then the merge block to the next stage.

    Shape:
        x: (B, H*W, C); returns the merged tokens and their (H', W') (the
        input unchanged when there is no merge) and the stage output
        (B, H*W, C) with (H, W).
    """

    def __init__(self, blocks: List[BOATCSWinBlock],
                 downsample: Optional[ConvMerging]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw_shape: HWShape):
        for block in self.blocks:
            x = block(x, hw_shape)
        if self.downsample is None:
            return x, hw_shape, x, hw_shape
        x_down, down_hw_shape = self.downsample(x, hw_shape)
        return x_down, down_hw_shape, x, hw_shape


@MODELS.register_module()
class BOATCSWinTransformer(BaseModule):
    """BOAT-CSWin backbone for classification and dense prediction.

    Paper: BOAT: Bilateral Local Attention Vision Transformer (BMVC 2022),
    on top of CSWin Transformer (CVPR 2022). Works for any input size and
    batch size; stage ``i`` has stride ``4 * 2**i``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (see
            :attr:`arch_zoo`) or a dict with keys ``embed_dims`` (int),
            ``depths``, ``num_heads``, ``split_sizes`` (one int per stage).
            The last stage always uses full attention. Default: 'tiny'.
        in_channels (int): input channels. Default: 3.
        mlp_ratio (float): MLP hidden channels / channels. Default: 4.
        qkv_bias (bool): bias in the qkv projections. Default: True.
        drop_rate (float): dropout rate. Default: 0.
        attn_drop_rate (float): attention dropout rate. Default: 0.
        drop_path_rate (float): stochastic depth, rising linearly from 0 to
            this over the blocks. Default: 0.1.
        fsla_blocks (Sequence[Sequence[int]], optional): per stage, the block
            indices that carry FSLA. None means the even blocks of every
            stage, as in the published models.
        fsla_cfg (dict, optional): overrides of the FSLA arguments
            (``cluster_size``, ``overlap``, ``num_iters``, ``temperature``,
            ``qk_scale``); defaults are the published ones, ``qk_scale=1.0``.
        out_indices (Sequence[int]): stages whose outputs are returned, each
            through its own LayerNorm ``norm{i}``. Default: (0, 1, 2, 3).
        frozen_stages (int): freeze the stem and the first ``frozen_stages``
            stages (-1: nothing, 0: the stem only). Default: -1.
        with_cp (bool): gradient checkpointing of every block. Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an mmboat checkpoint (see
            ``tools/model_converters/boat_cswin_to_mmboat.py``).

    Shape:
        x: (B, in_channels, H, W); returns a tuple with, for every index in
        ``out_indices``, a (B, C_i, H_i, W_i) map, ``C_i = embed_dims * 2**i``.
    """
    arch_zoo = {
        'tiny': dict(embed_dims=64, depths=(1, 2, 21, 1),
                     num_heads=(2, 4, 8, 16), split_sizes=(1, 2, 7, 7)),
        'small': dict(embed_dims=64, depths=(2, 4, 32, 2),
                      num_heads=(2, 4, 8, 16), split_sizes=(1, 2, 7, 7)),
        'base': dict(embed_dims=96, depths=(2, 4, 32, 2),
                     num_heads=(4, 8, 16, 32), split_sizes=(1, 2, 7, 7)),
    }
    default_fsla_cfg = dict(
        cluster_size=49, overlap=20, num_iters=2, temperature=100.,
        qk_scale=1.0)

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 mlp_ratio: float = 4.,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 fsla_blocks: Optional[Sequence[Sequence[int]]] = None,
                 fsla_cfg: Optional[dict] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        arch = self.parse_arch(arch)
        depths = arch['depths']
        num_stages = len(depths)
        self.arch = arch
        self.num_stages = num_stages
        self.embed_dims = arch['embed_dims']
        self.num_features = [self.embed_dims * 2**i for i in range(num_stages)]
        if fsla_blocks is None:  # published: the even blocks of every stage
            fsla_blocks = tuple(tuple(range(0, d, 2)) for d in depths)
        self.fsla_blocks = parse_fsla_blocks(fsla_blocks, depths)
        unknown = set(fsla_cfg or {}) - set(self.default_fsla_cfg)
        if unknown:
            raise ValueError(f'unknown fsla_cfg keys {sorted(unknown)}; '
                             f'allowed: {sorted(self.default_fsla_cfg)}')
        fsla_cfg = {**self.default_fsla_cfg, **(fsla_cfg or {})}
        self.out_indices = parse_out_indices(out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        self.frozen_stages = frozen_stages

        self.patch_embed = ConvStem(in_channels, self.embed_dims)
        total = sum(depths)
        dpr = [drop_path_rate * j / max(total - 1, 1) for j in range(total)]
        self.stages = nn.ModuleList()
        for i, dims in enumerate(self.num_features):
            last = i == num_stages - 1
            blocks = [
                BOATCSWinBlock(
                    dims, arch['num_heads'][i], arch['split_sizes'][i],
                    full_attention=last,
                    with_fsla=j in self.fsla_blocks[i],
                    fsla_cfg=fsla_cfg,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    drop_path_rate=dpr[sum(depths[:i]) + j],
                    with_cp=with_cp) for j in range(depths[i])
            ]
            downsample = None if last else ConvMerging(dims, dims * 2)
            self.stages.append(BOATCSWinStage(blocks, downsample))
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))
        self._freeze_stages()

    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """Resolve a preset name or check an explicit arch dict."""
        keys = ('embed_dims', 'depths', 'num_heads', 'split_sizes')
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise ValueError(
                    f'unknown BOAT-CSWin arch {arch!r}: use one of '
                    f'{sorted(cls.arch_zoo)} or a dict with keys {keys}')
            return copy.deepcopy(cls.arch_zoo[arch.lower()])
        if not isinstance(arch, dict):
            raise ValueError(f'arch must be a preset name or a dict with '
                             f'keys {keys}, got {type(arch).__name__}')
        missing, extra = set(keys) - set(arch), set(arch) - set(keys)
        if missing or extra:
            raise ValueError(
                f'arch dict must have exactly the keys {keys}; missing '
                f'{sorted(missing)}, unexpected {sorted(extra)}')
        arch = {k: arch[k] for k in keys}
        arch['embed_dims'] = int(arch['embed_dims'])
        for k in keys[1:]:
            arch[k] = tuple(int(v) for v in arch[k])
        if not len(arch['depths']) == len(arch['num_heads']) == len(
                arch['split_sizes']) >= 1:
            raise ValueError('arch depths, num_heads and split_sizes must '
                             'have one entry per stage')
        if min(arch['depths'] + arch['split_sizes']) < 1:
            raise ValueError('arch depths and split_sizes must be >= 1')
        return arch

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x, hw_shape = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x, next_hw_shape, out, hw_shape = stage(x, hw_shape)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(
                    out.transpose(1, 2).reshape(-1, self.num_features[i],
                                                *hw_shape).contiguous())
            hw_shape = next_hw_shape
        return tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def _freeze_stages(self):
        freeze_stages(self, self.frozen_stages, [self.patch_embed])

    def init_weights(self):
        """Initialise from scratch, then load ``init_cfg``'s checkpoint.

        From scratch as CSWin: truncated normal (std 0.02) for linear layers,
        zero biases, LayerNorms at 1 / 0, convolutions at PyTorch's default.
        ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` then loads an
        mmboat checkpoint with :func:`mmboat.utils.load_backbone_weights`.
        """
        cfg = self.init_cfg
        if cfg is not None and not (isinstance(cfg, dict)
                                    and cfg.get('type') == 'Pretrained'
                                    and 'checkpoint' in cfg):
            raise ValueError(
                f"{type(self).__name__} supports init_cfg=None or dict(type="
                f"'Pretrained', checkpoint=PATH), got {cfg}")
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_init(m, std=.02, bias=0.)
            elif isinstance(m, nn.LayerNorm):
                constant_init(m, val=1., bias=0.)
        if cfg is not None:
            load_backbone_weights(
                self, cfg['checkpoint'], ('stage1_conv_embed.', 'layers.'),
                'tools/model_converters/boat_cswin_to_mmboat.py')
        self._is_init = True
