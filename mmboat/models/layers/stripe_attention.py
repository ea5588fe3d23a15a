"""CSWin's cross-shaped stripe attention with LePE, for any H x W:
BOAT-CSWin's image-space attention."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..validate import check_positive_ints
from .lepe import LePE
from .padding import has_padding, padding_to_multiple

HWShape = Tuple[int, int]


def _cut(size: int, stripe: Optional[int]) -> Tuple[int, int, int]:
    """(stripe length, padding, number of stripes) of a side of ``size``
    tokens cut into stripes of ``stripe`` tokens; ``None`` or a stripe at
    least as long as the side: one stripe of the whole side, unpadded.

    The whole-side case is written out, not ``min(stripe, size)``: under
    ``torch.compile`` with dynamic shapes, the padding and count of a
    symbolic stripe length are floor divisions by a symbol, which dynamo
    took minutes per input size to simplify.
    """
    if stripe is None or stripe >= size:
        return size, 0, 1
    pad = padding_to_multiple(size, stripe)
    return stripe, pad, (size + pad) // stripe


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
        check_positive_ints(
            type(self).__name__,
            embed_dims=embed_dims,
            num_heads=num_heads,
            split_size=split_size)
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
        self.lepe = nn.ModuleList(
            [LePE(branch_dims) for _ in range(self.num_branches)])
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
            out = self.stripe_attention(qkv, self.lepe[0], (None, None))
        else:
            c, s = C // 2, self.split_size
            branches = [
                self.stripe_attention(qkv[..., :c], self.lepe[0], (None, s)),
                self.stripe_attention(qkv[..., c:], self.lepe[1], (s, None))
            ]
            out = torch.cat(branches, dim=-1)
        return self.proj_drop(self.proj(out.reshape(B, N, C)))

    def stripe_attention(self, qkv: torch.Tensor, lepe: nn.Module,
                         stripe_hw: HWShape) -> torch.Tensor:
        """Attention + LePE inside stripes of ``stripe_hw`` tokens.

        Args:
            qkv (Tensor): (B, H, W, 3, c), the branch's channels of q, k, v.
            lepe (nn.Module): the branch's depthwise 3x3 convolution.
            stripe_hw (tuple[int | None]): stripe height and width; None
                (or a stripe at least as long as the side): the whole side.

        Returns:
            Tensor: (B, H, W, c).
        """
        B, H, W, _, c = qkv.shape
        (sh, pad_h, nh), (sw, pad_w, nw) = (_cut(H, stripe_hw[0]),
                                            _cut(W, stripe_hw[1]))
        padded = has_padding(pad_h, pad_w)
        if padded:
            qkv = F.pad(qkv, (0, 0, 0, 0, 0, pad_w, 0, pad_h))
        heads = self.num_heads // self.num_branches
        d = c // heads
        # (B, nh, sh, nw, sw, 3, heads, d) -> 3 x (B, nh*nw, heads, sh*sw, d)
        qkv = qkv.reshape(B, nh, sh, nw, sw, 3, heads, d)
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7)
        # 4-D (B * stripes, heads, tokens, d): the CPU's fused attention
        # kernel takes only 4-D inputs (5-D runs the unfused math path)
        q, k, v = qkv.reshape(3, B * nh * nw, heads, sh * sw, d).unbind(0)
        mask = None
        if padded:
            valid = torch.zeros(
                nh, sh, nw, sw, dtype=torch.bool, device=qkv.device)
            valid.view(nh * sh, nw * sw)[:H, :W] = True
            mask = valid.transpose(1, 2).reshape(1, nh * nw, 1, sh * sw)
            mask = mask.expand(B, -1, -1, -1).reshape(B * nh * nw, 1, 1,
                                                      sh * sw)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)
        # LePE per stripe, channels head-major
        v_img = v.transpose(-1, -2).reshape(B * nh * nw, c, sh, sw)
        lepe_out = lepe(v_img).view(B * nh * nw, heads, d, sh * sw)
        out = out + lepe_out.transpose(-1, -2)
        out = out.view(B, nh, nw, heads, sh, sw, d)
        out = out.permute(0, 1, 4, 2, 5, 3, 6).reshape(B, nh * sh, nw * sw, c)
        return out[:, :H, :W] if padded else out
