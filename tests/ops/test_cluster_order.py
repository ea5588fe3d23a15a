"""The ``mmboat::cluster_order`` op (mmboat/ops/cluster_order.py): its torch
body against a frozen plain implementation, its export decomposition, its
custom-op registration, and its compiled CPU kernel (mmboat/ops/csrc,
``mmboat._ext``) against the torch body:

- float64: the same order, ties included (equal tokens, constant inputs,
  tokens that are power-of-two multiples of others), padding or not, any
  cluster size and batch;
- float32: the same leaf sets on at least 99% of the leaves at N <= 3136,
  and FSLA outputs within float32 tolerance at N <= 784;
- float64 parity with the published FSLA fixtures;
- the fallback: without the extension the torch body runs, after one
  warning that says how to build it; ``MMBOAT_CLUSTER_IMPL`` picks the
  kernel; ``collect_env`` says which runs.
"""
import importlib
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from mmboat.models.layers import FeatureSpaceLocalAttention
from mmboat.ops import (EXPORT_DECOMPOSITIONS,
                        balanced_hierarchical_clustering, cluster_layout,
                        cluster_order_decomposition, num_cluster_levels)
from mmboat.ops.cluster_layout import _cached_layout
from mmboat.utils.collect_env import _ENV_INFO
from tests.helpers import published_fsla_module

# the module (``mmboat.ops.cluster_order`` is the op)
OP = importlib.import_module('mmboat.ops.cluster_order')
IMPL = OP.IMPL_ENV
COMPILED_BUILT = OP._compiled_kernel()[0] is not None
needs_compiled = pytest.mark.skipif(
    not COMPILED_BUILT,
    reason='the compiled clustering op (mmboat._ext) is not built: '
    f'{OP._compiled_kernel()[1]}; build it with {OP.BUILD_COMMAND}')


@contextmanager
def impl(name):
    """``mmboat::cluster_order`` runs its ``'compiled'`` CPU kernel or its
    torch body (``'eager'``)."""
    with mock.patch.dict(os.environ, {IMPL: name}):
        yield


def cluster(x, S=49, iters=2, temp=100., kernel='compiled'):
    with impl(kernel):
        return torch.ops.mmboat.cluster_order(x, S, iters, temp)


