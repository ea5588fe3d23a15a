"""Swin's (shifted) window attention, for any H x W: BOAT-Swin's
image-space attention."""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils.attention import ShiftWindowMSA

from ..validate import check_int, check_positive_ints, refusal
from .padding import padding_to_multiple


class PaddedShiftWindowMSA(ShiftWindowMSA):
    """(Shifted) window attention that runs on any H x W.

    mmpretrain's ``ShiftWindowMSA`` (window attention with relative position
    bias, cyclic shift and shift masks, DropPath on the output) with the
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
        x = F.pad(
            query.view(B, H, W, C),
            (0, 0, 0, padding_to_multiple(W, ws), 0, padding_to_multiple(
                H, ws)))
        H_pad, W_pad = x.shape[1:3]
        shift = self.shift_size if max(H_pad, W_pad) > ws else 0
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        mask = self.get_attn_mask((H_pad, W_pad), ws, shift, device=x.device)
        if mask is not None:
            mask = mask.to(x.dtype)
        windows = self.window_partition(x, ws).view(-1, ws * ws, C)
        windows = self.w_msa(windows, mask=mask)
        # mmpretrain's window_reverse, with B explicit (B may be 0)
        x = windows.view(B, H_pad // ws, W_pad // ws, ws, ws, C)
        x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H_pad, W_pad, C)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        # always a copy: no guard on whether there was padding
        x = x[:, :H, :W].clone(memory_format=torch.contiguous_format)
        return self.drop(x.view(B, H * W, C))
