"""Swin's (shifted) window attention, for any H x W: BOAT-Swin's
image-space attention.

The computation and the parameter names are mmpretrain's ``WindowMSA`` /
``ShiftWindowMSA`` (those of official Swin), written here so that
``import mmboat`` does not import ``mmpretrain.models`` (and mmdet's models
with it).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ..validate import check_int, check_positive_ints, refusal
from .padding import padding_to_multiple


def relative_position_index(window_size: int) -> torch.Tensor:
    """(ws * ws, ws * ws) index into the (2 ws - 1)**2 relative position
    table of every (query, key) pair of a window, as official Swin's."""
    seq1 = torch.arange(0, (2 * window_size - 1) * window_size,
                        2 * window_size - 1)
    seq2 = torch.arange(0, window_size)
    coords = (seq1[:, None] + seq2[None, :]).reshape(1, -1)
    return (coords + coords.T).flip(1).contiguous()


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C), windows row-major."""
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size,
               C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous()
    return windows.view(-1, window_size, window_size, C)


def shift_attention_mask(hw_shape: Tuple[int, int],
                         window_size: int,
                         shift_size: int,
                         device=None) -> Optional[torch.Tensor]:
    """(windows, ws * ws, ws * ws) additive mask (0 / -100) that keeps the
    tokens of a shifted window from attending across the regions the
    cyclic shift brought together; None without a shift."""
    if shift_size == 0:
        return None
    img_mask = torch.zeros(1, *hw_shape, 1, device=device)
    slices = (slice(0, -window_size), slice(-window_size, -shift_size),
              slice(-shift_size, None))
    cnt = 0
    for h in slices:
        for w in slices:
            img_mask[:, h, w, :] = cnt
            cnt += 1
    mask_windows = window_partition(img_mask, window_size)
    mask_windows = mask_windows.view(-1, window_size * window_size)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0)
    return attn_mask.masked_fill(attn_mask == 0, 0.0)


class WindowMSA(BaseModule):
    """Multi-head self-attention inside windows, with relative position
    bias (Swin's W-MSA; mmpretrain's ``WindowMSA`` with square windows).

    Args:
        embed_dims (int): channels C.
        window_size (int): window side ws.
        num_heads (int): attention heads.
        qkv_bias (bool): bias in the qkv projection. Default: True.
        attn_drop (float): dropout on attention weights. Default: 0.
        proj_drop (float): dropout after the output projection. Default: 0.

    Shape:
        x: (windows * B, ws * ws, C); mask: (windows, ws * ws, ws * ws)
        or None; returns (windows * B, ws * ws, C).
    """

    def __init__(self,
                 embed_dims: int,
                 window_size: int,
                 num_heads: int,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        self.embed_dims = embed_dims
        self.window_size = (window_size, window_size)
        self.num_heads = num_heads
        self.scale = (embed_dims // num_heads)**-0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1)**2, num_heads))
        # derived from the window size: kept out of the state dict
        self.register_buffer(
            'relative_position_index',
            relative_position_index(window_size),
            persistent=False)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.softmax = nn.Softmax(dim=-1)

    def init_weights(self):
        super().init_weights()
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self,
                x: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads,
                                  C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)].view(N, N, -1)
        attn = attn + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N,
                             N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.attn_drop(self.softmax(attn))
        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        return self.proj_drop(self.proj(x))


class PaddedShiftWindowMSA(BaseModule):
    """(Shifted) window attention that runs on any H x W.

    mmpretrain's ``ShiftWindowMSA`` (window attention with relative position
    bias, cyclic shift and shift masks, DropPath on the output; the same
    parameters) with the
    window rule of the published model: the map is zero-padded at the
    bottom/right to a multiple of the window (small maps included), and the
    shift is skipped when the padded map is a single window, as official
    Swin does for a 7 x 7 map (stage 4 at 224). ``relative_position_index``
    is derived, so it is kept out of the state dict.

    Args:
        embed_dims (int): channels C.
        num_heads (int): attention heads.
        window_size (int): window side.
        shift_size (int): cyclic shift of the shifted blocks (0: none).
            Default: 0.
        qkv_bias (bool): bias in the qkv projection. Default: True.
        attn_drop (float): dropout on attention weights. Default: 0.
        proj_drop (float): dropout after the output projection. Default: 0.
        drop_path (float): stochastic depth of the output (BOAT blocks
            apply theirs outside and leave this at 0). Default: 0.

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
        owner = type(self).__name__
        check_positive_ints(
            owner,
            embed_dims=embed_dims,
            num_heads=num_heads,
            window_size=window_size)
        if embed_dims % num_heads:
            raise refusal(ValueError, 'num_heads', num_heads,
                          f'it must divide embed_dims={embed_dims}',
                          f'use a divisor of {embed_dims}', owner)
        check_int(
            'shift_size',
            shift_size,
            0,
            f'use 0 or window_size // 2 = {window_size // 2}',
            owner,
            maximum=window_size - 1)
        super().__init__()
        self.shift_size = shift_size
        self.window_size = window_size
        self.w_msa = WindowMSA(
            embed_dims,
            window_size,
            num_heads,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop)
        self.drop = DropPath(drop_path)

    def forward(self, query: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, L, C = query.shape
        H, W = hw_shape
        ws = self.window_size
        x = F.pad(
            query.view(B, H, W, C),
            (0, 0, 0, padding_to_multiple(W, ws), 0, padding_to_multiple(
                H, ws)))
        H_pad, W_pad = x.shape[1:3]
        shift = self.shift_size if max(H_pad, W_pad) > ws else 0
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        mask = shift_attention_mask((H_pad, W_pad), ws, shift, device=x.device)
        if mask is not None:
            mask = mask.to(x.dtype)
        windows = window_partition(x, ws).view(-1, ws * ws, C)
        windows = self.w_msa(windows, mask=mask)
        # the windows back in place, B explicit (B may be 0)
        x = windows.view(B, H_pad // ws, W_pad // ws, ws, ws, C)
        x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H_pad, W_pad, C)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        # always a copy: no guard on whether there was padding
        x = x[:, :H, :W].clone(memory_format=torch.contiguous_format)
        return self.drop(x.view(B, H * W, C))