def inputs(B, N, d, dtype, seed):
    """Random tokens, and tokens with exact ties: adjacent twins, a few
    tokens repeated at random places, a constant token, power-of-two
    multiples of a few tokens.

    Not zero tokens: their ratios tie too (1 exactly), but they gather in
    the same groups, and a group whose first or second half holds only
    zero tokens has a centroid of zero: the torch body computes it as
    ``total - first_sum``, two sums in two orders (a reduction and a BLAS
    product), i.e. as rounding noise, which no other implementation
    reproduces; the compiled kernel gets the exact 0.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    few = randn(B, max(1, N // 7), d)
    pick = torch.randint(few.shape[1], (N, ), generator=g)
    powers = 2.**torch.randint(-3, 4, (B, N, 1), generator=g).to(dtype)
    return {
        'random': randn(B, N, d),
        'twins': randn(B, (N + 1) // 2, d).repeat_interleave(2, 1)[:, :N],
        'repeated': few[:, pick],
        'constant': randn(1, 1, d).expand(B, N, d).contiguous(),
        'powers of two': few[:, pick] * powers,
    }


def same_leaf_sets(a, b):
    """How many leaves of two orders hold the same tokens, of how many."""
    same = (a.sort(-1).values == b.sort(-1).values).all(-1)
    return int(same.sum()), same.numel()


# --- the compiled CPU kernel against the torch body ------------------------

# N: no padding (196, 784, 3136 = 49 * 2**L), padding at every level (50,
# 97, 143, 340, 1050), a single leaf (1, 2, 49); small cluster sizes for
# deep trees, and S = 1 (leaves of 0 or 1 token)
SIZES = [(1, 49), (2, 49), (49, 49), (50, 49), (97, 49), (143, 49), (196, 49),
         (340, 49), (784, 49), (1050, 49), (3136, 49), (37, 4), (23, 8),
         (100, 8), (513, 16), (3, 1), (20, 1), (64, 2)]


@needs_compiled
@pytest.mark.parametrize('N,S', SIZES)
def test_float64_orders_are_identical_ties_included(N, S):
    # B = 1 and 3 split each clustering's subtrees over the threads, B = 9
    # gives every thread whole clusterings
    for B, d in ((1, 32), (3, 16), (9, 7)):
        for kind, x in inputs(B, N, d, torch.float64, N * 31 + B).items():
            compiled = cluster(x, S)
            assert torch.equal(compiled, cluster(x, S, kernel='eager')), \
                (kind, B, d)
    # other iterations and temperatures
    x = inputs(2, N, 8, torch.float64, N)['twins']
    for iters, temp in ((0, 100.), (1, 10.), (3, 1000.)):
        assert torch.equal(
            cluster(x, S, iters, temp), cluster(x, S, iters, temp, 'eager'))


@needs_compiled
@pytest.mark.parametrize('d', [1, 7, 8, 16, 32, 64, 65])
def test_every_feature_width(d):
    # 32 and 64 features have kernels of their own
    for dtype in (torch.float64, torch.float32):
        x = inputs(2, 340, d, dtype, d)['random']
        assert torch.equal(cluster(x), cluster(x, kernel='eager')), dtype


@needs_compiled
def test_float64_orders_are_identical_at_detection_sizes():
    # the stage grids of an 800 x 1344 input past the first: 10 and 8 levels
    for N in (16800, 4200):
        x = inputs(2, N, 32, torch.float64, N)
        for kind in ('random', 'twins'):
            assert torch.equal(
                cluster(x[kind]), cluster(x[kind], kernel='eager')), kind


@needs_compiled
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_nan_and_inf_tokens_sort_like_the_torch_body(dtype):
    # NaN / inf features make NaN ratios (sorted last, or as the largest
    # finite value with padding) and ties
    for N in (196, 143):
        x = inputs(2, N, 8, dtype, N)['random']
        x[0, 5] = float('nan')
        x[1, 7] = float('inf')
        assert torch.equal(cluster(x), cluster(x, kernel='eager'))


@needs_compiled
def test_float32_leaf_sets_equal_on_99_percent_of_leaves():
    # Tokens without exact ties. Among exact ties the float32 order of the
    # torch body depends on the machine: on an AVX-512 CPU its sums give
    # equal tokens ratios an ulp apart by position (constant tokens at
    # N = 64, S = 2: 0 of 96 leaves as the kernel's, which keeps equal
    # tokens in order); ties are checked in float64 above.
    same = total = 0
    g = torch.Generator().manual_seed(0)
    for N, S in SIZES:
        for x in (inputs(3, N, 32, torch.float32, N)['random'],
                  torch.rand(3, N, 32, generator=g) - 0.3):
            n, t = same_leaf_sets(cluster(x, S), cluster(x, S, kernel='eager'))
            same, total = same + n, total + t
    assert same >= 0.99 * total, f'{same} of {total} leaf sets equal'


@needs_compiled
@pytest.mark.parametrize('hw', [(7, 7), (10, 13), (14, 14), (28, 28)])
def test_fsla_outputs_match_the_torch_body(hw):
    torch.manual_seed(hw[0])
    fsla = FeatureSpaceLocalAttention(64, 2).eval()
    x = torch.randn(3, hw[0] * hw[1], 64)
    with torch.no_grad():
        with impl('compiled'):
            compiled = fsla(x, hw)
        with impl('eager'):
            eager = fsla(x, hw)
        torch.testing.assert_close(compiled, eager)
        fsla.double()
        with impl('compiled'):
            compiled = fsla(x.double(), hw)
        with impl('eager'):
            eager = fsla(x.double(), hw)
        assert torch.equal(compiled, eager)


@needs_compiled
@pytest.mark.parametrize('name',
                         ['fsla_module_swin.pth', 'fsla_module_cswin.pth'])
def test_orders_of_the_published_fixtures_are_identical(name):
    # the queries that FSLA clusters in the float64 parity tests
    # (tests/models/layers/test_feature_space_attention.py)
    m, ref = published_fsla_module(name)
    with torch.no_grad():
        qkv = m.project_qkv(ref['input'])
        with impl('compiled'):
            compiled = m.cluster_order(qkv)
        with impl('eager'):
            eager = m.cluster_order(qkv)
    assert torch.equal(compiled, eager)


@needs_compiled
def test_threads_and_layouts_do_not_change_the_order():
    x = torch.randn(13, 3, 784, dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        for B in (1, 3, 9):
            xb = x[:B].transpose(1, 2)  # (B, 784, 3), not contiguous
            orders = []
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                orders.append(cluster(xb, 8))
            assert all(torch.equal(o, orders[0]) for o in orders)
            assert torch.equal(orders[0], cluster(xb, 8, kernel='eager'))
    finally:
        torch.set_num_threads(threads)


@needs_compiled
def test_kept_workspaces_give_the_orders_of_the_torch_body():
    """The kernel keeps its buffers from call to call (per thread, and a
    pool for the clusterings that threads share): sizes that grow and
    shrink, and calls from two Python threads at once (the kernel releases
    the GIL), each give the torch body's order."""
    g = torch.Generator().manual_seed(0)
    xs = [
        torch.randn(B, N, 16, generator=g, dtype=torch.float64)
        for B, N in [(1, 3136), (3, 143), (2, 4200), (5, 784), (1, 50)]
    ]
    expected = [cluster(x, 8, kernel='eager') for x in xs]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the shared top levels (few rows)
        for _ in range(2):
            assert all(
                torch.equal(cluster(x, 8), e) for x, e in zip(xs, expected))
        with impl('compiled'), ThreadPoolExecutor(2) as pool:
            for _ in range(3):
                got = pool.map(
                    lambda x: torch.ops.mmboat.cluster_order(x, 8, 2, 100.),
                    xs)
                assert all(torch.equal(o, e) for o, e in zip(got, expected))
    finally:
        torch.set_num_threads(threads)


