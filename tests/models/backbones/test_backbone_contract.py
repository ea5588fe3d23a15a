"""What every BOAT backbone promises, tested on both families (one per
parameter): any input size and batch, out_indices and their norms,
frozen_stages, with_cp, batch independence, autocast, arch parsing and
argument errors, FSLA placement and options, the init_cfg policy, and
registration for the downstream codebases. What only one family has
(presets, parameter counts, published FSLA placement, parity) is in
test_boat_swin.py / test_boat_cswin.py."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from mmboat.models.backbones import BOATCSWinTransformer, BOATSwinTransformer
from mmboat.models.layers import num_cluster_levels
from mmboat.utils import CheckpointError
from tests.helpers import fsla_map


def swin_hw(h, w):
    """Patches of 4 (padded), then halved (rounding up) by every merge."""
    return [(math.ceil(h / 4 / 2**i), math.ceil(w / 4 / 2**i))
            for i in range(4)]


def cswin_hw(h, w):
    """Stem: (H - 3) // 4 + 1 (a side below 3 is zero-padded to 3), then
    halved (rounding up) by every merge."""
    h, w = (max(h, 3) - 3) // 4 + 1, (max(w, 3) - 3) // 4 + 1
    return [(math.ceil(h / 2**i), math.ceil(w / 2**i)) for i in range(4)]


SWIN = SimpleNamespace(
    name='BOAT-Swin',
    backbone=BOATSwinTransformer,
    # the architecture of the reference fixtures: small and fast
    arch=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
    expected_hw=swin_hw,
    unknown_preset='huge',
    foreign_key='window',  # an arch key of no family
    custom_fsla=((0, 1), (), (1, ), (0, )),
    official_key='layers.0.blocks.0.norm1.weight',
    converter='boat_swin_to_mmboat')

CSWIN = SimpleNamespace(
    name='BOAT-CSWin',
    backbone=BOATCSWinTransformer,
    # small enough for a 2-core CPU; FSLA in the even blocks, full last
    # stage
    arch=dict(
        embed_dims=16,
        depths=(1, 2, 2, 1),
        num_heads=(2, 2, 4, 8),
        split_sizes=(1, 2, 7, 7)),
    expected_hw=cswin_hw,
    unknown_preset='large',
    foreign_key='window_size',
    custom_fsla=((), (1, ), (0, 1), ()),
    official_key='stage1_conv_embed.0.weight',
    converter='boat_cswin_to_mmboat')


@pytest.fixture(params=[SWIN, CSWIN], ids=lambda f: f.name)
def family(request):
    return request.param


def build(family, init=True, **kwargs):
    """A small backbone of ``family``, initialised from scratch."""
    kwargs.setdefault('arch', family.arch)
    model = family.backbone(**kwargs)
    if init:
        model.init_weights()
    return model


# --------------------------------------------------------------------------
# forward


@pytest.mark.parametrize('size', [(224, 224), (333, 517), (40, 24)])
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('train', [True, False])
def test_forward_any_size(family, size, batch, train):
    torch.manual_seed(0)
    model = build(family, drop_path_rate=0.2).train(train)
    x = torch.randn(batch, 3, *size)
    with torch.set_grad_enabled(train):
        outs = model(x)
    assert len(outs) == 4
    dims = family.arch['embed_dims']
    for i, (out, hw) in enumerate(zip(outs, family.expected_hw(*size))):
        assert out.shape == (batch, dims * 2**i, *hw)
        # stride 4 * 2**i, up to the rounding of the convolutions
        assert all(abs(n - s / (4 * 2**i)) < 1 for n, s in zip(hw, size))
        assert torch.isfinite(out).all()
    if train:
        sum(o.mean() for o in outs).backward()
        assert all(
            p.grad is not None and torch.isfinite(p.grad).all()
            for p in model.parameters())
        first = fsla_map(model)[0][0]
        assert model.stages[0].blocks[first].fsla.qkv.weight.grad is not None


# thin and tiny images: 1 x 500, 500 x 1, 1 x 1, 2 x 2 (BOAT-CSWin's stem
# zero-pads a side below 3), 3 x 3, smaller than a window or a stripe
@pytest.mark.parametrize('size', [(1, 500), (500, 1), (1, 1), (2, 2), (3, 3),
                                  (2, 9), (7, 5)])
def test_forward_thin_and_tiny_images(family, size):
    torch.manual_seed(0)
    model = build(family).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    dims = family.arch['embed_dims']
    assert [tuple(o.shape) for o in outs
            ] == [(2, dims * 2**i, *hw)
                  for i, hw in enumerate(family.expected_hw(*size))]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('train', [True, False])
def test_empty_batch(family, train):
    """(0, 3, H, W) gives empty outputs of the right shapes, as torch
    layers do, and a backward through them."""
    model = build(family, drop_path_rate=0.2).train(train)
    x = torch.randn(0, 3, 70, 90, requires_grad=train)
    with torch.set_grad_enabled(train):
        outs = model(x)
    dims = family.arch['embed_dims']
    assert [tuple(o.shape) for o in outs
            ] == [(0, dims * 2**i, *hw)
                  for i, hw in enumerate(family.expected_hw(70, 90))]
    if train:
        sum(o.sum() for o in outs).backward()
        assert x.grad.shape == x.shape
        assert all(p.grad is None or not p.grad.any()
                   for p in model.parameters())


def test_input_of_another_dtype_under_autocast(family):
    """Under autocast, inputs of another floating dtype than the weights
    work (only a mismatch that would fail anyway is refused)."""
    model = build(family).eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        for dtype in (torch.float16, torch.bfloat16):
            outs = model(torch.randn(1, 3, 40, 56, dtype=dtype))
            assert all(o.dtype == torch.bfloat16 for o in outs)


def test_forward_reads_no_values(family):
    """The forward pass, its input check included, reads shapes only (no
    sync with the device): it runs on meta tensors, whose values cannot
    be read."""
    with torch.device('meta'):
        model = build(family, init=False).eval()
        x = torch.empty(2, 3, 64, 48)
    dims = family.arch['embed_dims']
    outs = model(x)
    assert [tuple(o.shape) for o in outs
            ] == [(2, dims * 2**i, *hw)
                  for i, hw in enumerate(family.expected_hw(64, 48))]


def test_out_indices(family):
    model = build(family, out_indices=(1, -1)).eval()
    assert model.out_indices == (1, 3)
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3')
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm2')
    outs = model(torch.randn(2, 3, 64, 96))
    hw = family.expected_hw(64, 96)
    dims = family.arch['embed_dims']
    assert [o.shape for o in outs] == [(2, 2 * dims, *hw[1]),
                                       (2, 8 * dims, *hw[3])]
    with pytest.raises(ValueError, match='out_indices'):
        build(family, init=False, out_indices=(4, ))


def test_batch_independence(family, one_thread):
    # float64: in float32 near-ties of the FSLA sorts may flip between
    # differently blocked matmuls, which is not a batch dependence
    torch.manual_seed(0)
    model = build(family).double().eval()
    x = torch.randn(3, 3, 112, 80, dtype=torch.float64)
    with torch.no_grad():
        batched = model(x)
        for b in range(3):
            single = model(x[b:b + 1])
            for o_b, o_s in zip(batched, single):
                torch.testing.assert_close(
                    o_b[b:b + 1], o_s, rtol=1e-10, atol=1e-12)


def test_autocast_and_half_precision(family):
    torch.manual_seed(0)
    model = build(family).eval()
    x = torch.randn(1, 3, 100, 140)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            outs = model(x)
        for o, r in zip(outs, ref):
            assert o.shape == r.shape and torch.isfinite(o.float()).all()
        outs = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert all(o.dtype == torch.bfloat16 for o in outs)


def test_frozen_stages(family):
    model = build(family, frozen_stages=2)
    model.train()
    frozen = [
        model.patch_embed, model.stages[0], model.stages[1], model.norm0,
        model.norm1
    ]
    for m in frozen:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
        assert all(not sub.training for sub in m.modules())
    for m in [model.stages[2], model.stages[3], model.norm2, model.norm3]:
        assert m.training
        assert all(p.requires_grad for p in m.parameters())
    model = build(family, frozen_stages=0).train()
    assert all(not p.requires_grad for p in model.patch_embed.parameters())
    assert all(p.requires_grad for p in model.stages[0].parameters())
    with pytest.raises(ValueError, match='frozen_stages'):
        build(family, init=False, frozen_stages=5)


def test_with_cp(family):
    """Same outputs and gradients with and without checkpointing, with
    stochastic depth on."""
    torch.manual_seed(0)
    ref = build(family, drop_path_rate=0.3)
    cp = build(family, drop_path_rate=0.3, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 96, 112)
    grads = []
    for model in (ref, cp):
        model.train()
        xi = x.clone().requires_grad_()
        torch.manual_seed(1)  # same stochastic depth draws
        outs = model(xi)
        sum((o * o).sum() for o in outs).backward()
        grads.append((outs, xi.grad, {
            n: p.grad
            for n, p in model.named_parameters()
        }))
    (o_ref, gx_ref, gp_ref), (o_cp, gx_cp, gp_cp) = grads
    for a, b in zip(o_ref, o_cp):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(gx_ref, gx_cp)
    for n in gp_ref:
        torch.testing.assert_close(gp_ref[n], gp_cp[n], msg=n)


# --------------------------------------------------------------------------
# arch, FSLA placement and options


def test_arch_presets_any_case_and_copied(family):
    cls = family.backbone
    for name, preset in cls.arch_zoo.items():
        parsed = cls.parse_arch(name.upper())
        assert parsed == cls.parse_arch(name) == cls.parse_arch(preset)
        assert parsed is not preset
        assert set(parsed) == set(cls.arch_keys)
        assert all(
            type(v) is tuple for k, v in parsed.items() if k != 'embed_dims')
    parsed = cls.parse_arch(dict(family.arch))
    assert parsed == family.arch and type(parsed['embed_dims']) is int
    with torch.device('meta'):
        model = cls(arch='Tiny')
    assert model.arch == cls.parse_arch('tiny')
    assert model.num_features == [
        model.embed_dims * 2**i for i in range(len(model.depths))
    ]


def test_arch_errors(family):
    cls, arch = family.backbone, family.arch
    with pytest.raises(
            ValueError,
            match=rf"unknown {family.name} arch '{family.unknown_preset}'"
            r".*'base', 'small', 'tiny'"):
        cls(arch=family.unknown_preset)
    last = cls.arch_keys[-1]
    with pytest.raises(ValueError, match=rf"missing keys \['{last}'\]"):
        cls(arch={k: v for k, v in arch.items() if k != last})
    with pytest.raises(
            ValueError, match=rf"unknown keys \['{family.foreign_key}'\]"):
        cls(arch=dict(arch, **{family.foreign_key: 7}))
    with pytest.raises(ValueError, match='one entry per stage'):
        cls(arch=dict(arch, depths=arch['depths'][:-1]))
    with pytest.raises(ValueError, match='not divisible'):
        cls(arch=dict(arch, num_heads=(3, ) + arch['num_heads'][1:]))
    with pytest.raises(ValueError, match='arch must be a preset name'):
        cls(arch=3)


def test_custom_fsla_placement_and_cfg(family):
    model = build(
        family,
        fsla_blocks=family.custom_fsla,
        fsla_cfg=dict(qk_scale=None, cluster_size=32))
    assert model.fsla_blocks == family.custom_fsla
    assert fsla_map(model) == family.custom_fsla
    for stage in model.stages:
        for block in stage.blocks:
            fsla = block.fsla
            assert fsla is None or (fsla.cluster_size == 32
                                    and fsla.scale == fsla.head_dims**-0.5)
    model(torch.randn(1, 3, 64, 64))


def test_fsla_argument_errors(family):
    depths = family.arch['depths']
    with pytest.raises(
            ValueError,
            match='fsla_blocks needs one list of block indices per stage'):
        build(family, init=False, fsla_blocks=((0, ), (0, )))
    with pytest.raises(ValueError, match='out of range: has indices outside'):
        build(family, init=False, fsla_blocks=((depths[0], ), (), (), ()))
    with pytest.raises(ValueError, match='unknown fsla_cfg keys'):
        build(family, init=False, fsla_cfg=dict(window=3))


# --------------------------------------------------------------------------
# init_cfg: None -> from scratch; another MMEngine initialiser -> applied
# over it; Pretrained -> an mmboat checkpoint, every weight checked


def test_init_cfg_none_is_from_scratch(family):
    torch.manual_seed(0)
    model = build(family)
    torch.manual_seed(0)
    again = build(family)
    linear = []
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
        elif isinstance(m, nn.Linear):
            assert m.bias is None or not m.bias.any()
            linear.append(m.weight.flatten())
    assert 0.018 < torch.cat(linear).std() < 0.022  # truncated N(0, 0.02)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


@pytest.mark.parametrize('init_cfg', [
    dict(type='Constant', layer='Conv2d', val=0.5, bias=0.25),
    [dict(type='Constant', layer='Conv2d', val=0.5, bias=0.25)],
])
def test_init_cfg_initialiser_after_from_scratch(family, init_cfg):
    torch.manual_seed(0)
    scratch = build(family)
    torch.manual_seed(0)
    model = build(family, init_cfg=init_cfg)
    ref = scratch.state_dict()
    convs = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):  # the initialiser
            convs += 1
            assert (m.weight == 0.5).all() and (m.bias == 0.25).all(), name
        elif isinstance(m, (nn.Linear, nn.LayerNorm)):  # from scratch
            for k, v in m.state_dict().items():
                assert torch.equal(v, ref[f'{name}.{k}']), name
    assert convs > 0


def test_init_cfg_other_initialisers_are_accepted(family):
    torch.manual_seed(0)
    model = build(family, init_cfg=dict(type='Kaiming', layer='Linear'))
    norm = model.stages[0].blocks[0].norm1
    assert torch.equal(norm.weight, torch.ones_like(norm.weight))
    assert model.stages[0].blocks[0].ffn.layers[1].weight.std() > 0.03


def test_init_cfg_pretrained_needs_a_checkpoint(family):
    model = build(family, init=False, init_cfg=dict(type='Pretrained'))
    with pytest.raises(ValueError, match="type='Pretrained'"):
        model.init_weights()


def test_init_cfg_pretrained(family, tmp_path):
    torch.manual_seed(0)
    source = build(family)
    path = tmp_path / 'ckpt.pth'
    sd = {
        f'backbone.{k}': v
        for k, v in source.state_dict().items()
        if not k.startswith(('norm0', 'norm1'))
    }  # like a classifier's
    sd['head.fc.weight'] = torch.zeros(10, 8 * family.arch['embed_dims'])
    torch.save({'meta': {}, 'state_dict': sd}, path)

    model = build(
        family,
        init=False,
        out_indices=(0, 1, 2),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()  # norm3 unused, norm0 / norm1 fresh
    for k, v in model.state_dict().items():
        if not k.startswith(('norm0', 'norm1')):
            assert torch.equal(v, source.state_dict()[k]), k
    dims = family.arch['embed_dims']
    assert torch.equal(model.norm0.weight, torch.ones(dims))
    assert torch.equal(model.norm0.bias, torch.zeros(dims))

    fsla_key = next(
        k for k in sd if k.startswith('backbone.stages.2.')
        and k.endswith('.fsla.proj.weight'))
    del sd[fsla_key]
    sd['backbone.stages.9.blocks.0.norm1.weight'] = torch.ones(1)
    torch.save({'state_dict': sd}, path)
    model = build(
        family,
        init=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointError) as e:
        model.init_weights()
    assert fsla_key[len('backbone.'):] in str(e.value)
    assert 'stages.9.blocks.0.norm1.weight' in str(e.value)


def test_init_cfg_rejects_official_layout(family, tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'state_dict': {family.official_key: torch.zeros(1)}}, path)
    model = build(
        family,
        init=False,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointError, match=f'{family.converter}.py'):
        model.init_weights()


# --------------------------------------------------------------------------


def test_registered_for_downstream_codebases(family):
    mmdet = pytest.importorskip('mmdet.registry')
    import mmboat.models  # noqa: F401
    model = mmdet.MODELS.build(
        dict(
            type=family.backbone.__name__, arch=family.arch,
            out_indices=(3, )))
    assert isinstance(model, family.backbone)


def compile_and_compare(fam, backend, dynamic, sizes):
    """Run every size of ``sizes`` through ``torch.compile(backbone,
    fullgraph=True)``, check its outputs against eager, and yield
    ``(model, size, compilations so far)``; dynamo is reset before and
    after."""
    from torch._dynamo.testing import CompileCounterWithBackend
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = fam.backbone(arch=fam.arch, out_indices=(0, 1, 2, 3)).eval()
    counter = CompileCounterWithBackend(backend)
    compiled = torch.compile(
        model, backend=counter, fullgraph=True, dynamic=dynamic)
    try:
        for hw in sizes:
            x = torch.randn(2, 3, *hw)
            with torch.no_grad():
                for out, ref in zip(compiled(x), model(x)):
                    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
            yield model, hw, counter.frame_count
    finally:
        torch._dynamo.reset()


@pytest.mark.slow
@pytest.mark.parametrize('fam', [SWIN, CSWIN], ids=['swin', 'cswin'])
def test_backbone_compiles_whole_with_fullgraph_at_any_size(fam):
    # fullgraph=True: one graph, no break and no host read in the forward
    # pass. Static shapes, one compilation per size; aot_eager: the capture
    # and the autograd graph (Inductor's code generation for a whole
    # backbone is too slow for the test suite on a CPU). Dynamic shapes:
    # the next test. Sizes: square, non-square, and stage grids whose
    # token counts are not 49 * 2**L, some at most 49.
    sizes = [(64, 64), (72, 100), (36, 52)]
    runs = list(compile_and_compare(fam, 'aot_eager', False, sizes))
    assert runs[-1][2] == len(sizes)


@pytest.mark.slow
@pytest.mark.parametrize('fam', [SWIN, CSWIN], ids=['swin', 'cswin'])
def test_backbone_compiles_once_per_cluster_depth(fam):
    # Dynamic shapes: a new input size reuses the compiled graph unless it
    # changes the number of cluster levels L of a stage with FSLA (the
    # clustering's output is (B * h, 2**L, m)); the padding of patches,
    # windows, stripes and clusters needs no recompilation. Five sizes
    # (non-square both ways, square, token counts not 49 * 2**L, stages
    # of at most 49 tokens) with three distinct L per stage: three graphs.
    # The 'eager' backend: dynamo's capture and guards decide the
    # recompilations, and it is the fastest to run here.
    sizes = [(72, 100), (100, 72), (76, 104), (64, 64), (36, 52)]
    depths = set()
    for model, hw, graphs in compile_and_compare(fam, 'eager', True, sizes):
        grids = zip(fam.expected_hw(*hw), model.fsla_blocks)
        depths.add(
            tuple(
                num_cluster_levels(h * w, 49) for (h, w), blocks in grids
                if blocks))
        assert graphs == len(depths), (hw, depths)
    assert len(depths) == 3
