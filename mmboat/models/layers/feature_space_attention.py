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
  its own plus the last ``overlap`` real tokens of leaf ``2j``. The overlap
  is capped at the size of the smallest leaf (it never is with the defaults,
  S = 49 and overlap 20). With a single leaf (``L = 0``, e.g. ``N <= S``)
  there is no sibling and no overlap: FSLA is plain global attention plus
  LePE.
* In memory, padding slots sit at the start of even leaves and at the end
  of odd leaves, so the keys of every leaf are one contiguous window of the
  sorted tokens.

When ``N = S * 2**L`` there is no padding and the computation is exactly the
one of the published BOAT models.
"""
import math
from functools import lru_cache, partial
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class ClusterLayout(NamedTuple):
    """Data-independent structure of the clustering for ``N`` tokens.

    Everything here depends only on ``(N, cluster_size, overlap)``: which
    slots are padding, how many real tokens every group holds at every
    level, and the overlap actually used.
    """
    num_tokens: int
    num_levels: int
    leaf_size: int
    overlap: int  # sibling tokens in the keys of every leaf (0 if L == 0)
    # per level: (first-half mask (G, T), valid mask (G, T),
    #             slot source after the sort (G, T) or None)
    levels: Tuple[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]],
                  ...]
    leaf_valid: torch.Tensor  # (2**L, m) bool, real query slots
    # (2**L, m + overlap) bool over each leaf's key window, None if all valid
    key_valid: Optional[torch.Tensor]


def num_cluster_levels(num_tokens: int, cluster_size: int) -> int:
    """``L = max(0, round(log2(N / S)))``."""
    if num_tokens <= cluster_size:
        return 0
    return max(0, math.floor(math.log2(num_tokens / cluster_size) + 0.5))


def _child_slots(n: torch.Tensor, T: int, pads_first: bool) -> torch.Tensor:
    """``src[g, p]``: sorted rank (pads ranked last) that goes to slot p.

    Ranks below ``ceil(n / 2)`` fill the first child, the other real ranks
    the second; pads fill the rest of each child, at its end, or at the
    start of the first child when ``pads_first``.
    """
    half = T // 2
    first = (n + 1) // 2
    first_pads = half - first
    p = torch.arange(T).expand(n.shape[0], T)
    q = p - half
    if pads_first:
        in_first = torch.where(p < first_pads, n + p, p - first_pads)
    else:
        in_first = torch.where(p < first, p, n + (p - first))
    in_second = torch.where(q < n - first, first + q,
                            n + first_pads + (q - (n - first)))
    return torch.where(p < half, in_first, in_second)


@lru_cache(maxsize=64)
def _cluster_layout_cpu(num_tokens: int, cluster_size: int,
                        overlap: int) -> ClusterLayout:
    N = num_tokens
    L = num_cluster_levels(N, cluster_size)
    m = -(-N // 2**L)
    levels = []
    counts = [N]
    for level in range(L):
        T = m * 2**(L - level)
        n = torch.tensor(counts)[:, None]  # (G, 1) real tokens per group
        valid = torch.arange(T) < n
        src = None if bool(valid.all()) else _child_slots(
            n, T, pads_first=level == L - 1)
        levels.append((torch.arange(T) < (n + 1) // 2, valid, src))
        counts = [c for k in counts for c in ((k + 1) // 2, k // 2)]

    leaf_counts = torch.tensor(counts)[:, None]  # (2**L, 1)
    slot = torch.arange(m)
    even = (torch.arange(2**L) % 2 == 0)[:, None]
    leaf_valid = torch.where(even, slot >= m - leaf_counts,
                             slot < leaf_counts)
    overlap = min(overlap, min(counts)) if L > 0 else 0
    # even leaf: own slots, then the first slots of its right sibling;
    # odd leaf: the last slots of its left sibling, then its own.
    ones = torch.ones(2**L, overlap, dtype=torch.bool)
    key_valid = torch.where(even, torch.cat([leaf_valid, ones], 1),
                            torch.cat([ones, leaf_valid], 1))
    if bool(key_valid.all()):
        key_valid = None
    return ClusterLayout(N, L, m, overlap, tuple(levels), leaf_valid,
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
    rule when ``N`` is not ``cluster_size * 2**L``. Runs without autocast,
    in float32 for half-precision inputs.

    Args:
        x (Tensor): (B, N, d) features; each of the B rows is clustered
            independently (fold heads into B).
        cluster_size (int): target number of tokens per cluster.
        num_iters (int): centroid refinement iterations per level.
        temperature (float): softmax temperature of the soft assignments.
        overlap (int): sibling tokens in every leaf's keys; only shapes
            ``layout.key_valid``.

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
        qt = q.transpose(-1, -2)  # (B, G, d, T): row-vector products are fast
        total = q.sum(2, keepdim=True)  # (B, G, 1, d); padding rows are 0
        if src is None:  # no padding: the first half of every group
            first_sum = q[:, :, :T // 2].sum(2, keepdim=True)
        else:
            first_sum = torch.matmul(first.to(q.dtype)[:, None], q)
        # means of the two halves, up to a scale that normalising removes
        c1 = F.normalize(first_sum, dim=-1)
        c2 = F.normalize(total - first_sum, dim=-1)
        scaled_inv_norm = inv_norm.view(B, G, 1, T) * temperature
        for _ in range(num_iters):
            # softmax over two centroids == sigmoid of the cosine difference
            assign = torch.matmul(c1 - c2, qt).mul_(scaled_inv_norm).sigmoid_()
            first_sum = torch.matmul(assign, q)  # (B, G, 1, d)
            c1 = F.normalize(first_sum, dim=-1)
            c2 = F.normalize(total - first_sum, dim=-1)
        qn = inv_norm.view(B, G, 1, T)
        ratio = torch.matmul(c1, qt).mul_(qn).add_(1).div_(
            torch.matmul(c2, qt).mul_(qn).add_(1)).view(B, G, T)
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


class _GatherRowsFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, src, index, inverse, keep):
        ctx.save_for_backward(inverse, keep)
        return src.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        inverse, keep = ctx.saved_tensors
        grad = grad.index_select(0, inverse)
        if keep is not None:
            grad = grad * keep
        return grad, None, None, None


def _gather_rows(src: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor,
                 keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``src[index]`` whose backward is a gather too.

    ``inverse[index[i]] == i`` for every row of ``src`` that matters; rows of
    ``src`` that ``index`` does not reach (``keep`` False) get zero gradient.
    A gather backward is much faster than the scatter-add of
    ``index_select``'s own backward.
    """
    return _GatherRowsFunction.apply(src, index, inverse, keep)


