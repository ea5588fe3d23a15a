"""Feature-space local attention (FSLA), the new half of a BOAT block.

FSLA groups the tokens of an image by their query features with a balanced
hierarchical clustering and runs self-attention inside each cluster, so that
similar patches far apart in the image attend to each other.

Cluster layout rule (any number of tokens ``N``, cluster size ``S``):

* ``L = max(0, round(log2(N / S)))`` levels of binary splits, ``2**L`` leaves.
* Every split of a group of ``n`` real tokens gives ``ceil(n / 2)`` tokens to
  the first child and ``floor(n / 2)`` to the second, so leaves hold
  ``floor(N / 2**L)`` or ``ceil(N / 2**L)`` real tokens. Leaves are stored in
  slots of ``m = ceil(N / 2**L)`` tokens; the at most ``2**L - 1`` empty
  slots are padding that is never attended to, never moves a centroid and
  never changes the output of a real token.
* Keys and values of leaf ``2j`` are its own tokens plus the first
  ``overlap`` real tokens of leaf ``2j + 1``; those of leaf ``2j + 1`` are
  its own plus the last ``overlap`` real tokens of leaf ``2j``. With a single
  leaf (``L = 0``, e.g. ``N <= S``) there is no sibling and no overlap: FSLA
  is plain global attention plus LePE.

When ``N = S * 2**L`` there is no padding and the computation is exactly the
one of the published BOAT models.
"""
import math
from functools import lru_cache
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClusterLayout(NamedTuple):
    """Data-independent structure of the clustering for ``N`` tokens.

    Everything here depends only on ``(N, cluster_size, overlap)``: which
    slots are padding, how many real tokens each group holds at every level,
    and which slots every leaf uses as keys.
    """
    num_tokens: int
    num_levels: int
    leaf_size: int
    # per level: (first-half mask (G, T), valid mask (G, T),
    #             slot source after the sort (G, T) or None)
    levels: Tuple[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
                  ...]
    leaf_valid: torch.Tensor  # (2**L, m) bool, real query slots
    key_index: torch.Tensor  # (2**L, m + overlap) long, into the (2**L * m) leaf slots
    key_valid: Optional[torch.Tensor]  # (2**L, m + overlap) bool, None if all valid


def num_cluster_levels(num_tokens: int, cluster_size: int) -> int:
    """``L = max(0, round(log2(N / S)))``."""
    if num_tokens <= cluster_size:
        return 0
    return max(0, math.floor(math.log2(num_tokens / cluster_size) + 0.5))


