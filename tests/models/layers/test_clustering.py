import math

import pytest
import torch
import torch.nn.functional as F

from mmboat.models.layers import (balanced_hierarchical_clustering,
                                  cluster_layout, num_cluster_levels)
from mmboat.ops import (EXPORT_DECOMPOSITIONS, cluster_order_decomposition,
                        key_overlap)
from mmboat.ops.cluster_layout import _cached_layout
from mmboat.ops.cluster_order import _group_argsort


@pytest.mark.parametrize('N,S', [(3136, 49), (100, 49), (143, 49), (340, 49),
                                 (49, 49), (10, 49), (1, 49), (66800, 49),
                                 (37, 4)])
def test_every_token_is_query_of_one_cluster(N, S):
    torch.manual_seed(0)
    x = torch.randn(3, N, 8)
    order, layout = balanced_hierarchical_clustering(x, S)
    L = num_cluster_levels(N, S)
    assert L == (0 if N <= S else max(0, round(math.log2(N / S))))
    assert order.shape == (3, 2**L, math.ceil(N / 2**L))
    for row in order.view(3, -1):
        real = row[row >= 0]
        assert torch.equal(real.sort().values, torch.arange(N))
    # leaves hold floor or ceil of N / 2**L real tokens; at most 2**L - 1 pads
    sizes = (order >= 0).sum(-1)
    assert set(sizes.unique().tolist()) <= {N // 2**L, math.ceil(N / 2**L)}
    assert (order < 0).sum(-1).sum(-1).max() <= 2**L - 1
    # the layout does not depend on the data
    assert torch.equal(order < 0, (layout.leaf_valid == 0).expand_as(order))


def test_clustering_groups_similar_tokens():
    # two well separated blobs of 49 tokens each end up in separate clusters
    torch.manual_seed(0)
    a = torch.randn(49, 16) * 0.05 + torch.tensor([1.] + [0.] * 15)
    b = torch.randn(49, 16) * 0.05 + torch.tensor([0., 1.] + [0.] * 14)
    x = torch.cat([a, b])[torch.randperm(98)][None]
    order, _ = balanced_hierarchical_clustering(x, 49)
    labels = (x[0, :, 0] > 0.5).long()
    for leaf in order[0]:
        assert labels[leaf].unique().numel() == 1


@pytest.mark.parametrize(
    'N,S,overlap,expected',
    [
        (196, 49, 20, (2, 49, 20)),  # the published layout: no padding
        (143, 49, 20, (2, 36, 20)),  # 4 leaves of 35-36
        (33, 8, 7, (2, 9, 7)),  # 4 leaves of 8-9
        (37, 4, 3, (3, 5, 3)),  # 8 leaves of 4-5
        (20, 4, 3, (2, 5, 3)),
        (10, 4, 3, (1, 5, 3)),  # overlap 3 kept: leaves of exactly 5
        (42, 49, 20, (0, 42, 0)),  # a single cluster has no overlap
    ])
def test_layout_levels_leaf_size_and_overlap(N, S, overlap, expected):
    layout = cluster_layout(N, S, overlap, 'cpu')
    assert (layout.num_levels, layout.leaf_size, layout.overlap) == expected
    assert layout.num_tokens == N and len(layout.levels) == expected[0]
    assert int(layout.leaf_valid.sum()) == N


def test_overlap_is_capped_at_the_smallest_leaf():
    # 23 tokens, S = 8: 2 levels, leaves of 6, 6, 6 and 5 real tokens
    layout = cluster_layout(23, 8, 7, 'cpu')
    assert layout.leaf_valid.sum(-1).tolist() == [6, 6, 6, 5]
    assert layout.overlap == key_overlap(23, 8, 7) == 5
    assert layout.key_valid.shape == (4, 6 + 5)


def test_the_layout_caps_the_overlap_with_key_overlap():
    # the one cap, floor(N / 2**L) real tokens, 0 with a single leaf
    for N in range(1, 400, 3):
        for S, overlap in ((49, 20), (8, 7), (4, 3)):
            L = num_cluster_levels(N, S)
            expected = min(overlap, N // 2**L) if L else 0
            assert key_overlap(N, S, overlap) == expected
            assert cluster_layout(N, S, overlap, 'cpu').overlap == expected


def test_one_layout_cache_for_every_spelling_of_a_device():
    a = cluster_layout(143, 49, 20, 'cpu')
    assert cluster_layout(143, 49, 20, torch.device('cpu')) is a
    assert a.leaf_valid.device == torch.device('cpu')
    assert cluster_layout(143, 49, 19, 'cpu') is not a


# --- Bit-identity against the implementation before the speed work --------
# A frozen copy of the clustering as it was (sort at every level, features
# reordered with index_select). Every optimisation of ``clustering.py`` must
# give exactly the same ``order`` (integers, so no tolerance) in float64 and
# float32. Ties in the split ratio are broken by the current position in the
# group (stable sort), NaN ratios sort last; random inputs have no ties in
# float64 but do have some in float32 at large N.


def _ref_split_ranks(q, inv_norm, level_layout, num_iters, temperature):
    first, valid, src = level_layout
    B, G, T, _ = q.shape
    qt = q.transpose(-1, -2)
    total = q.sum(2, keepdim=True)
    if src is None:
        first_sum = q[:, :, :T // 2].sum(2, keepdim=True)
    else:
        first_sum = torch.matmul(first.to(q.dtype)[:, None], q)
    c1 = F.normalize(first_sum, dim=-1)
    c2 = F.normalize(total - first_sum, dim=-1)
    scaled_inv_norm = inv_norm * temperature
    for _ in range(num_iters):
        assign = torch.matmul(c1 - c2, qt).mul_(scaled_inv_norm).sigmoid_()
        first_sum = torch.matmul(assign, q)
        c1 = F.normalize(first_sum, dim=-1)
        c2 = F.normalize(total - first_sum, dim=-1)
    ratio = torch.matmul(c1, qt).mul_(inv_norm).add_(1).div_(
        torch.matmul(c2, qt).mul_(inv_norm).add_(1)).view(B, G, T)
    if src is not None:
        big = torch.finfo(ratio.dtype).max
        ratio = torch.nan_to_num(ratio, nan=big, posinf=big)
        ratio = ratio.masked_fill(~valid, float('inf'))
    perm = ratio.argsort(dim=-1, stable=True)
    if src is not None:
        perm = perm.gather(-1, src.expand(B, G, T))
    return perm


def _ref_cluster(x, cluster_size=49, num_iters=2, temperature=100.):
    B, N, d = x.shape
    L = num_cluster_levels(N, cluster_size)
    m = -(-N // 2**L)
    Np = m * 2**L
    feats = torch.cat([x, x.new_zeros(B, Np - N, d)], dim=1) if Np > N else x
    order = torch.arange(Np).expand(B, Np)
    if L == 0:
        return torch.where(order < N, order, -1).reshape(B, 1, m)
    inv_norm = feats.norm(dim=-1).clamp_min(1e-12).reciprocal()
    base = torch.arange(B)[:, None] * Np
    # the layout (data-independent, tested above) is shared
    levels = cluster_layout(N, cluster_size, 0, 'cpu').levels
    for level, level_layout in enumerate(levels):
        G, T = 2**level, Np >> level
        perm = _ref_split_ranks(
            feats.view(B, G, T, d), inv_norm.view(B, G, 1, T), level_layout,
            num_iters, temperature)
        perm = perm + (torch.arange(G) * T)[:, None]
        perm = perm.view(B, Np)
        order = order.gather(1, perm)
        if level + 1 < L:
            flat = (perm + base).view(-1)
            feats = feats.reshape(B * Np, d).index_select(0, flat)
            feats = feats.view(B, Np, d)
            inv_norm = inv_norm.view(-1).index_select(0, flat).view(B, Np)
    order = torch.where(order < N, order, -1)
    return order.view(B, 2**L, m)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize(
    'N,S,d',
    [
        (3136, 49, 32),  # 56 x 56, 6 levels, no padding
        (784, 49, 32),
        (196, 49, 16),
        (98, 49, 8),
        (49, 49, 32),  # a single cluster
        (30, 49, 8),
        (1, 49, 8),
        (143, 49, 16),  # padding at every level
        (340, 49, 32),
        (4200, 49, 32),  # 60 x 70, not 49 * 2**L
        (1050, 49, 64),  # 25 x 42
        (37, 4, 8),
        (23, 8, 7),
    ])
def test_order_is_bit_identical_to_the_reference(N, S, d, dtype):
    torch.manual_seed(N * 7 + d)
    twins = torch.randn(2, (N + 1) // 2, d, dtype=dtype)  # exact ties
    for x in (torch.randn(5, N, d,
                          dtype=dtype), torch.rand(2, N, d, dtype=dtype) - 0.3,
              twins.repeat_interleave(2, 1)[:, :N]):
        order, _ = balanced_hierarchical_clustering(x, S, overlap=20)
        assert torch.equal(order, _ref_cluster(x, S))


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_stable_argsort_matches_a_stable_float_sort(dtype):
    # ties, signed zeros, negatives, infinities and NaNs, in groups
    torch.manual_seed(0)
    special = torch.tensor([
        0., -0., 1., -1.,
        float('inf'), -float('inf'),
        float('nan'), -float('nan'), 1e-45, -1e-45, 3.4e38, -3.4e38
    ],
                           dtype=dtype)
    pool = torch.cat([special, torch.randn(20, dtype=dtype)])
    for B, G, T in [(3, 4, 50), (1, 1, 1), (2, 8, 7), (5, 1, 3000)]:
        ratio = pool[torch.randint(len(pool), (B, G, T))]
        expected = ratio.argsort(dim=-1, stable=True)
        expected += torch.arange(0, B * G * T, T).view(B, G, 1)
        assert torch.equal(_group_argsort(ratio), expected)
        # the export path's key (a stable float sort): the same order
        assert torch.equal(_group_argsort(ratio, packed=False), expected)


def test_num_cluster_levels_integer_rule_is_round_log2():
    # the integer rule (symbolic-shape friendly) is round(log2(N / S))
    for S in (1, 4, 7, 49, 64):
        for N in range(1, 20000, 7):
            expected = 0 if N <= S else round(math.log2(N / S))
            assert num_cluster_levels(N, S) == max(0, expected), (N, S)


@pytest.mark.parametrize('N', [1, 30, 49, 98, 143, 196, 340])
def test_cluster_order_custom_op_fake_shape_matches_real(N):
    # torch.library's own checks: schema, fake (shape-only) implementation
    # against the real one, dispatch under autograd
    x = torch.randn(2, N, 8, requires_grad=True)
    torch.library.opcheck(torch.ops.mmboat.cluster_order.default,
                          (x, 49, 2, 100.))
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake = torch.ops.mmboat.cluster_order(mode.from_tensor(x), 49, 2, 100.)
    real = torch.ops.mmboat.cluster_order(x, 49, 2, 100.)
    assert fake.shape == real.shape and fake.dtype == real.dtype
    assert not real.requires_grad


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N,S,d', [(3136, 49, 32), (143, 49, 16),
                                   (340, 49, 32), (1050, 49, 64), (30, 49, 8),
                                   (1, 49, 8), (37, 4, 8), (23, 8, 7)])
def test_export_decomposition_gives_the_op_order(N, S, d, dtype):
    # one implementation, two sort keys: the same order, ties included
    torch.manual_seed(N + d)
    twins = torch.randn(2, (N + 1) // 2, d, dtype=dtype)
    for x in (torch.randn(3, N, d,
                          dtype=dtype), twins.repeat_interleave(2, 1)[:, :N]):
        for iters, temp in ((2, 100.), (1, 10.)):
            assert torch.equal(
                cluster_order_decomposition(x, S, iters, temp),
                torch.ops.mmboat.cluster_order(x, S, iters, temp))


def _traced_decomposition(N, S):

    class Cluster(torch.nn.Module):

        def forward(self, x):
            return torch.ops.mmboat.cluster_order(x, S, 2, 100.)

    x = torch.randn(2, N, 8)
    program = torch.export.export(
        Cluster(), (x, ),
        dynamic_shapes=({
            0: torch.export.Dim('batch')
        }, ),
        strict=False).run_decompositions(EXPORT_DECOMPOSITIONS)
    return program.module()


@pytest.mark.parametrize('N,S', [(143, 49), (23, 8), (30, 49), (3136, 49)])
def test_exported_decomposition_is_plain_aten_and_eager_works_after(N, S):
    # the layout is built from Python integers outside the tracing modes:
    # the layout cached while tracing is a real one, eager calls after the
    # export reuse it, and the traced program matches the op at any batch
    _cached_layout.cache_clear()
    module = _traced_decomposition(N, S)
    assert not any('mmboat' in str(n.target) for n in module.graph.nodes)
    layout = cluster_layout(N, S, 0, 'cpu')
    for t in (layout.leaf_valid, *[lv[1] for lv in layout.levels]):
        assert type(t) is torch.Tensor  # not a fake tensor
    for B in (1, 3):
        x = torch.randn(B, N, 8)
        expected = torch.ops.mmboat.cluster_order(x, S, 2, 100.)
        assert torch.equal(module(x), expected)
        assert torch.equal(balanced_hierarchical_clustering(x, S)[0], expected)
