"""Feature-space local attention (FSLA), the new half of a BOAT block.

FSLA groups the tokens of an image by their query features with the balanced
hierarchical clustering of :mod:`.clustering` (whose docstring states the
layout rule for any number of tokens) and runs self-attention inside each
cluster, so that similar patches far apart in the image attend to each
other. A depthwise convolution of the values (LePE) is added.

Shapes: ``B`` images, ``N = H * W`` tokens, ``C`` channels, ``h`` heads of
``d = C / h`` dims, ``G = 2**L`` leaf clusters of ``m`` slots each and an
overlap of ``o`` sibling tokens in every leaf's keys.
"""
from functools import partial
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..validate import check_fsla_options, refuse
from .clustering import cluster_order
from .lepe import LePE
from .padding import has_padding

HWShape = Tuple[int, int]


class SlotMaps(NamedTuple):
    """Row maps between the token order and the slot order.

    Token-order rows are (b, token, head) of the (B, N, h, ...) projections;
    slot-order rows are (b * h, slot) with leaves in order. Padding slots
    read token 0 and are dropped on the way back; every token has exactly
    one slot.
    """
    token_of_slot: torch.Tensor  # (B * h * G * m,) row read by each slot
    slot_of_token: torch.Tensor  # (B * N * h,) slot of each token row
    real_slots: Optional[torch.Tensor]  # (B * h * G * m, 1) bool or None


def _slot_maps(order: torch.Tensor, num_tokens: int,
               num_heads: int) -> SlotMaps:
    """:class:`SlotMaps` of a clustering ``order`` (B * h, G, m)."""
    BH, G, m = order.shape
    N, h = num_tokens, num_heads
    B = BH // h
    arange = partial(torch.arange, device=order.device)
    token = order.clamp(min=0).view(B, h, G * m)
    token_of_slot = ((arange(B)[:, None, None] * N + token) * h +
                     arange(h)[:, None]).view(-1)
    slot = torch.empty(BH, N + 1, dtype=torch.long, device=order.device)
    where = torch.where(order < 0, N, order).view(BH, G * m)
    slot.scatter_(1, where, arange(G * m).expand(BH, G * m))
    slot = slot[:, :N] + arange(BH)[:, None] * (G * m)
    slot_of_token = slot.view(B, h, N).transpose(1, 2).reshape(-1)
    real_slots = (order >= 0).view(-1, 1) if has_padding(G * m - N) else None
    return SlotMaps(token_of_slot, slot_of_token, real_slots)


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


