import pytest
import torch
import torch.nn.functional as F

from mmboat.models.layers import (FeatureSpaceLocalAttention,
                                  feature_space_attention, num_cluster_levels)
from mmboat.ops import cluster_gather, slot_maps
from tests.helpers import doc_block, published_fsla_module, rel_err


def build(embed_dims=32, num_heads=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    m = FeatureSpaceLocalAttention(embed_dims, num_heads, **kwargs)
    # LePE conv starts at PyTorch's default init; make every part matter
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return m.double().eval()


def reference_fsla(m, x, hw):
    """Slow, loop-based FSLA over groups of unequal size (no padding)."""
    B, N, C = x.shape
    h, d, S, o = m.num_heads, m.head_dims, m.cluster_size, m.overlap
    qkv = m.qkv(x).view(B, N, 3, h, d)
    q, k, v = qkv.unbind(2)
    out = torch.zeros(B, N, h, d, dtype=x.dtype)
    L = num_cluster_levels(N, S)
    for b in range(B):
        for hd in range(h):
            feats = q[b, :, hd]
            groups = [list(range(N))]
            for _ in range(L):
                children = []
                for g in groups:
                    n1 = (len(g) + 1) // 2
                    X = feats[g]
                    Xn = F.normalize(X, dim=-1)
                    c = F.normalize(
                        torch.stack([X[:n1].mean(0), X[n1:].mean(0)]), dim=-1)
                    for _ in range(m.num_iters):
                        a = torch.softmax(m.temperature * Xn @ c.T, dim=-1)
                        c = F.normalize(a.T @ X, dim=-1)
                    cos = Xn @ c.T
                    r = (cos[:, 0] + 1) / (cos[:, 1] + 1)
                    srt = [g[i] for i in r.argsort().tolist()]
                    children += [srt[:n1], srt[n1:]]
                groups = children
            for j, g in enumerate(groups):
                keys = list(g)
                if L > 0:
                    sib = groups[j ^ 1]
                    start = max(0, len(sib) - o)
                    keys += sib[:o] if j % 2 == 0 else sib[start:]
                scores = q[b, g, hd] @ k[b, keys, hd].T * m.scale
                att = torch.softmax(scores, -1)
                out[b, g, hd] = att @ v[b, keys, hd]
    out = out.reshape(B, N, C)
    H, W = hw
    lepe = m.get_v(v.reshape(B, N, C).transpose(1, 2).reshape(B, C, H, W))
    return m.proj(out + lepe.flatten(2).transpose(1, 2))


@pytest.mark.parametrize('name',
                         ['fsla_module_swin.pth', 'fsla_module_cswin.pth'])
def test_parity_with_published_module(name):
    m, ref = published_fsla_module(name)
    arch = ref['arch']
    with torch.no_grad():
        out = m(ref['input'], arch['hw'])
    assert rel_err(out, ref['output']) <= 1e-6


@pytest.mark.parametrize(
    'hw,cluster_size,overlap',
    [
        ((14, 14), 49, 20),  # N = 49 * 4: exactly the published layout
        ((7, 9), 49, 20),  # one cluster larger than S
        ((10, 10), 49, 20),  # 2 leaves of 50
        ((13, 11), 49, 20),  # 4 leaves, 1 padding slot
        ((20, 17), 49, 20),  # 8 leaves, 4 padding slots
        ((1, 1), 49, 20),
        ((2, 3), 49, 20),
        ((5, 7), 4, 3),  # 8 leaves of 4-5, deep tree
        ((3, 11), 8, 7),  # overlap larger than some siblings
    ])
def test_matches_loop_reference_without_padding(hw, cluster_size, overlap):
    m = build(cluster_size=cluster_size, overlap=overlap)
    torch.manual_seed(1)
    x = torch.randn(2, hw[0] * hw[1], 32, dtype=torch.float64)
    with torch.no_grad():
        out = m(x, hw)
        ref = reference_fsla(m, x, hw)
    assert rel_err(out, ref) < 1e-12


def test_batch_independence():
    m = build(32, 4)
    torch.manual_seed(2)
    x = torch.randn(3, 13 * 11, 32, dtype=torch.float64)
    with torch.no_grad():
        out = m(x, (13, 11))
        for i in range(3):
            torch.testing.assert_close(
                out[i:i + 1], m(x[i:i + 1], (13, 11)), rtol=1e-12, atol=1e-12)


def test_single_cluster_is_global_attention_plus_lepe():
    m = build(32, 2)
    torch.manual_seed(3)
    x = torch.randn(2, 42, 32, dtype=torch.float64)
    with torch.no_grad():
        out = m(x, (6, 7))
        q, k, v = m.qkv(x).view(2, 42, 3, 2, 16).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) * 16**-0.5, -1) @ v
        att = att.transpose(1, 2).reshape(2, 42, 32)
        v_img = v.transpose(1, 2).reshape(2, 42, 32).transpose(1, 2)
        lepe = m.get_v(v_img.reshape(2, 32, 6, 7))
        ref = m.proj(att + lepe.flatten(2).transpose(1, 2))
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('hw', [(4, 5), (3, 7)])  # without / with padding
def test_gradients_reach_all_parameters_and_gradcheck(hw):
    m = build(4, 2, cluster_size=4, overlap=2)
    torch.manual_seed(4)
    x = torch.randn(
        2, hw[0] * hw[1], 4, dtype=torch.float64, requires_grad=True)
    params = dict(m.named_parameters())

    def f(x, *values):
        return torch.func.functional_call(m, dict(zip(params, values)),
                                          (x, hw))

    assert torch.autograd.gradcheck(
        f, (x, *params.values()), eps=1e-6, atol=1e-5)
    m.zero_grad()
    m(x, hw).square().sum().backward()
    for name in ('qkv.weight', 'qkv.bias', 'proj.weight', 'get_v.weight',
                 'get_v.bias'):
        assert params[name].grad is not None and params[name].grad.abs().sum(
        ) > 0, name