@needs_compiled
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_runs_in_float32(dtype):
    x = torch.randn(2, 340, 16).to(dtype)
    assert torch.equal(cluster(x), cluster(x.float()))


@needs_compiled
def test_the_op_compiles_with_the_compiled_kernel():
    x = torch.randn(2, 143, 8)

    def fn(x):
        return torch.ops.mmboat.cluster_order(x * 2, 49, 2, 100.)

    compiled = torch.compile(fn, fullgraph=True, backend='eager')
    with impl('compiled'):
        assert torch.equal(compiled(x), fn(x))


# --- which kernel runs ----------------------------------------------------


def test_the_setup_built_the_compiled_kernel():
    """The README's setup (tools/setup_env.sh) builds mmboat._ext; without
    it the tests above that need it skip, so this one fails."""
    kernel, error = OP._compiled_kernel()
    assert kernel is not None, (
        f'the compiled clustering op (mmboat._ext) does not load ({error}): '
        f'build it with {OP.BUILD_COMMAND}')


@pytest.fixture
def not_built(monkeypatch):
    """As if mmboat._ext were not built (the import fails)."""

    def missing():
        raise ImportError("No module named 'mmboat._ext' (simulated)")

    monkeypatch.setattr(OP, '_load_compiled', missing)
    monkeypatch.setattr(OP, '_compiled', None)
    monkeypatch.setattr(OP, '_warned', False)
    monkeypatch.delenv(IMPL, raising=False)


def test_without_the_extension_the_torch_body_runs_after_one_warning(
        not_built):
    x = torch.randn(2, 143, 8)
    with pytest.warns(UserWarning) as record:
        orders = [torch.ops.mmboat.cluster_order(x, 49, 2, 100.)] * 3
        FeatureSpaceLocalAttention(32, 2)(torch.randn(1, 49, 32), (7, 7))
    messages = [str(w.message) for w in record if 'mmboat._ext' in str(w)]
    assert len(messages) == 1, messages
    assert OP.BUILD_COMMAND in messages[0] and 'simulated' in messages[0]
    expected = OP._cluster(x, 49, 2, 100.)
    assert all(torch.equal(o, expected) for o in orders)
    assert OP.cluster_order_impl() == 'eager'
    assert _ENV_INFO['mmboat cluster_order']().startswith(
        'eager: the compiled CPU kernel is not built')
    # asking for it is an error that says how to build it
    with impl('compiled'), pytest.raises(RuntimeError, match='setup_env'):
        torch.ops.mmboat.cluster_order(x, 49, 2, 100.)


def test_the_environment_variable_picks_the_kernel(monkeypatch, recwarn):
    calls = []

    def kernel(*args):
        calls.append(args[1:])
        return OP._cluster(args[0], 49, *args[2:])

    monkeypatch.setattr(OP, '_compiled', (kernel, None))
    x = torch.randn(2, 143, 8)
    with impl('eager'):
        assert OP.cluster_order_impl() == 'eager'
        torch.ops.mmboat.cluster_order(x, 49, 2, 100.)
    assert calls == []
    for name in ('', 'compiled', ' Compiled '):
        with impl(name):
            assert OP.cluster_order_impl() == 'compiled'
            torch.ops.mmboat.cluster_order(x, 49, 2, 100.)
    # the number of levels, iterations and temperature
    assert calls == [(2, 2, 100.)] * 3
    with impl('fast'), pytest.raises(ValueError, match='compiled'):
        torch.ops.mmboat.cluster_order(x, 49, 2, 100.)
    assert not [w for w in recwarn if 'mmboat._ext' in str(w.message)]


def test_collect_env_says_which_kernel_runs():
    from mmboat.utils import collect_env
    env = collect_env()
    assert env['mmboat'].startswith(importlib.metadata.version('mmboat'))
    line = env['mmboat cluster_order']
    if COMPILED_BUILT:
        assert line == 'compiled CPU kernel (mmboat._ext)'
    else:
        assert OP.BUILD_COMMAND in line
    with impl('eager'):
        assert _ENV_INFO['mmboat cluster_order']() == \
            f'eager ({IMPL}=eager)'