def _gather_rows(src: torch.Tensor,
                 index: torch.Tensor,
                 inverse: torch.Tensor,
                 keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``src[index]`` whose backward is a gather too.

    ``inverse[index[i]] == i`` for every row of ``src`` that matters; rows of
    ``src`` that ``index`` does not reach (``keep`` False) get zero gradient.
    A gather backward is much faster than the scatter-add of
    ``index_select``'s own backward.
    """
    return _GatherRowsFunction.apply(src, index, inverse, keep)


def _key_windows(slots: torch.Tensor, overlap: int) -> torch.Tensor:
    """(B * h, G, m) rows of every leaf's slots -> (B * h, G, m + o) rows of
    its key window: leaf 2j reads its slots and the first ``o`` of leaf
    2j + 1, leaf 2j + 1 the last ``o`` of leaf 2j and its own."""
    BH, G, m = slots.shape
    o = overlap
    pairs = slots.view(BH, G // 2, 2, m)
    even = torch.cat([pairs[:, :, 0], pairs[:, :, 1, :o]], -1)
    odd = torch.cat([pairs[:, :, 0, m - o:], pairs[:, :, 1]], -1)
    return torch.stack([even, odd], 2).view(BH, G, m + o)


class _ClusterQKV(torch.autograd.Function):
    """Queries, keys and values of every cluster.

    From ``rows`` (B*N*h, 3*d), the (query, key, value) of every
    (image, token, head), gathers ``token_of_slot`` (B*h, G, m) into the
    slot order and returns q (B*h, G, m, d) and k, v (B*h, G, m + o, d): the
    keys of leaf 2j are its slots and the first ``o`` slots of leaf 2j + 1;
    those of leaf 2j + 1 are the last ``o`` slots of leaf 2j and its own.
    Keys and values are gathered straight into these windows (one row index
    per key slot, :func:`_key_windows`) as strided views of one
    (..., 2, d) tensor, which SDPA takes as they are. The backward folds the
    overlap back and gathers with ``slot_of_token`` (gradients of padding
    slots, which are never attended and whose outputs are dropped, are
    zero).
    """

    @staticmethod
    def forward(ctx, rows, token_of_slot, slot_of_token, overlap):
        BH, G, m = token_of_slot.shape
        o = overlap
        d = rows.shape[1] // 3
        ctx.save_for_backward(slot_of_token)
        ctx.shape = (BH, G, m, o)
        q = rows[:, :d].index_select(0, token_of_slot.view(-1))
        q = q.view(BH, G, m, d)
        key_rows = token_of_slot
        if o:
            key_rows = _key_windows(token_of_slot, o)
        kv = rows[:, d:].index_select(0, key_rows.view(-1))
        kv = kv.view(BH, G, m + o, 2, d)
        return q, kv[..., 0, :], kv[..., 1, :]

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


def _to_token_order(out: torch.Tensor, maps: SlotMaps,
                    shape: torch.Size) -> torch.Tensor:
    """Un-sort: (B * h, G, m, d) in the slot order -> (B, N, C).

    Heads are concatenated head-major (channel ``head * d + j``).
    """
    d = out.shape[-1]
    out = _gather_rows(
        out.reshape(-1, d), maps.slot_of_token, maps.token_of_slot,
        maps.real_slots)
    return out.view(shape)


class FeatureSpaceLocalAttention(nn.Module):
    """Feature-space local attention (FSLA) with LePE.

    Queries are clustered per image and per head
    (:func:`balanced_hierarchical_clustering`); attention runs inside every
    leaf cluster against its own tokens plus ``overlap`` tokens of its
    sibling; a depthwise 3x3 convolution of the values (LePE) is added and
    the result projected. Any H x W and batch size: the rule for numbers of
    tokens that are not ``cluster_size * 2**L`` (padding, overlap cap, single
    cluster) is in :mod:`.clustering`; it reduces to the published
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
        check_fsla_options(
            cluster_size,
            overlap,
            num_iters,
            temperature,
            qk_scale,
            owner=type(self).__name__)
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
        self.get_v = LePE(embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        # qkv output channels reordered (part, head, dim) -> (head, part,
        # dim): one row of 3 * head_dims values is the query, key and value
        # of one (token, head), so one gather sorts all three.
        head_major = torch.arange(3 * embed_dims).view(3, num_heads, -1)
        self.register_buffer(
            'head_major',
            head_major.transpose(0, 1).reshape(-1),
            persistent=False)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'cluster_size={self.cluster_size}, overlap={self.overlap}, '
                f'num_iters={self.num_iters}, temperature={self.temperature}, '
                f'scale={self.scale:.4g}')

    def forward(self, x: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """(B, N, C) tokens of an H x W grid -> (B, N, C)."""
        self._check_input(x, hw_shape)
        qkv = self._project_qkv(x)
        order = self._cluster_queries(qkv)
        maps = _slot_maps(order, x.shape[1], self.num_heads)
        out = self._cluster_attention(qkv, order, maps)
        out = _to_token_order(out, maps, x.shape)
        out = out + self._lepe(qkv, hw_shape)
        return self.proj_drop(self.proj(out))

    def _check_input(self, x: torch.Tensor, hw_shape: HWShape):
        """Shapes only (no sync with the device)."""
        owner = 'FSLA'
        if x.dim() != 3:
            refuse(
                ValueError, 'x shape', tuple(x.shape),
                'FSLA takes 3-D tokens (B, N, C)',
                'flatten a (B, C, H, W) map with x.flatten(2).'
                'transpose(1, 2)', owner)
        _, N, C = x.shape
        H, W = hw_shape
        if H * W != N:
            refuse(ValueError, 'hw_shape', tuple(hw_shape),
                   f'H * W must equal the {N} tokens of x',
                   'pass the (H, W) grid the tokens were flattened from',
                   owner)
        if C != self.embed_dims:
            refuse(
                ValueError, 'x shape', tuple(x.shape),
                f'x has {C} channels, FSLA was built with embed_dims='
                f'{self.embed_dims}',
                f'give {self.embed_dims}-channel tokens or build FSLA '
                f'with embed_dims={C}', owner)

    def _project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, h, 3, d) queries, keys and values."""
        B, N, _ = x.shape
        weight, bias = self.qkv.weight, self.qkv.bias
        bias = None if bias is None else bias[self.head_major]
        qkv = F.linear(x, weight[self.head_major], bias)
        return qkv.view(B, N, self.num_heads, 3, self.head_dims)

    def _cluster_queries(self, qkv: torch.Tensor) -> torch.Tensor:
        """Cluster the queries of every (image, head).

        (B, N, h, 3, d) -> ``order`` (B * h, G, m), see
        :func:`cluster_order`.
        """
        B, N, h, _, d = qkv.shape
        return cluster_order(
            qkv[..., 0, :].transpose(1, 2).reshape(B * h, N, d),
            self.cluster_size, self.num_iters, self.temperature)

    def _cluster_attention(self, qkv: torch.Tensor, order: torch.Tensor,
                           maps: SlotMaps) -> torch.Tensor:
        """Attention inside every leaf, over its own and its overlap keys.

        (B, N, h, 3, d) -> (B * h, G, m, d), in the slot order. The overlap
        is capped at the smallest leaf, ``N // G`` real tokens; padding keys
        (``order`` -1, the same slots in every row) are masked.
        """
        B, N, h, _, d = qkv.shape
        G, m = order.shape[1:]
        overlap = min(self.overlap, N // G) if G > 1 else 0
        q_c, k_c, v_c = _ClusterQKV.apply(
            qkv.view(B * N * h, 3 * d), maps.token_of_slot.view(-1, G, m),
            maps.slot_of_token, overlap)
        mask = None
        if has_padding(G * m - N):  # 4-D, or CPU runs unfused attention
            mask = order[:1] >= 0  # (1, G, m): the layout is per N only
            if overlap:
                mask = _key_windows(mask, overlap)
            mask = mask[:, :, None, :]  # (1, G, 1, m + o)
        return F.scaled_dot_product_attention(
            q_c,
            k_c,
            v_c,
            attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.,
            scale=self.scale)

    def _lepe(self, qkv: torch.Tensor, hw_shape: HWShape) -> torch.Tensor:
        """LePE: ``get_v`` on the values in image order -> (B, N, C).

        Heads are concatenated head-major; (B, H, W, C) permuted is the
        channels-last layout of (B, C, H, W).
        """
        B, N = qkv.shape[:2]
        H, W = hw_shape
        v = qkv[..., 2, :].reshape(B, H, W, self.embed_dims)
        lepe = self.get_v(v.permute(0, 3, 1, 2))
        return lepe.permute(0, 2, 3, 1).reshape(B, N, self.embed_dims)
