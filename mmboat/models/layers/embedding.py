"""Stems (image -> tokens) and merges (tokens -> tokens at half the
resolution) of the BOAT backbones.

All four share one interface: a stem maps (B, C_in, H, W) to tokens
(B, H' * W', C) and their grid (H', W'); a merge maps tokens (B, H * W, C)
of an H x W grid to (B, H' * W', C_out) and (H', W').

- BOAT-Swin: :class:`PatchStem` (4 x 4 patches through a stride-4
  convolution, LayerNorm, dropout) and :class:`UnfoldMerging` (2 x 2
  neighbours concatenated, LayerNorm, linear), mmcv's ``PatchEmbed`` and
  ``PatchMerging`` configured as in Swin;
- BOAT-CSWin: :class:`ConvStem` (7 x 7 convolution, stride 4, LayerNorm)
  and :class:`ConvMerging` (3 x 3 convolution, stride 2, LayerNorm).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import PatchEmbed, PatchMerging
from mmengine.model import BaseModule

from ..validate import check_positive_ints
from .padding import has_padding, padding_to_multiple

HWShape = Tuple[int, int]


class PatchStem(PatchEmbed):
    """Swin's patch embedding: non-overlapping ``patch_size`` patches
    through a convolution, LayerNorm, then dropout.

    The map is zero-padded at the bottom / right to whole patches, so
    ``H' = ceil(H / patch_size)``.

    Args:
        in_channels (int): input channels.
        embed_dims (int): channels C of the tokens.
        patch_size (int): patch side and stride. Default: 4.
        drop_rate (float): dropout on the tokens. Default: 0.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 patch_size: int = 4,
                 drop_rate: float = 0.):
        check_positive_ints(
            type(self).__name__,
            in_channels=in_channels,
            embed_dims=embed_dims,
            patch_size=patch_size)
        super().__init__(
            in_channels=in_channels,
            embed_dims=embed_dims,
            conv_type='Conv2d',
            kernel_size=patch_size,
            stride=patch_size,
            padding=0,  # padded in forward, see .padding
            norm_cfg=dict(type='LN'))
        self.patch_size = patch_size
        self.drop = nn.Dropout(p=drop_rate)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, HWShape]:
        p = self.patch_size
        H, W = x.shape[2:]
        pad_h, pad_w = padding_to_multiple(H, p), padding_to_multiple(W, p)
        if has_padding(pad_h, pad_w):
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x, hw_shape = super().forward(x)
        return self.drop(x), hw_shape


class UnfoldMerging(PatchMerging):
    """Swin's patch merging: every 2 x 2 neighbourhood concatenated
    (``nn.Unfold`` order), LayerNorm, then a linear map to
    ``out_channels`` (no bias). Odd sides are zero-padded:
    ``H' = ceil(H / 2)``.

    Args:
        in_channels (int): channels C of the input tokens.
        out_channels (int): channels of the merged tokens.
    """

    def __init__(self, in_channels: int, out_channels: int):
        check_positive_ints(
            type(self).__name__,
            in_channels=in_channels,
            out_channels=out_channels)
        super().__init__(
            in_channels,
            out_channels,
            padding=0,  # padded in forward, see .padding
            norm_cfg=dict(type='LN'))

    def forward(self, x: torch.Tensor,
                hw_shape: HWShape) -> Tuple[torch.Tensor, HWShape]:
        B, _, C = x.shape
        H, W = hw_shape
        pad_h, pad_w = padding_to_multiple(H, 2), padding_to_multiple(W, 2)
        if has_padding(pad_h, pad_w):
            x = F.pad(x.view(B, H, W, C), (0, 0, 0, pad_w, 0, pad_h))
            H, W = H + pad_h, W + pad_w
            x = x.view(B, H * W, C)
        return super().forward(x, (H, W))


class ConvStem(BaseModule):
    """CSWin's patch embedding: Conv2d 7x7 stride 4 padding 2 + LayerNorm.

    The convolution needs 3 pixels per side (7 with its padding); a side of
    1 or 2 pixels is zero-padded at the bottom / right to 3 first, which is
    the convolution's own zero padding, extended: any H, W >= 1 works and
    larger images are untouched.

    Shape:
        x: (B, C_in, H, W); returns tokens (B, H'*W', C) and (H', W') with
        ``H' = (max(H, 3) - 3) // 4 + 1``.
    """

    def __init__(self, in_channels: int, embed_dims: int, init_cfg=None):
        check_positive_ints(
            type(self).__name__,
            in_channels=in_channels,
            embed_dims=embed_dims)
        super().__init__(init_cfg)
        self.proj = nn.Conv2d(in_channels, embed_dims, 7, 4, 2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, HWShape]:
        pad_h, pad_w = max(3 - x.shape[2], 0), max(3 - x.shape[3], 0)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        hw_shape = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(hw_shape)


class ConvMerging(BaseModule):
    """CSWin's merge block: Conv2d 3x3 stride 2 padding 1 + LayerNorm.

    Shape:
        x: (B, H*W, C_in); returns (B, H'*W', C_out) and (H', W') with
        ``H' = ceil(H / 2)``.
    """

    def __init__(self, in_channels: int, out_channels: int, init_cfg=None):
        check_positive_ints(
            type(self).__name__,
            in_channels=in_channels,
            out_channels=out_channels)
        super().__init__(init_cfg)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor,
                hw_shape: HWShape) -> Tuple[torch.Tensor, HWShape]:
        B, _, C = x.shape
        x = self.conv(x.transpose(1, 2).reshape(B, C, *hw_shape))
        hw_shape = x.shape[2:]
        return self.norm(x.flatten(2).transpose(1, 2)), tuple(hw_shape)