# --- the torch body against a frozen plain implementation -----------------
# The clustering as it was before the speed work (a sort at every level,
# features reordered with index_select), with the ratio's two products in
# one (T, d) x (d, 2) product as the op computes them (every token the same
# way, so equal tokens get equal ratios). The torch body must give exactly
# the same ``order`` (integers, no tolerance) in float64 and float32. Ties
# in the split ratio are broken by the current position in the group
# (stable sort), NaN ratios sort last.


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
    cos = torch.matmul(q, torch.cat([c1, c2], 2).transpose(-1, -2))
    cos = cos.mul_(inv_norm.transpose(-1, -2)).add_(1)
    ratio = cos[..., 0].div(cos[..., 1]).view(B, G, T)
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
    # the layout (data-independent, tests/ops/test_cluster_layout.py)
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
def test_torch_body_is_bit_identical_to_the_reference(N, S, d, dtype):
    torch.manual_seed(N * 7 + d)
    twins = torch.randn(2, (N + 1) // 2, d, dtype=dtype)  # exact ties
    for x in (torch.randn(5, N, d,
                          dtype=dtype), torch.rand(2, N, d, dtype=dtype) - 0.3,
              twins.repeat_interleave(2, 1)[:, :N]):
        expected = _ref_cluster(x, S)
        with impl('eager'):
            order, _ = balanced_hierarchical_clustering(x, S, overlap=20)
        assert torch.equal(order, expected)
        if COMPILED_BUILT and dtype == torch.float64:
            assert torch.equal(cluster(x, S), expected)


def test_equal_tokens_get_equal_ratios_wherever_they_sit():
    # the ratio's products (one (T, d) x (d, 2) product): every row the
    # same, at every group size (BLAS computes the last T % 4 columns of
    # c @ q^T another way, which broke ties between equal tokens)
    for dtype in (torch.float32, torch.float64):
        for T in list(range(1, 70)) + [98, 196, 3136]:
            q = torch.randn(8, dtype=dtype).expand(2, 3, T, 8).contiguous()
            c = torch.randn(2, 3, 2, 8, dtype=dtype)
            cos = torch.matmul(q, c.transpose(-1, -2))
            assert (cos == cos[:, :, :1]).all(), (dtype, T)


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
        assert torch.equal(OP._group_argsort(ratio), expected)
        # the export path's key (a stable float sort): the same order
        assert torch.equal(OP._group_argsort(ratio, packed=False), expected)


# --- the custom op and its export decomposition ---------------------------


@pytest.mark.parametrize('kernel', ['compiled', 'eager'])
@pytest.mark.parametrize('N', [1, 30, 49, 98, 143, 196, 340])
def test_cluster_order_custom_op_fake_shape_matches_real(N, kernel):
    # torch.library's own checks: schema, fake (shape-only) implementation
    # against the real one, dispatch under autograd
    x = torch.randn(2, N, 8, requires_grad=True)
    with impl(kernel):
        torch.library.opcheck(torch.ops.mmboat.cluster_order.default,
                              (x, 49, 2, 100.))
        with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
            fake = torch.ops.mmboat.cluster_order(
                mode.from_tensor(x), 49, 2, 100.)
        real = torch.ops.mmboat.cluster_order(x, 49, 2, 100.)
    assert fake.shape == real.shape and fake.dtype == real.dtype
    assert not real.requires_grad


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('N,S,d', [(3136, 49, 32), (143, 49, 16),
                                   (340, 49, 32), (1050, 49, 64), (30, 49, 8),
                                   (1, 49, 8), (37, 4, 8), (23, 8, 7)])
def test_export_decomposition_gives_the_op_order(N, S, d, dtype):
    # one implementation, two sort keys: the torch body's order, ties
    # included (and the compiled kernel's, in float64)
    torch.manual_seed(N + d)
    twins = torch.randn(2, (N + 1) // 2, d, dtype=dtype)
    for x in (torch.randn(3, N, d,
                          dtype=dtype), twins.repeat_interleave(2, 1)[:, :N]):
        for iters, temp in ((2, 100.), (1, 10.)):
            decomposed = cluster_order_decomposition(x, S, iters, temp)
            assert torch.equal(decomposed, cluster(x, S, iters, temp, 'eager'))
            if COMPILED_BUILT and dtype == torch.float64:
                assert torch.equal(decomposed, cluster(x, S, iters, temp))


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
        expected = cluster(x, S, kernel='eager')
        assert torch.equal(module(x), expected)
        with impl('eager'):
            assert torch.equal(
                balanced_hierarchical_clustering(x, S)[0], expected)
