"""The cluster layout rule of FSLA (mmboat/ops/cluster_layout.py): levels,
leaf size, padding slots and the overlap cap, for any number of tokens."""
import math

import pytest
import torch

from mmboat.ops import (balanced_hierarchical_clustering, cluster_layout,
                        key_overlap, num_cluster_levels)


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


def test_num_cluster_levels_integer_rule_is_round_log2():
    # the integer rule (symbolic-shape friendly) is round(log2(N / S))
    for S in (1, 4, 7, 49, 64):
        for N in range(1, 20000, 7):
            expected = 0 if N <= S else round(math.log2(N / S))
            assert num_cluster_levels(N, S) == max(0, expected), (N, S)