class _ClusterQKV(torch.autograd.Function):
    """Queries, keys and values of every cluster, as contiguous tensors.

    From ``rows`` (B*N*h, 3*d), the (query, key, value) of every
    (image, token, head), gathers ``token_of_slot`` into the slot order and
    returns q (B*h, G, m, d) and k, v (B*h, G, m + o, d): the keys of leaf
    2j are its slots and the first ``o`` slots of leaf 2j + 1; those of leaf
    2j + 1 are the last ``o`` slots of leaf 2j and its own. The backward
    folds the overlap back and gathers with ``slot_of_token`` (gradients of
    padding slots, which are never attended and whose outputs are dropped,
    are zero).
    """

    @staticmethod
    def forward(ctx, rows, token_of_slot, slot_of_token, shape):
        BH, G, m, o = shape
        d = rows.shape[1] // 3
        ctx.save_for_backward(slot_of_token)
        ctx.shape = shape
        qkv = rows.index_select(0, token_of_slot).view(BH, G, m, 3, d)
        q = qkv[..., 0, :].contiguous()
        if not o:
            return q, qkv[..., 1, :].contiguous(), qkv[..., 2, :].contiguous()
        own = qkv.view(BH, G // 2, 2, m, 3, d)
        kv = qkv.new_empty(2, BH, G // 2, 2, m + o, d)
        for i in (0, 1):  # keys, values
            part = own[..., 1 + i, :]
            kv[i, :, :, 0, :m] = part[:, :, 0]
            kv[i, :, :, 0, m:] = part[:, :, 1, :o]
            kv[i, :, :, 1, :o] = part[:, :, 0, m - o:]
            kv[i, :, :, 1, o:] = part[:, :, 1]
        kv = kv.view(2, BH, G, m + o, d)
        return q, kv[0], kv[1]

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v):
        slot_of_token, = ctx.saved_tensors
        BH, G, m, o = ctx.shape
        d = grad_q.shape[-1]
        grad = grad_q.new_empty(BH, G, m, 3, d)
        grad[..., 0, :] = grad_q
        if not o:
            grad[..., 1, :] = grad_k
            grad[..., 2, :] = grad_v
        else:
            pairs = grad.view(BH, G // 2, 2, m, 3, d)
            for i, g in ((1, grad_k), (2, grad_v)):
                g = g.reshape(BH, G // 2, 2, m + o, d)
                pairs[:, :, 0, :, i] = g[:, :, 0, :m]
                pairs[:, :, 1, :, i] = g[:, :, 1, o:]
                pairs[:, :, 1, :o, i] += g[:, :, 0, m:]
                pairs[:, :, 0, m - o:, i] += g[:, :, 1, :o]
        grad = grad.view(BH * G * m, 3 * d).index_select(0, slot_of_token)
        return grad, None, None, None


class FeatureSpaceLocalAttention(nn.Module):
    """Feature-space local attention (FSLA) with LePE.

    Queries are clustered per image and per head
    (:func:`balanced_hierarchical_clustering`); attention runs inside every
    leaf cluster against its own tokens plus ``overlap`` tokens of its
    sibling; a depthwise 3x3 convolution of the values (LePE) is added and
    the result projected. Any H x W and batch size: the rule for numbers of
    tokens that are not ``cluster_size * 2**L`` (padding, overlap cap, single
    cluster) is in the module docstring; it reduces to the published
    computation when ``N = cluster_size * 2**L``.

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
        # qkv output channels reordered (part, head, dim) -> (head, part,
        # dim): one row of 3 * head_dims values is the query, key and value
        # of one (token, head), so one gather sorts all three.
        self.register_buffer(
            'head_major',
            torch.arange(3 * embed_dims).view(3, num_heads, -1).transpose(
                0, 1).reshape(-1),
            persistent=False)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'cluster_size={self.cluster_size}, overlap={self.overlap}, '
                f'num_iters={self.num_iters}, temperature={self.temperature}, '
                f'scale={self.scale:.4g}')

    def forward(self, x: torch.Tensor,
                hw_shape: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw_shape
        if H * W != N:
            raise ValueError(f'hw_shape {tuple(hw_shape)} does not match the '
                             f'{N} tokens of x (H * W must equal N)')
        if C != self.embed_dims:
            raise ValueError(f'x has {C} channels, expected embed_dims='
                             f'{self.embed_dims}')
        h, d = self.num_heads, self.head_dims
        bias = None if self.qkv.bias is None else self.qkv.bias[self.head_major]
        qkv = F.linear(x, self.qkv.weight[self.head_major], bias)
        qkv = qkv.view(B, N, h, 3, d)

        # cluster the queries of every (image, head)
        order, layout = balanced_hierarchical_clustering(
            qkv[..., 0, :].transpose(1, 2).reshape(B * h, N, d),
            self.cluster_size, self.num_iters, self.temperature, self.overlap)
        G, m = order.shape[1:]
        arange = partial(torch.arange, device=x.device)

        # Row maps between the token order, rows (b, token, head) of `qkv`,
        # and the slot order, rows (b*h, slot) with leaves in order. Padding
        # slots read token 0 and are dropped on the way back; every token
        # has exactly one slot.
        token = order.clamp(min=0).view(B, h, G * m)
        token_of_slot = ((arange(B)[:, None, None] * N + token) * h +
                         arange(h)[:, None]).view(-1)
        slot = torch.empty(B * h, N + 1, dtype=torch.long, device=x.device)
        slot.scatter_(1, torch.where(order < 0, N, order).view(B * h, -1),
                      arange(G * m).expand(B * h, G * m))
        slot = slot[:, :N] + arange(B * h)[:, None] * (G * m)
        slot_of_token = slot.view(B, h, N).transpose(1, 2).reshape(-1)
        real_slots = None if G * m == N else (order >= 0).view(-1, 1)

        q_c, k_c, v_c = _ClusterQKV.apply(
            qkv.view(B * N * h, 3 * d), token_of_slot, slot_of_token,
            (B * h, G, m, layout.overlap))
        mask = layout.key_valid
        if mask is not None:  # 4-D, or CPU falls back to unfused attention
            mask = mask[None, :, None, :]  # (1, G, 1, m + o)
        out = F.scaled_dot_product_attention(
            q_c, k_c, v_c, attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)

        # back to the token order: (B, N, h, d) = (B, N, C)
        out = _gather_rows(out.reshape(B * h * G * m, d), slot_of_token,
                           token_of_slot, real_slots).view(B, N, C)

        # LePE on the values in image order, heads concatenated head-major;
        # (B, H, W, C) permuted is the channels-last layout of (B, C, H, W)
        v = qkv[..., 2, :].reshape(B, H, W, C)
        lepe = self.get_v(v.permute(0, 3, 1, 2))
        out = out + lepe.permute(0, 2, 3, 1).reshape(B, N, C)
        return self.proj_drop(self.proj(out))
