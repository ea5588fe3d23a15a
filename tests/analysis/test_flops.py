"""FLOP counting of FSLA and the BOAT backbones: MMEngine's jit analysis
(what mmdet / mmseg / mmpretrain's get_flops.py run) and torch's
FlopCounterMode, against hand counts."""
import pytest
import torch
from mmengine.analysis import FlopAnalyzer, get_model_complexity_info
from torch.utils.flop_counter import FlopCounterMode

import mmboat  # noqa: F401  (registers the counting)
from mmboat.analysis import cluster_order_macs
from mmboat.models.backbones import BOATCSWinTransformer, BOATSwinTransformer
from mmboat.models.layers import FeatureSpaceLocalAttention
from mmboat.ops.cluster_order import _cluster


@pytest.mark.parametrize('N', [196, 143, 340, 30])
def test_cluster_order_macs_are_the_products_it_runs(N):
    # every matrix product of the clustering, padding slots included, as
    # FlopCounterMode counts them on the implementation (not the op)
    x = torch.randn(3, N, 8)
    counter = FlopCounterMode(display=False)
    with counter:
        _cluster(x, 49, 2, 100.)
    assert counter.get_total_flops() == 2 * cluster_order_macs(3, N, 8, 49, 2)


def fsla_hand_count(B, hw, C, h, S=49, overlap=20, iters=2):
    """qkv + output projections, clustering, attention over cluster +
    overlap, LePE (depthwise 3 x 3), in multiply-adds."""
    N = hw[0] * hw[1]
    d = C // h
    L = 0 if N <= S else round(torch.tensor(N / S).log2().item())
    G = 2**L
    m = -(-N // G)
    o = min(overlap, N // G) if G > 1 else 0
    projections = B * N * C * 3 * C + B * N * C * C
    clustering = L * (2 * iters + 2 + int(G * m != N)) * B * h * G * m * d
    attention = B * h * G * m * (m + o) * 2 * d
    lepe = B * N * C * 9
    return projections + clustering + attention + lepe


class _Wrap(torch.nn.Module):

    def __init__(self, fsla, hw):
        super().__init__()
        self.fsla, self.hw = fsla, hw

    def forward(self, x):
        return self.fsla(x, self.hw)


@pytest.mark.parametrize('hw,B,C,h',
                         [((14, 14), 1, 32, 2), ((13, 11), 2, 32, 4),
                          ((6, 5), 1, 16, 1)])
def test_fsla_count_matches_hand_count_in_both_counters(hw, B, C, h):
    m = _Wrap(FeatureSpaceLocalAttention(C, h).eval(), hw)
    x = torch.randn(B, hw[0] * hw[1], C)
    expected = fsla_hand_count(B, hw, C, h)
    info = get_model_complexity_info(m, inputs=(x, ), show_table=False)
    assert info['flops'] == expected
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m(x)
    assert counter.get_total_flops() == 2 * expected


BACKBONES = [
    (BOATSwinTransformer,
     dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))),
    (BOATCSWinTransformer,
     dict(
         embed_dims=16,
         depths=(1, 2, 2, 1),
         num_heads=(2, 4, 8, 16),
         split_sizes=(1, 2, 7, 7))),
]


@pytest.mark.parametrize('cls,arch', BACKBONES, ids=['swin', 'cswin'])
def test_backbone_count_is_the_sum_of_its_parts(cls, arch):
    torch.manual_seed(0)
    backbone = cls(arch=arch).eval()
    x = torch.randn(1, 3, 100, 132)
    flops = FlopAnalyzer(backbone, (x, ))
    flops.unsupported_ops_warnings(False)
    by_module = flops.by_module()
    total = flops.total()
    # every FSLA block is its hand count at its stage's grid
    grids = {}
    hooks = [
        fsla.register_forward_pre_hook(
            lambda mod, args, key=name: grids.__setitem__(
                key, (args[0].shape, tuple(args[1]))))
        for name, fsla in backbone.named_modules()
        if isinstance(fsla, FeatureSpaceLocalAttention)
    ]
    with torch.no_grad():
        backbone(x)
    for hook in hooks:
        hook.remove()
    assert grids, 'no FSLA block ran'
    for name, ((B, _, C), hw) in grids.items():
        fsla = backbone.get_submodule(name)
        assert by_module[name] == fsla_hand_count(B, hw, C, fsla.num_heads)
    # the whole is the sum of its direct parts: nothing uncounted between
    children = [n for n, _ in backbone.named_children()]
    assert total == sum(by_module[n] for n in children)
    # and the stages are the sum of their blocks and merges
    for i, stage in enumerate(backbone.stages):
        parts = [f'stages.{i}.{n}' for n, _ in stage.named_children()]
        assert by_module[f'stages.{i}'] == sum(by_module[p] for p in parts)
