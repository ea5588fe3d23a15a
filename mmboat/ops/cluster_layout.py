"""The cluster layout of FSLA: what depends on the number of tokens only.

Tokens are split in two, recursively, into ``2**L`` leaf clusters of equal
size (up to one token), from their features alone (the op,
:mod:`.cluster_order`). Everything that does not depend on the features
is here, computed once per ``N`` and cached.

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
  S = 49 and overlap 20), by :func:`key_overlap`, the one place that caps
  it. With a single leaf (``L = 0``, e.g. ``N <= S``) there is no sibling
  and no overlap: FSLA is plain global attention plus LePE.
* In memory, padding slots sit at the start of even leaves and at the end
  of odd leaves, so the keys of every leaf are one contiguous window of the
  sorted tokens.

When ``N = S * 2**L`` there is no padding and the computation is exactly the
one of the published BOAT models.
"""
from functools import lru_cache
from typing import NamedTuple, Optional, Tuple, Union

import torch
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


def key_overlap(num_tokens: int, cluster_size: int, overlap: int) -> int:
    """Sibling tokens in the keys of every leaf: ``overlap`` capped at the
    smallest leaf, ``floor(N / 2**L)`` real tokens; 0 with a single leaf.

    The one place the cap is computed (the layout, FSLA's attention and
    the cluster pictures use it).
    """
    L = num_cluster_levels(num_tokens, cluster_size)
    return min(overlap, num_tokens // 2**L) if L > 0 else 0


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
    overlap = key_overlap(N, cluster_size, overlap)
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
