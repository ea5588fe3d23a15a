"""Balanced hierarchical clustering of tokens, as FSLA uses it.

Tokens are split in two, recursively, into ``2**L`` leaf clusters of equal
size (up to one token), from their features alone. The attention that
consumes the clusters is :mod:`.feature_space_attention`.

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
from functools import lru_cache
from typing import NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import _disable_current_modes


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
    """``L = max(0, round(log2(N / S)))``.

    Computed with integers (``2 * N**2 >= S**2 * 4**l`` for every
    ``l <= L``), so a symbolic ``N`` under ``torch.compile`` only guards on
    the range of ``N`` that gives the same ``L``.
    """
    N, S = num_tokens, cluster_size
    L = 0
    while 2 * N * N >= S * S * 4**(L + 1):
        L += 1
    return L


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


def _build_layout(num_tokens: int, cluster_size: int,
                  overlap: int) -> ClusterLayout:
    """The :class:`ClusterLayout`, built on the CPU.

    Which parts are all valid is decided from the integer counts, never
    from a tensor's value, so the same code builds it under any tracing.
    """
    N = num_tokens
    L = num_cluster_levels(N, cluster_size)
    m = -(-N // 2**L)
    levels = []
    counts = [N]
    for level in range(L):
        T = m * 2**(L - level)
        n = torch.tensor(counts)[:, None]  # (G, 1) real tokens per group
        valid = torch.arange(T) < n
        # all valid: every group holds T real tokens (no padding)
        src = None if min(counts) == T else _child_slots(
            n, T, pads_first=level == L - 1)
        levels.append((torch.arange(T) < (n + 1) // 2, valid, src))
        counts = [c for k in counts for c in ((k + 1) // 2, k // 2)]

    leaf_counts = torch.tensor(counts)[:, None]  # (2**L, 1)
    slot = torch.arange(m)
    even = (torch.arange(2**L) % 2 == 0)[:, None]
    leaf_valid = torch.where(even, slot >= m - leaf_counts, slot < leaf_counts)
    overlap = min(overlap, min(counts)) if L > 0 else 0
    # even leaf: own slots, then the first slots of its right sibling;
    # odd leaf: the last slots of its left sibling, then its own.
    ones = torch.ones(2**L, overlap, dtype=torch.bool)
    key_valid = torch.where(even, torch.cat([leaf_valid, ones], 1),
                            torch.cat([ones, leaf_valid], 1))
    if min(counts) == m:  # no padding slot: every key is real
        key_valid = None
    return ClusterLayout(N, L, m, overlap, tuple(levels), leaf_valid,
                         key_valid)


@lru_cache(maxsize=256)
def _cached_layout(num_tokens: int, cluster_size: int, overlap: int,
                   device: torch.device) -> ClusterLayout:

    def move(t):
        return None if t is None else t.to(device)

    layout = _build_layout(num_tokens, cluster_size, overlap)
    return layout._replace(
        levels=tuple(tuple(move(t) for t in lv) for lv in layout.levels),
        leaf_valid=move(layout.leaf_valid),
        key_valid=move(layout.key_valid))


def cluster_layout(num_tokens: int, cluster_size: int, overlap: int,
                   device: Union[str, torch.device]) -> ClusterLayout:
    """The :class:`ClusterLayout` for ``num_tokens`` tokens on ``device``.

    Layouts are cached (one LRU cache keyed by all four arguments). They
    are plain tensors built from Python integers outside any tracing mode
    (fake tensors, ``make_fx``, ``torch.export``), so a layout first asked
    for while tracing is a real one, a constant of the traced graph, and
    later eager calls share it.
    """
    with _disable_current_modes():
        return _cached_layout(num_tokens, cluster_size, overlap,
                              torch.device(device))


def balanced_hierarchical_clustering(
        x: torch.Tensor,
        cluster_size: int = 49,
        num_iters: int = 2,
        temperature: float = 100.,
        overlap: int = 0) -> Tuple[torch.Tensor, ClusterLayout]:
    """Balanced hierarchical clustering of token features, with its layout.

    :func:`cluster_order` and :func:`cluster_layout` together.

    Args:
        x (Tensor): (B, N, d) features; each of the B rows is clustered
            independently (fold heads into B).
        cluster_size (int): target number of tokens per cluster.
        num_iters (int): centroid refinement iterations per level.
        temperature (float): softmax temperature of the soft assignments.
        overlap (int): sibling tokens in every leaf's keys; only shapes
            ``layout.key_valid``.

    Returns:
        tuple: ``order`` (B, 2**L, m) long (see :func:`cluster_order`) and
        the :class:`ClusterLayout`.
    """
    order = cluster_order(x, cluster_size, num_iters, temperature)
    return order, cluster_layout(x.shape[1], cluster_size, overlap, x.device)


@torch.library.custom_op('mmboat::cluster_order', mutates_args=())
def cluster_order(x: torch.Tensor,
                  cluster_size: int = 49,
                  num_iters: int = 2,
                  temperature: float = 100.) -> torch.Tensor:
    """Balanced hierarchical clustering of token features.

    Every level splits each group in two: centroids start as the means of
    the first and second half of the group (in its current order), are
    refined ``num_iters`` times with soft assignments
    ``softmax(temperature * cos)``, and the group is sorted by
    ``(cos(x, c1) + 1) / (cos(x, c2) + 1)``; the first half of the sorted
    tokens forms the first child. See the module docstring for the layout
    rule when ``N`` is not ``cluster_size * 2**L``. Runs without autograd
    or autocast, in float32 for half-precision inputs.

    A ``torch.library`` custom op (``torch.ops.mmboat.cluster_order``): to
    ``torch.compile`` and ``torch.export`` it is one opaque kernel whose
    output shape follows from ``N`` alone (its fake implementation), so
    its data-dependent sorts never break a graph.

    Args:
        x (Tensor): (B, N, d) features; each of the B rows is clustered
            independently (fold heads into B).
        cluster_size (int): target number of tokens per cluster.
        num_iters (int): centroid refinement iterations per level.
        temperature (float): softmax temperature of the soft assignments.

    Returns:
        Tensor: (B, 2**L, m) long, the token index held by every slot of
        every leaf in leaf order (``-1`` for padding).
    """
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return _cluster(x.detach(), cluster_size, num_iters, temperature)


@cluster_order.register_fake
def _cluster_order_shape(x, cluster_size=49, num_iters=2, temperature=100.):
    B, N, _ = x.shape
    G = 2**num_cluster_levels(N, cluster_size)
    return x.new_empty(B, G, (N + G - 1) // G, dtype=torch.long)


def _group_argsort(ratio: torch.Tensor, packed: bool = True) -> torch.Tensor:
    """Flat ``argsort(dim=-1, stable=True)`` of a (B, G, T) tensor.

    Returns the index, into ``ratio.view(-1)``, of every element of every
    group (row of T) in ascending order. Equal ratios (``-0.0`` and ``0.0``
    included) keep their order; NaNs sort last, in order.

    Two sort keys, one order. ``packed`` (the op's kernel), float32: one 1-D
    stable sort of int64 keys (group, ratio bits made monotonic), which CPU
    and CUDA run as a radix sort, several times faster than a segmented
    stable float sort. Otherwise (other dtypes, and the export path of
    :func:`cluster_order_decomposition`, since ONNX has no bitcast): a
    stable float sort of every group, which orders ties (``-0.0 == 0.0``)
    and NaNs the same way.
    """
    B, G, T = ratio.shape
    if not packed or ratio.dtype != torch.float32:
        perm = ratio.argsort(dim=-1, stable=True)
        return perm + torch.arange(
            0, B * G * T, T, device=ratio.device).view(B, G, 1)
    bits = ratio.view(torch.int32).long()
    # IEEE order as unsigned: negatives reversed below positives
    key = torch.where(bits < 0, -bits, bits + 2**31)
    key.masked_fill_(ratio.isnan(), 2**32 - 1)
    key += torch.arange(B * G, device=ratio.device).view(B, G, 1) << 32
    return key.view(-1).sort(stable=True).indices.view(B, G, T)


def _split_ranks(q: torch.Tensor,
                 inv_norm: torch.Tensor,
                 level_layout,
                 num_iters: int,
                 temperature: float,
                 packed_sort: bool = True) -> torch.Tensor:
    """Sorted ranks of one level's groups, in the slot layout of the level.

    Args:
        q (Tensor): (B, G, T, d) features of G groups of T slots each;
            padding rows are zero.
        inv_norm (Tensor): (B, G, 1, T) reciprocal feature norms.
        level_layout (tuple): the level's ``(first, valid, src)`` of
            :attr:`ClusterLayout.levels`.
        packed_sort (bool): the sort key, see :func:`_group_argsort`.

    Returns:
        Tensor: (B, G, T) long, the row of ``q.view(-1, d)`` that every
        slot of the split groups reads from.
    """
    first, valid, src = level_layout
    B, G, T, _ = q.shape
    qt = q.transpose(-1, -2)  # (B, G, d, T): row-vector products are fast
    total = q.sum(2, keepdim=True)  # (B, G, 1, d); padding rows are 0
    if src is None:  # no padding: the first half of every group
        first_sum = q[:, :, :T // 2].sum(2, keepdim=True)
    else:
        first_sum = torch.matmul(first.to(q.dtype)[:, None], q)
    # means of the two halves, up to a scale that normalising removes
    c1 = F.normalize(first_sum, dim=-1)
    c2 = F.normalize(total - first_sum, dim=-1)
    scaled_inv_norm = inv_norm * temperature
    for _ in range(num_iters):
        # softmax over two centroids == sigmoid of the cosine difference
        # (out of place: small tensors, and decompositions must be
        # functional)
        assign = (torch.matmul(c1 - c2, qt) * scaled_inv_norm).sigmoid()
        first_sum = torch.matmul(assign, q)  # (B, G, 1, d)
        c1 = F.normalize(first_sum, dim=-1)
        c2 = F.normalize(total - first_sum, dim=-1)
    ratio = ((torch.matmul(c1, qt) * inv_norm + 1) /
             (torch.matmul(c2, qt) * inv_norm + 1)).view(B, G, T)
    if src is not None:
        big = torch.finfo(ratio.dtype).max
        ratio = torch.nan_to_num(ratio, nan=big, posinf=big)
        ratio = ratio.masked_fill(~valid, float('inf'))
    perm = _group_argsort(ratio, packed_sort)
    if src is not None:
        perm = perm.gather(-1, src.expand(B, G, T))
    return perm


def _cluster(x, cluster_size, num_iters, temperature, packed_sort=True):
    """The clustering, the one implementation of :func:`cluster_order`
    (``packed_sort``) and of :func:`cluster_order_decomposition`."""
    B, N, d = x.shape
    layout = cluster_layout(N, cluster_size, 0, x.device)
    m, L = layout.leaf_size, layout.num_levels
    Np = m * 2**L
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    # A zero row stands for padding: it adds nothing to any centroid.
    feats = torch.cat([x, x.new_zeros(B, Np - N, d)], dim=1) if Np > N else x
    if L == 0:
        order = torch.arange(Np, device=x.device).expand(B, Np)
        order = torch.where(order < N, order, -1)
        return order.reshape(B, 1, m).contiguous()
    inv_norm = feats.norm(dim=-1).clamp_min(1e-12).reciprocal()
    for level, level_layout in enumerate(layout.levels):
        G, T = 2**level, Np >> level
        flat = _split_ranks(
            feats.view(B, G, T, d), inv_norm.view(B, G, 1, T), level_layout,
            num_iters, temperature, packed_sort).view(-1)  # rows of (B * Np)
        # one index per level: the token each slot holds, and its features
        order = flat if level == 0 else order.index_select(0, flat)
        if level + 1 < L:  # the last level only needs the order
            feats = feats.reshape(B * Np, d).index_select(0, flat)
            inv_norm = inv_norm.view(-1).index_select(0, flat)
    order = order.view(B, Np) - torch.arange(
        0, B * Np, Np, device=x.device)[:, None]
    order = torch.where(order < N, order, -1)
    return order.view(B, 2**L, m)


def cluster_order_decomposition(x: torch.Tensor,
                                cluster_size: int = 49,
                                num_iters: int = 2,
                                temperature: float = 100.) -> torch.Tensor:
    """:func:`cluster_order` in standard aten ops, for exporters.

    The op's own implementation (:func:`_cluster`) with a stable float
    sort of every group instead of the radix sort of packed integer keys
    (:func:`_group_argsort`), which needs a bitcast that ONNX lacks: the
    same ``order`` for every finite input, in float32 and float64 (tests
    check it). Used by :data:`EXPORT_DECOMPOSITIONS` when an exported
    program is lowered (e.g. for ONNX), with the layout of the traced
    ``N`` frozen into the graph as constants.
    """
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return _cluster(
            x.detach(),
            cluster_size,
            num_iters,
            temperature,
            packed_sort=False)


#: ``ExportedProgram.run_decompositions`` entries that lower the clustering
#: op to standard aten ops (see :func:`cluster_order_decomposition`).
EXPORT_DECOMPOSITIONS = {
    torch.ops.mmboat.cluster_order.default: cluster_order_decomposition
}
