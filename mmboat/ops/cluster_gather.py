"""The gathers of FSLA between the token order and the cluster order, as
autograd Functions whose backward is a gather too.

Given the clustering ``order`` (B * h, G, m) of :mod:`.cluster_order`:

* :func:`slot_maps`: the row maps between the token order and the slot
  (cluster) order, both ways (:class:`SlotMaps`);
* :func:`key_windows`: every leaf's key window, its own slots and
  ``overlap`` slots of its sibling;
* :func:`gather_cluster_qkv` (``_ClusterQKV``): queries of every leaf and
  keys / values of its key window, from the projections in token order;
* :func:`to_token_order` (``_GatherRowsFunction``): attention outputs back
  to the token order.

A gather backward is much faster than the scatter-add of
``index_select``'s own backward. The Functions keep their class names:
FLOP counters name them (``prim::PythonOp._ClusterQKV``).
"""
from functools import partial
from typing import NamedTuple, Optional, Tuple

import torch


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


def slot_maps(order: torch.Tensor,
              num_tokens: int,
              num_heads: int,
              padded: bool = True) -> SlotMaps:
    """:class:`SlotMaps` of a clustering ``order`` (B * h, G, m).

    ``padded``: whether ``order`` may hold padding slots (-1), i.e. whether
    ``real_slots`` is needed; True is always correct (the caller decides,
    e.g. always under ``torch.compile``, see
    :func:`mmboat.models.layers.padding.has_padding`).
    """
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
    real_slots = (order >= 0).view(-1, 1) if padded else None
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


def key_windows(slots: torch.Tensor, overlap: int) -> torch.Tensor:
    """(B * h, G, m) entries of every leaf's slots (token indices, row
    indices, masks...) -> (B * h, G, m + o) entries of its key window:
    leaf 2j reads its slots and the first ``o`` of leaf 2j + 1, leaf 2j + 1
    the last ``o`` of leaf 2j and its own. ``o = overlap``, already capped
    (:func:`~.cluster_layout.key_overlap`); ``slots`` itself when 0."""
    BH, G, m = slots.shape
    o = overlap
    if not o:
        return slots
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
    per key slot, :func:`key_windows`) as strided views of one
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
            key_rows = key_windows(token_of_slot, o)
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


def gather_cluster_qkv(
        rows: torch.Tensor, maps: SlotMaps, num_leaves: int, leaf_size: int,
        overlap: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries (B*h, G, m, d) of every leaf and keys, values
    (B*h, G, m + o, d) of its key window, from ``rows`` (B*N*h, 3*d) in the
    token order (:class:`_ClusterQKV`); ``G = num_leaves``,
    ``m = leaf_size``, ``o = overlap`` (capped)."""
    token_of_slot = maps.token_of_slot.view(-1, num_leaves, leaf_size)
    return _ClusterQKV.apply(rows, token_of_slot, maps.slot_of_token, overlap)


def to_token_order(out: torch.Tensor, maps: SlotMaps,
                   shape: torch.Size) -> torch.Tensor:
    """Un-sort: (B * h, G, m, d) in the slot order -> (B, N, C).

    Heads are concatenated head-major (channel ``head * d + j``).
    """
    d = out.shape[-1]
    out = _gather_rows(
        out.reshape(-1, d), maps.slot_of_token, maps.token_of_slot,
        maps.real_slots)
    return out.view(shape)
