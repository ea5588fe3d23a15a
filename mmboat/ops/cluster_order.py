"""``mmboat::cluster_order``: FSLA's balanced hierarchical clustering as a
``torch.library`` custom op. Its registration lives here and only here.

* :func:`cluster_order`: the op (``torch.ops.mmboat.cluster_order``). Its
  Python body, :func:`_cluster` in plain torch ops, is the kernel of every
  device but the CPU (CUDA). The CPU kernel is compiled C++
  (``mmboat/ops/csrc/cluster_order.cpp``, the extension ``mmboat._ext``
  that ``setup.py`` builds), registered on the same op here, so every
  caller (FSLA, the exporters, the FLOP counters) keeps calling the same
  op. Where the extension is not built, the CPU runs the torch body too,
  after one warning that says how to build it; the environment variable
  ``MMBOAT_CLUSTER_IMPL=eager`` makes it run the torch body anyway
  (:func:`cluster_order_impl` says which runs). Both give the same order in
  float64, ties included; in float32 they differ where two split ratios are
  within rounding of each other.
* ``_cluster_order_shape``: its fake (meta) implementation; the output
  shape follows from ``N`` alone, so ``torch.compile`` and
  ``torch.export`` see one opaque node whose data-dependent sorts never
  break a graph.
* :func:`cluster_order_decomposition` and :data:`EXPORT_DECOMPOSITIONS`:
  the same computation in standard aten ops, for exporters (ONNX).
* :func:`balanced_hierarchical_clustering`: the op and its
  :class:`~.cluster_layout.ClusterLayout` together.

The layout rule for any number of tokens is in :mod:`.cluster_layout`.
"""
import importlib
import os
import warnings
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from mmboat.utils.collect_env import register_env_info
from .cluster_layout import ClusterLayout, cluster_layout, num_cluster_levels

#: The environment variable that picks the CPU kernel of the op: unset or
#: empty, the compiled one where it is built (else the torch body, after a
#: warning); ``compiled``, the compiled one or an error; ``eager``, the
#: torch body.
IMPL_ENV = 'MMBOAT_CLUSTER_IMPL'
#: How to build the compiled kernel (in the repository, in mmboat's
#: environment).
BUILD_COMMAND = ('bash tools/setup_env.sh (or: pip install -e . '
                 '--no-build-isolation --use-pep517 --no-deps)')


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
    tokens forms the first child. See :mod:`.cluster_layout` for the
    layout rule when ``N`` is not ``cluster_size * 2**L``. Runs without
    autograd or autocast, in float32 for half-precision inputs.

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
    return _eager_cluster_order(x, cluster_size, num_iters, temperature)


def _eager_cluster_order(x, cluster_size, num_iters, temperature):
    """The op's torch body, without autograd or autocast."""
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return _cluster(x.detach(), cluster_size, num_iters, temperature)


# ------------------------------------------------------ the CPU kernel

#: ``(kernel, None)`` once ``mmboat._ext`` is imported, ``(None, error)``
#: once it failed to; None before the first try
_compiled: Optional[Tuple[Optional[Callable], Optional[Exception]]] = None
_warned = False


def _load_compiled() -> Callable:
    """``mmboat._ext.cluster_order_cpu``; raises ImportError when the
    extension is not built (or does not load)."""
    return importlib.import_module('mmboat._ext').cluster_order_cpu


def _compiled_kernel() -> Tuple[Optional[Callable], Optional[Exception]]:
    """The compiled CPU kernel and None, or None and why it is missing;
    the import is tried once."""
    global _compiled
    if _compiled is None:
        try:
            _compiled = (_load_compiled(), None)
        except ImportError as e:
            _compiled = (None, e)
    return _compiled


def _chosen_impl() -> str:
    """What :data:`IMPL_ENV` asks for: ``''`` (the compiled kernel where
    it is built), ``'compiled'`` or ``'eager'``."""
    choice = os.environ.get(IMPL_ENV, '').strip().lower()
    if choice not in ('', 'compiled', 'eager'):
        raise ValueError(f'{IMPL_ENV}={os.environ[IMPL_ENV]!r}: use '
                         "'compiled', 'eager' or leave it unset")
    return choice


def cluster_order_impl() -> str:
    """Which kernel ``mmboat::cluster_order`` runs on the CPU:
    ``'compiled'`` (``mmboat._ext``) or ``'eager'`` (the torch body),
    following :data:`IMPL_ENV`."""
    choice = _chosen_impl()
    if choice == 'eager':
        return 'eager'
    kernel, error = _compiled_kernel()
    if kernel is None and choice == 'compiled':
        raise RuntimeError(
            f'{IMPL_ENV}=compiled, but the compiled clustering op '
            f'(mmboat._ext) does not load ({error}); build it with '
            f'{BUILD_COMMAND}')
    return 'compiled' if kernel is not None else 'eager'


@register_env_info('mmboat cluster_order')
def _describe_impl() -> str:
    """The line of ``collect_env`` about the clustering op's CPU kernel."""
    try:
        impl = cluster_order_impl()
    except (ValueError, RuntimeError) as e:
        return f'error: {e}'
    if impl == 'compiled':
        return 'compiled CPU kernel (mmboat._ext)'
    if _chosen_impl() == 'eager':
        return f'eager ({IMPL_ENV}=eager)'
    return (f'eager: the compiled CPU kernel is not built '
            f'({_compiled_kernel()[1]}); build it with {BUILD_COMMAND}')


@cluster_order.register_kernel('cpu')
def _cluster_order_cpu(x: torch.Tensor,
                       cluster_size: int = 49,
                       num_iters: int = 2,
                       temperature: float = 100.) -> torch.Tensor:
    """The CPU kernel: the compiled one, or the torch body (see
    :func:`cluster_order_impl`); one warning when the compiled one is
    missing."""
    global _warned
    if cluster_order_impl() == 'compiled':
        kernel = _compiled_kernel()[0]
        return kernel(x.detach(), num_cluster_levels(x.shape[1], cluster_size),
                      num_iters, float(temperature))
    if not _warned and _chosen_impl() != 'eager':
        _warned = True
        warnings.warn(
            'mmboat::cluster_order: the compiled CPU kernel (mmboat._ext) is '
            f'not built ({_compiled_kernel()[1]}); the clustering runs its '
            f'slower torch code. Build it with {BUILD_COMMAND}.',
            stacklevel=2)
    return _eager_cluster_order(x, cluster_size, num_iters, temperature)


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
    # cos(x, c1) and cos(x, c2) of every token in one (T, d) x (d, 2)
    # product: BLAS computes every row of it the same way, so equal tokens
    # get equal ratios (``c @ q^T`` computes its last ``T % 4`` columns
    # another way, off by an ulp, which broke ties between equal tokens)
    cos = torch.matmul(q, torch.cat([c1, c2], 2).transpose(-1, -2))
    cos = cos * inv_norm.transpose(-1, -2) + 1  # (B, G, T, 2)
    ratio = (cos[..., 0] / cos[..., 1]).view(B, G, T)
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