@lru_cache(maxsize=64)
def _cluster_layout_cpu(num_tokens: int, cluster_size: int,
                        overlap: int) -> ClusterLayout:
    N = num_tokens
    L = num_cluster_levels(N, cluster_size)
    m = -(-N // 2**L)
    levels = []
    counts = [N]
    for level in range(L):
        G, T = 2**level, m * 2**(L - level)
        slot = torch.arange(T)
        n = torch.tensor(counts)[:, None]  # (G, 1) real tokens per group
        first = (n + 1) // 2
        first_mask = slot < first
        valid = slot < n
        # After sorting (pads last) rank k goes to the first child for
        # k < first, to the second child for first <= k < n; pads fill the
        # remaining slots of each child. `src[g, p]` is the rank in slot p.
        half = T // 2
        if bool(valid.all()):
            src = None
        else:
            n_pad_first = half - first
            p = slot.expand(G, T)
            in_first = p < half
            real_first = p < first
            real_second = (~in_first) & (p - half < n - first)
            src = torch.where(
                in_first,
                torch.where(real_first, p, n + (p - first)),
                torch.where(real_second, first + (p - half),
                            n + n_pad_first + (p - half - (n - first))))
        levels.append((first_mask, valid, src))
        counts = [c for k in counts for c in ((k + 1) // 2, k // 2)]

    G = 2**L
    leaf_counts = torch.tensor(counts)[:, None]  # (G, 1)
    slot = torch.arange(m)
    leaf_valid = slot < leaf_counts
    own = slot + m * torch.arange(G)[:, None]  # (G, m)
    if L == 0 or overlap == 0:
        key_index, key_valid = own, leaf_valid
    else:
        o = torch.arange(overlap)
        leaf = torch.arange(G)[:, None]
        sibling = leaf ^ 1
        sib_count = leaf_counts[sibling[:, 0]]  # (G, 1)
        is_first = (leaf % 2) == 0
        # first `overlap` real tokens of the right sibling, or the last
        # `overlap` real tokens of the left sibling
        pos = torch.where(is_first, o, sib_count - overlap + o)
        extra_valid = (pos >= 0) & (pos < sib_count)
        extra = sibling * m + pos.clamp(min=0, max=m - 1)
        key_index = torch.cat([own, extra], dim=1)
        key_valid = torch.cat([leaf_valid, extra_valid], dim=1)
    if bool(key_valid.all()):
        key_valid = None
    return ClusterLayout(N, L, m, tuple(levels), leaf_valid, key_index,
                         key_valid)


_LAYOUT_CACHE = {}


def cluster_layout(num_tokens: int, cluster_size: int, overlap: int,
                   device: torch.device) -> ClusterLayout:
    """The :class:`ClusterLayout` for ``num_tokens`` tokens on ``device``."""
    key = (num_tokens, cluster_size, overlap, str(device))
    layout = _LAYOUT_CACHE.get(key)
    if layout is None:
        cpu = _cluster_layout_cpu(num_tokens, cluster_size, overlap)

        def move(t):
            return None if t is None else t.to(device)

        layout = cpu._replace(
            levels=tuple(tuple(move(t) for t in lv) for lv in cpu.levels),
            leaf_valid=move(cpu.leaf_valid),
            key_index=move(cpu.key_index),
            key_valid=move(cpu.key_valid))
        if len(_LAYOUT_CACHE) > 256:
            _LAYOUT_CACHE.clear()
        _LAYOUT_CACHE[key] = layout
    return layout


@torch.no_grad()
def balanced_hierarchical_clustering(x: torch.Tensor,
                                     cluster_size: int = 49,
                                     num_iters: int = 2,
                                     temperature: float = 100.,
                                     overlap: int = 0) -> Tuple[torch.Tensor,
                                                               ClusterLayout]:
    """Balanced hierarchical clustering of token features.

    Every level splits each group in two: centroids start as the means of
    the first and second half of the group (in its current order), are
    refined ``num_iters`` times with soft assignments
    ``softmax(temperature * cos)``, and the group is sorted by
    ``(cos(x, c1) + 1) / (cos(x, c2) + 1)``; the first half of the sorted
    tokens forms the first child. See the module docstring for the layout
    rule when ``N`` is not ``cluster_size * 2**L``.

    Args:
        x (Tensor): (B, N, d) features; each of the B rows is clustered
            independently (fold heads into B).
        cluster_size (int): target number of tokens per cluster.
        num_iters (int): centroid refinement iterations per level.
        temperature (float): softmax temperature of the soft assignments.
        overlap (int): only used to build ``layout.key_index``.

    Returns:
        tuple: ``order`` (B, 2**L, m) long, the token index held by every
        slot of every leaf in leaf order (``-1`` for padding), and the
        :class:`ClusterLayout`.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _cluster(x, cluster_size, num_iters, temperature, overlap)


def _cluster(x, cluster_size, num_iters, temperature, overlap):
    B, N, d = x.shape
    layout = cluster_layout(N, cluster_size, overlap, x.device)
    m, L = layout.leaf_size, layout.num_levels
    Np = m * 2**L
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    # A zero row stands for padding: it adds nothing to any centroid.
    feats = torch.cat([x, x.new_zeros(B, Np - N, d)], dim=1) if Np > N else x
    order = torch.arange(Np, device=x.device).expand(B, Np)
    if L == 0:
        order = torch.where(order < N, order, -1)
        return order.reshape(B, 1, m).contiguous(), layout
    inv_norm = feats.norm(dim=-1).clamp_min(1e-12).reciprocal()
    base = torch.arange(B, device=x.device)[:, None] * Np
    for level, (first, valid, src) in enumerate(layout.levels):
        G, T = 2**level, Np >> level
        q = feats.view(B, G, T, d)
        total = q.sum(2, keepdim=True)  # (B, G, 1, d); padding rows are 0
        if src is None:  # no padding: the first half of every group
            first_sum = q[:, :, :T // 2].sum(2, keepdim=True)
        else:
            first_sum = torch.matmul(first.to(q.dtype)[:, None], q)
        # means of the two halves, up to a scale that normalising removes
        cent = F.normalize(torch.cat([first_sum, total - first_sum], 2), dim=-1)
        scaled_inv_norm = inv_norm.view(B, G, T, 1) * temperature
        for _ in range(num_iters):
            # softmax over two centroids == sigmoid of the cosine difference
            delta = (cent[:, :, 0] - cent[:, :, 1]).unsqueeze(-1)
            assign = torch.matmul(q, delta).mul_(scaled_inv_norm).sigmoid_()
            first_sum = torch.matmul(assign.transpose(-1, -2), q)
            cent = F.normalize(
                torch.cat([first_sum, total - first_sum], 2), dim=-1)
        cos = torch.matmul(q, cent.transpose(-1, -2))  # (B, G, T, 2)
        qn = inv_norm.view(B, G, T, 1)
        ratio = (cos[..., 0:1] * qn + 1).div_(cos[..., 1:2] * qn + 1)
        ratio = ratio.view(B, G, T)
        if src is not None:
            big = torch.finfo(ratio.dtype).max
            ratio = torch.nan_to_num(ratio, nan=big, posinf=big)
            ratio = ratio.masked_fill(~valid, float('inf'))
        perm = ratio.argsort(dim=-1, stable=True)
        if src is not None:
            perm = perm.gather(-1, src.expand(B, G, T))
        perm = perm + (torch.arange(G, device=x.device) * T)[:, None]
        perm = perm.view(B, Np)
        order = order.gather(1, perm)
        if level + 1 < L:  # the last level only needs the order
            flat = (perm + base).view(-1)
            feats = feats.reshape(B * Np, d).index_select(0, flat)
            feats = feats.view(B, Np, d)
            inv_norm = inv_norm.view(-1).index_select(0, flat).view(B, Np)
    order = torch.where(order < N, order, -1)
    return order.view(B, 2**L, m), layout


class FeatureSpaceLocalAttention(nn.Module):
    """Feature-space local attention (FSLA) with LePE.

    Queries are clustered per image and per head
    (:func:`balanced_hierarchical_clustering`); attention runs inside every
    leaf cluster against its own tokens plus ``overlap`` tokens of its
    sibling; a depthwise 3x3 convolution of the values (LePE) is added and
    the result projected.

    Args:
        embed_dims (int): channels C.
        num_heads (int): attention heads; must divide C.
        cluster_size (int): tokens per cluster. Default: 49.
        overlap (int): sibling tokens added to every cluster's keys and
            values. Default: 20.
        num_iters (int): centroid refinement iterations. Default: 2.
        temperature (float): softmax temperature of the clustering.
            Default: 100.
        qk_scale (float, optional): attention scale; ``head_dim ** -0.5``
            when None. The published BOAT-CSWin weights need 1.0.
        qkv_bias (bool): bias in the qkv projection. Default: True.
        attn_drop (float): dropout on attention weights. Default: 0.
        proj_drop (float): dropout after the output projection. Default: 0.

    Shape:
        x: (B, N, C) tokens of an H x W grid in row-major order;
        returns (B, N, C).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 cluster_size: int = 49,
                 overlap: int = 20,
                 num_iters: int = 2,
                 temperature: float = 100.,
                 qk_scale: Optional[float] = None,
                 qkv_bias: bool = True,
                 attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        if embed_dims % num_heads != 0:
            raise ValueError(
                f'embed_dims ({embed_dims}) must be divisible by num_heads '
                f'({num_heads})')
        if cluster_size < 2:
            raise ValueError(
                f'cluster_size must be >= 2, got {cluster_size}')
        if not 0 <= overlap < cluster_size:
            raise ValueError(f'overlap must be in [0, cluster_size='
                             f'{cluster_size}), got {overlap}')
        if num_iters < 0:
            raise ValueError(f'num_iters must be >= 0, got {num_iters}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.cluster_size = cluster_size
        self.overlap = overlap
        self.num_iters = num_iters
        self.temperature = temperature
        self.scale = self.head_dims**-0.5 if qk_scale is None else qk_scale
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.get_v = nn.Conv2d(
            embed_dims, embed_dims, 3, padding=1, groups=embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'cluster_size={self.cluster_size}, overlap={self.overlap}, '
                f'num_iters={self.num_iters}, temperature={self.temperature}, '
                f'scale={self.scale:.4g}')

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw_shape
        if H * W != N:
            raise ValueError(f'hw_shape {tuple(hw_shape)} does not match the '
                             f'{N} tokens of x (H * W must equal N)')
        if C != self.embed_dims:
            raise ValueError(f'x has {C} channels, expected embed_dims='
                             f'{self.embed_dims}')
        h, d = self.num_heads, self.head_dims
        qkv = self.qkv(x)  # (B, N, 3, h, d) as rows of d
        rows = qkv.reshape(B * N * 3 * h, d)

        # cluster the queries of every (image, head)
        q = qkv.view(B, N, 3, h, d)[:, :, 0].transpose(1, 2).reshape(B * h, N, d)
        order, layout = balanced_hierarchical_clustering(
            q, self.cluster_size, self.num_iters, self.temperature,
            self.overlap)
        G, m = order.shape[1:]
        token = order.clamp(min=0).view(B, h, G * m)
        # row of (b, token, part, head) in `rows`
        bh = (torch.arange(B, device=x.device)[:, None, None] * N * 3 * h +
              torch.arange(h, device=x.device)[None, :, None])
        q_rows = token * (3 * h) + bh  # (B, h, G*m)
        key_rows = q_rows[..., layout.key_index.view(-1)]
        q_c = rows.index_select(0, q_rows.view(-1)).view(B * h, G, m, d)
        k_c = rows.index_select(0, (key_rows + h).view(-1))
        v_c = rows.index_select(0, (key_rows + 2 * h).view(-1))
        k_c = k_c.view(B * h, G, -1, d)
        v_c = v_c.view(B * h, G, -1, d)
        mask = None
        if layout.key_valid is not None:
            mask = layout.key_valid[:, None, :]  # (G, 1, m + o)
        out = F.scaled_dot_product_attention(
            q_c, k_c, v_c, attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)  # (B*h, G, m, d)

        # back to the token order: slot of (b, head, token)
        slot = torch.empty(B * h, N, dtype=torch.long, device=x.device)
        slot_ids = torch.arange(G * m, device=x.device).expand(B * h, G * m)
        if G * m > N:  # padding slots hold no token
            keep = (order >= 0).view(B * h, G * m)
            slot.view(-1).scatter_(
                0, (order.view(B * h, -1) +
                    torch.arange(B * h, device=x.device)[:, None] * N)[keep],
                slot_ids[keep])
        else:
            slot.scatter_(1, order.view(B * h, N), slot_ids)
        slot = slot + torch.arange(B * h, device=x.device)[:, None] * (G * m)
        out = out.reshape(B * h * G * m, d).index_select(
            0, slot.view(B, h, N).transpose(1, 2).reshape(-1))
        out = out.view(B, N, C)

        # LePE on the values in image order, heads concatenated head-major
        # (B, N, C) is the channels-last layout of (B, C, H, W)
        v = qkv.view(B, N, 3, C)[:, :, 2].reshape(B, H, W, C)
        lepe = self.get_v(v.permute(0, 3, 1, 2))
        out = out + lepe.permute(0, 2, 3, 1).reshape(B, N, C)
        return self.proj_drop(self.proj(out))