def test_repeated_runs_are_identical():
    m = build(32, 2).float()
    x = torch.randn(2, 20 * 17, 32)
    with torch.no_grad():
        assert torch.equal(m(x, (20, 17)), m(x, (20, 17)))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_has_no_nan(dtype):
    # Half precision changes near-ties of the clustering sorts, so outputs
    # are compared for finiteness, not against float32.
    m = build(32, 2).float()
    x = torch.randn(2, 20 * 17, 32, requires_grad=True)
    with torch.autocast('cpu', dtype=dtype):
        out = m(x * 10, (20, 17))
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs,name', [
    (dict(cluster_size=1), 'cluster_size'),
    (dict(overlap=49), 'overlap'),
    (dict(overlap=-1), 'overlap'),
    (dict(embed_dims=30, num_heads=4), 'num_heads'),
])
def test_bad_arguments_raise(kwargs, name):
    args = dict(embed_dims=32, num_heads=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        FeatureSpaceLocalAttention(**args)


@pytest.mark.parametrize('hw', [(14, 14), (13, 11), (5, 6), (1, 1)])
def test_empty_batch(hw):
    """(0, N, C) gives (0, N, C), as torch layers do, with a backward."""
    m = build(32, 2).train()
    x = torch.randn(
        0, hw[0] * hw[1], 32, dtype=torch.float64, requires_grad=True)
    out = m(x, hw)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_wrong_grid_raises():
    m = build(32, 2)
    with pytest.raises(ValueError, match='hw_shape'):
        m(torch.randn(1, 50, 32, dtype=torch.float64), (7, 7))


@pytest.mark.parametrize('hw, kwargs', [((14, 14), {}), ((13, 11), {}),
                                        ((6, 7), {}),
                                        ((3, 11), {
                                            'cluster_size': 8,
                                            'overlap': 7
                                        })])
def test_public_steps_are_those_of_the_forward_pass(hw, kwargs):
    """project_qkv, cluster_order, key_overlap and key_windows: the
    projections, leaves and key windows the forward pass attends over
    (a forward recomputed from them matches it)."""
    m = build(32, 4, **kwargs)
    torch.manual_seed(7)
    B, N, h, d = 2, hw[0] * hw[1], 4, 8
    x = torch.randn(B, N, 32, dtype=torch.float64)
    with torch.no_grad():
        qkv = m.project_qkv(x)
        assert qkv.shape == (B, N, h, 3, d)
        q, k, v = m.qkv(x).view(B, N, 3, h, d).unbind(2)
        assert torch.equal(qkv[..., 0, :], q)
        order = m.cluster_order(qkv)
        G = 2**num_cluster_levels(N, m.cluster_size)
        assert order.shape == (B * h, G, -(-N // G))
        o = m.key_overlap(N)
        assert o == (min(m.overlap, N // G) if G > 1 else 0)
        windows = m.key_windows(order, N)
        assert windows.shape == (B * h, G, order.shape[2] + o)
        # attention of every leaf over its key window (padding masked)
        out = torch.zeros(B * h, N, d, dtype=x.dtype)
        q, k, v = (t.transpose(1, 2).reshape(B * h, N, d) for t in (q, k, v))
        for row in range(B * h):
            for leaf in range(G):
                queries = order[row, leaf][order[row, leaf] >= 0]
                keys = windows[row, leaf][windows[row, leaf] >= 0]
                att = torch.softmax(q[row, queries] @ k[row, keys].T * m.scale,
                                    -1)
                out[row, queries] = att @ v[row, keys]
        out = out.view(B, h, N, d).transpose(1, 2).reshape(B, N, 32)
        ref = m.proj(out + m._lepe(qkv, hw))
        assert rel_err(m(x, hw), ref) < 1e-12


@pytest.mark.parametrize('hw', [(14, 14), (13, 11), (6, 7)])
def test_slot_maps_are_inverse_row_maps(hw):
    m = build(32, 4)
    torch.manual_seed(5)
    N = hw[0] * hw[1]
    x = torch.randn(2, N, 32, dtype=torch.float64)
    with torch.no_grad():
        order = m.cluster_order(m.project_qkv(x))
    real = (order >= 0).view(-1)
    maps = slot_maps(order, N, 4, padded=not real.all())
    rows = torch.arange(2 * N * 4)
    assert torch.equal(maps.token_of_slot[maps.slot_of_token], rows)
    assert (maps.real_slots is None) == bool(real.all())
    if maps.real_slots is not None:
        assert torch.equal(maps.real_slots.view(-1), real)
    slots = torch.arange(real.numel())[real]
    assert torch.equal(maps.slot_of_token[maps.token_of_slot[slots]], slots)


def test_lepe_is_get_v_on_the_values_in_image_order():
    m = build(32, 2)
    torch.manual_seed(6)
    x = torch.randn(2, 6 * 7, 32, dtype=torch.float64)
    with torch.no_grad():
        out = m._lepe(m.project_qkv(x), (6, 7))
        v = m.qkv(x).view(2, 42, 3, 32)[:, :, 2]
        ref = m.get_v(v.transpose(1, 2).reshape(2, 32, 6, 7))
    torch.testing.assert_close(
        out, ref.flatten(2).transpose(1, 2), rtol=1e-12, atol=1e-12)


class _FrozenClusterQKV(torch.autograd.Function):
    """The q/k/v gather before key windows were gathered directly (frozen:
    the current one must match it bit for bit; only its arguments follow
    the current signature)."""

    @staticmethod
    def forward(ctx, rows, token_of_slot, slot_of_token, overlap):
        BH, G, m = token_of_slot.shape
        shape = BH, G, m, o = BH, G, m, overlap
        token_of_slot = token_of_slot.reshape(-1)
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


def _outputs_and_grads(m, x, hw):
    x = x.clone().requires_grad_()
    m.zero_grad(set_to_none=True)
    out = m(x, hw)
    torch.manual_seed(11)
    out.backward(torch.randn_like(out))
    return [out, x.grad] + [p.grad for p in m.parameters()]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('hw, batch, heads, kwargs', [((14, 14), 3, 1, {}),
                                                      ((14, 14), 1, 3, {}),
                                                      ((28, 14), 3, 3, {}),
                                                      ((13, 11), 3, 3, {}),
                                                      ((13, 11), 1, 1, {
                                                          'overlap': 0
                                                      }),
                                                      ((14, 14), 3, 3, {
                                                          'overlap': 0
                                                      }), ((7, 7), 3, 3, {}),
                                                      ((5, 6), 1, 1, {}),
                                                      ((1, 1), 3, 3, {}),
                                                      ((6, 7), 3, 3, {
                                                          'cluster_size': 8,
                                                          'overlap': 3
                                                      }),
                                                      ((2, 23), 3, 1, {
                                                          'cluster_size': 8,
                                                          'overlap': 7
                                                      }),
                                                      ((1, 23), 1, 3, {
                                                          'cluster_size': 8,
                                                          'overlap': 7
                                                      }),
                                                      ((3, 3), 1, 3, {
                                                          'cluster_size': 4,
                                                          'overlap': 3
                                                      }), ((14, 14), 0, 3, {}),
                                                      ((13, 11), 0, 1, {})])
def test_cluster_qkv_matches_frozen_gather_bit_for_bit(monkeypatch, dtype, hw,
                                                       batch, heads, kwargs):
    """Outputs and every gradient equal (torch.equal) those of the frozen
    gather, for 49 * 2**L tokens and not, padding, N <= S, no overlap and
    a capped overlap."""
    m = build(24, heads, **kwargs).to(dtype)
    torch.manual_seed(3)
    x = torch.randn(batch, hw[0] * hw[1], 24, dtype=dtype)
    new = _outputs_and_grads(m, x, hw)
    monkeypatch.setattr(cluster_gather, '_ClusterQKV', _FrozenClusterQKV)
    old = _outputs_and_grads(m, x, hw)
    assert len(new) == len(old)
    for a, b in zip(new, old):
        assert a.dtype == dtype and torch.equal(a, b)


def _kept_for_backward(m, x, hw):
    """Bytes of the distinct float storages and the shapes of every tensor
    that autograd keeps for the backward of ``m(x, hw)``; runs the
    backward."""
    storages, shapes = {}, []

    def pack(t):
        shapes.append(tuple(t.shape))
        if t.is_floating_point():
            storages[t.untyped_storage().data_ptr()] = \
                t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = m(x, hw)
    out.sum().backward()
    return sum(storages.values()), shapes


@pytest.mark.parametrize('hw', [(14, 14), (13, 11), (7, 7)])
def test_attention_and_lepe_are_recomputed_for_the_backward(monkeypatch, hw):
    """Autograd keeps no tensor of the key windows' shape (m + o slots, the
    overlap repeated), nor attention's output or LePE's input: about 3x
    the input's bytes less than without the recomputation (8x the input per
    layer), with the same gradients
    (test_cluster_qkv_matches_frozen_gather_bit_for_bit)."""
    m = build(48, 3).train()
    N = hw[0] * hw[1]
    x = torch.randn(4, N, 48, dtype=torch.float64, requires_grad=True)
    L = num_cluster_levels(N, m.cluster_size)
    window = -(-N // 2**L) + m.key_overlap(N)
    kept, shapes = _kept_for_backward(m, x, hw)
    monkeypatch.setattr(feature_space_attention, 'checkpoint',
                        lambda function, *args, **kwargs: function(*args))
    kept_before, shapes_before = _kept_for_backward(m, x, hw)
    input_bytes = x.numel() * x.element_size()
    if L > 0:  # windows of own + overlap slots
        assert [s for s in shapes_before if s[2:3] == (window, )]
        assert not [s for s in shapes if s[2:3] == (window, )], shapes
    # one leaf (L = 0): no overlap, the q/k/v copies hold what qkv holds
    saved = 2.5 if L > 0 else 1.5
    assert kept <= kept_before - saved * input_bytes, (kept, kept_before)


@pytest.mark.slow
def test_compiled_fsla_matches_eager_at_any_size_with_bounded_recompiles():
    # fullgraph=True: the clustering is one opaque custom op and nothing in
    # the forward pass reads a tensor's value on the host. A new size only
    # recompiles when it changes the number of cluster levels L, not for
    # every new size, nor when N % 2**L changes (padded or not). dynamo's
    # guards decide the recompilations, whatever the backend: aot_eager
    # (fake tensors through the op's fake implementation, the autograd
    # graph) here, Inductor's code in the next test. On-disk caches are
    # off: a cached graph brings back the guards of the size it was first
    # compiled for, so the count would depend on what ran before.
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    m = build(32, 2).float().eval()
    counter = CompileCounterWithBackend('aot_eager')
    compiled = torch.compile(m, backend=counter, fullgraph=True)
    sizes = [(14, 14), (13, 11), (12, 16), (11, 13), (10, 15), (9, 17), (6, 5)]
    # graphs: 14x14 (static), then L = 2 (143, 192, 150, 153 tokens share
    # it, padded or not), then L = 0 (30 tokens)
    with torch._inductor.config.patch(force_disable_caches=True):
        for hw in sizes:
            torch.manual_seed(hw[0] * hw[1])
            x = torch.randn(2, hw[0] * hw[1], 32)
            with torch.no_grad():
                torch.testing.assert_close(
                    compiled(x, hw), m(x, hw), rtol=1e-5, atol=1e-6)
    assert counter.frame_count == 3
    torch._dynamo.reset()


@pytest.mark.slow
def test_compile_example_of_the_docs_matches_eager():
    # the example of docs/fsla.md, run here (not by test_docs.py): FSLA
    # compiled by Inductor (its code generated for the CPU) gives eager's
    # output; the nano BOAT-Swin is captured whole at two sizes
    torch._dynamo.reset()
    block = doc_block('docs/fsla.md',
                      'torch.compile(FeatureSpaceLocalAttention')
    torch.manual_seed(0)
    scope = {}
    with torch._inductor.config.patch(force_disable_caches=True):
        exec(block, scope)
    # the same draws again: the module's weights, then its input
    torch.manual_seed(0)
    eager = FeatureSpaceLocalAttention(96, 3)
    x = torch.randn(2, 14 * 14, 96)
    assert torch.equal(eager.qkv.weight, scope['fsla']._orig_mod.qkv.weight)
    with torch.no_grad():
        torch.testing.assert_close(
            scope['out'], eager(x, hw_shape=(14, 14)), rtol=1e-5, atol=1e-5)
    assert [f.shape[-2:] for f in scope['feats']] == [(25, 18), (13, 9),
                                                      (7, 5), (4, 3)]
    torch._dynamo.reset()


@pytest.mark.slow
def test_compiled_fsla_trains_with_eager_gradients():
    # the autograd Functions (gathers whose backward is a gather) are
    # captured too: same outputs and gradients, padded or not
    torch._dynamo.reset()
    m = build(32, 2).float().train()
    compiled = torch.compile(m, backend='aot_eager', fullgraph=True)
    for hw in [(14, 14), (13, 11)]:
        torch.manual_seed(hw[0])
        x = torch.randn(2, hw[0] * hw[1], 32)
        results = []
        for model in (compiled, m):
            m.zero_grad(set_to_none=True)
            xg = x.clone().requires_grad_()
            out = model(xg, hw)
            out.square().sum().backward()
            results.append([out, xg.grad] + [p.grad for p in m.parameters()])
        for got, expected in zip(*results):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
