import math

import pytest
import torch
import torch.nn.functional as F

from mmboat.models.backbones.boat_cswin import (BOATCSWinTransformer,
                                                CrossShapedWindowAttention)
from mmboat.utils import CheckpointError

# small enough for a 2-core CPU; FSLA in the even blocks, full last stage
SMALL_ARCH = dict(
    embed_dims=16, depths=(1, 2, 2, 1), num_heads=(2, 2, 4, 8),
    split_sizes=(1, 2, 7, 7))


def small_model(**kwargs):
    kwargs.setdefault('arch', SMALL_ARCH)
    model = BOATCSWinTransformer(**kwargs)
    model.init_weights()
    return model


def expected_hw(h, w):
    """Stem: (H - 3) // 4 + 1, then halved (rounding up) by every merge."""
    h, w = (h - 3) // 4 + 1, (w - 3) // 4 + 1
    return [(math.ceil(h / 2**i), math.ceil(w / 2**i)) for i in range(4)]


@pytest.mark.parametrize('size', [(224, 224), (333, 517)])
@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('train', [True, False])
def test_forward_shapes(size, batch, train):
    torch.manual_seed(0)
    model = small_model().train(train)
    x = torch.randn(batch, 3, *size)
    with torch.set_grad_enabled(train):
        outs = model(x)
    assert len(outs) == 4
    for i, (out, hw) in enumerate(zip(outs, expected_hw(*size))):
        assert out.shape == (batch, 16 * 2**i, *hw)
        # stride 4 * 2**i, up to the rounding of the convolutions
        assert all(abs(n - s / (4 * 2**i)) < 1 for n, s in zip(hw, size))
        assert torch.isfinite(out).all()
    if train:
        sum(o.mean() for o in outs).backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in model.parameters())


def test_out_indices_and_norms():
    model = small_model(out_indices=(1, 3))
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3')
    assert not hasattr(model, 'norm0') and not hasattr(model, 'norm2')
    outs = model(torch.randn(1, 3, 96, 128))
    assert [o.shape[1] for o in outs] == [32, 128]


def test_batch_independence(one_thread):
    # float64: in float32 near-ties of the FSLA sorts may flip between
    # differently blocked matmuls, which is not a batch dependence
    torch.manual_seed(0)
    model = small_model().double().eval()
    x = torch.randn(2, 3, 160, 192, dtype=torch.float64)
    with torch.no_grad():
        both = model(x)
        alone = model(x[1:])
    for b, a in zip(both, alone):
        torch.testing.assert_close(b[1:], a, rtol=1e-10, atol=1e-12)


def test_bf16_autocast():
    model = small_model().eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(1, 3, 100, 140))
    assert all(torch.isfinite(o.float()).all() for o in outs)


def test_frozen_stages():
    model = small_model(frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, model.stages[0], model.stages[1],
              model.norm0, model.norm1]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    for module in [model.stages[2], model.stages[3], model.norm2]:
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    model = small_model(frozen_stages=0).train()
    assert all(not p.requires_grad for p in model.patch_embed.parameters())
    assert all(p.requires_grad for p in model.stages[0].parameters())


def test_with_cp_same_outputs_and_grads():
    torch.manual_seed(0)
    plain = small_model(drop_path_rate=0.).train()
    ckpt = small_model(drop_path_rate=0., with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 96, 112)
    grads = []
    outs = []
    for model in (plain, ckpt):
        out = model(x)
        sum((o * o).mean() for o in out).backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b)
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], msg=n)


def num_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch, count', [
    ('tiny', 25_878_848),
    ('small', 39_600_384),
    ('base', 88_861_056),
])
def test_preset_parameter_counts(arch, count):
    with torch.device('meta'):
        model = BOATCSWinTransformer(arch=arch)
        plain = BOATCSWinTransformer(arch=arch, fsla_blocks=((), ) * 4)
    assert num_params(model) == count
    # without FSLA and norm0..2, with a 1000-class head: CSWin, whose paper
    # gives 23M / 35M / 78M (rounded up)
    cswin = num_params(plain) - sum(
        model.num_features[i] * 2 for i in range(3)) + (
            model.num_features[-1] * 1001)
    assert math.ceil(cswin / 1e6) == {
        'tiny': 23, 'small': 35, 'base': 78}[arch]


def test_default_fsla_placement():
    with torch.device('meta'):
        model = BOATCSWinTransformer(arch='tiny')
    assert model.fsla_blocks == ((0, ), (0, ), tuple(range(0, 21, 2)), (0, ))
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage.blocks):
            assert (block.fsla is not None) == (j % 2 == 0)
            assert block.fsla is None or block.fsla.scale == 1.0
        # the last stage attends over the whole map with one branch
        assert len(stage.blocks[0].attn.lepe) == (1 if i == 3 else 2)


def test_custom_fsla_placement_and_cfg():
    model = BOATCSWinTransformer(
        arch=SMALL_ARCH,
        fsla_blocks=((), (1, ), (0, 1), ()),
        fsla_cfg=dict(qk_scale=None, cluster_size=32))
    has = [[b.fsla is not None for b in s.blocks] for s in model.stages]
    assert has == [[False], [False, True], [True, True], [False]]
    fsla = model.stages[2].blocks[0].fsla
    assert fsla.cluster_size == 32 and fsla.scale == (64 // 4)**-0.5
    model(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match='out of range'):
        BOATCSWinTransformer(arch=SMALL_ARCH, fsla_blocks=((1, ), (), (), ()))
    with pytest.raises(ValueError, match='one list of block indices'):
        BOATCSWinTransformer(arch=SMALL_ARCH, fsla_blocks=((0, ), ))
    with pytest.raises(ValueError, match='unknown fsla_cfg keys'):
        BOATCSWinTransformer(arch=SMALL_ARCH, fsla_cfg=dict(window=3))


def test_arch_errors():
    with pytest.raises(ValueError, match=r"'large'.*'base', 'small', 'tiny'"):
        BOATCSWinTransformer(arch='large')
    with pytest.raises(ValueError, match=r"missing keys \['split_sizes'\]"):
        BOATCSWinTransformer(
            arch=dict(embed_dims=16, depths=(1, ), num_heads=(2, )))
    with pytest.raises(ValueError, match=r"unknown keys \['window_size'\]"):
        BOATCSWinTransformer(arch=dict(SMALL_ARCH, window_size=7))
    with pytest.raises(ValueError, match='one entry per stage'):
        BOATCSWinTransformer(arch=dict(SMALL_ARCH, depths=(1, 2, 2)))
    with pytest.raises(ValueError, match='num_heads must be even'):
        BOATCSWinTransformer(arch=dict(SMALL_ARCH, num_heads=(1, 2, 4, 8)))
    with pytest.raises(ValueError, match='out_indices'):
        BOATCSWinTransformer(arch=SMALL_ARCH, out_indices=(4, ))
    with pytest.raises(ValueError, match="type='Pretrained'"):
        BOATCSWinTransformer(
            arch=SMALL_ARCH, init_cfg=dict(type='Pretrained')).init_weights()


# --------------------------------------------------------------------------
# stripe attention on maps that need padding vs. a direct computation


def direct_stripe_attention(attn, x, hw_shape, stripes):
    """Attention + LePE computed region by region, without any padding.

    ``stripes``: per branch, the list of (row slice, col slice) regions.
    """
    B, N, C = x.shape
    H, W = hw_shape
    qkv = attn.qkv(x).view(B, H, W, 3, C)
    nb = attn.num_branches
    c, heads = C // nb, attn.num_heads // nb
    out = torch.zeros(B, H, W, C, dtype=x.dtype)
    for b, (regions, lepe) in enumerate(zip(stripes, attn.lepe)):
        for rows, cols in regions:
            q, k, v = qkv[:, rows, cols, :, b * c:(b + 1) * c].unbind(3)
            h, w = q.shape[1:3]

            def split(t):  # (B, h, w, c) -> (B, heads, h*w, d)
                return t.reshape(B, h * w, heads, -1).transpose(1, 2)

            a = torch.softmax(
                split(q) @ split(k).transpose(-1, -2) * attn.scale, dim=-1)
            o = (a @ split(v)).transpose(1, 2).reshape(B, h, w, c)
            o = o + F.conv2d(
                v.permute(0, 3, 1, 2), lepe.weight, lepe.bias, padding=1,
                groups=c).permute(0, 2, 3, 1)
            out[:, rows, cols, b * c:(b + 1) * c] = o
    return attn.proj(out.reshape(B, N, C))


def stripes_of(length, size):
    return [slice(s, min(s + size, length)) for s in range(0, length, size)]


@pytest.mark.parametrize('hw_shape, split', [((9, 10), 4), ((5, 13), 2),
                                             ((8, 8), 4), ((3, 3), 7)])
def test_stripe_attention_padding_matches_direct(hw_shape, split):
    torch.manual_seed(0)
    H, W = hw_shape
    attn = CrossShapedWindowAttention(16, 4, split).double().eval()
    for p in attn.parameters():  # non-trivial biases everywhere
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, H * W, 16, dtype=torch.float64)
    full = slice(None)
    regions = [[(full, cols) for cols in stripes_of(W, split)],
               [(rows, full) for rows in stripes_of(H, split)]]
    with torch.no_grad():
        out = attn(x, hw_shape)
        ref = direct_stripe_attention(attn, x, hw_shape, regions)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_full_attention_on_any_map():
    torch.manual_seed(0)
    attn = CrossShapedWindowAttention(
        16, 4, 7, full_attention=True).double().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5 * 11, 16, dtype=torch.float64)
    full = slice(None)
    with torch.no_grad():
        out = attn(x, (5, 11))
        ref = direct_stripe_attention(attn, x, (5, 11), [[(full, full)]])
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_padding_does_not_leak():
    """Real tokens never see padding: a map that needs padding gives the
    same outputs as the same tokens cut into stripes that need none."""
    torch.manual_seed(0)
    attn = CrossShapedWindowAttention(8, 2, 4).double().eval()
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    H, W = 6, 10  # vertical stripes 4 + 4 + 2, horizontal 4 + 2
    qkv = attn.qkv(torch.randn(1, H * W, 8, dtype=torch.float64)).view(
        1, H, W, 3, 8)[..., :4]
    with torch.no_grad():
        padded = attn.stripe_attention(qkv, attn.lepe[0], (H, 4))
        left = attn.stripe_attention(qkv[:, :, :8], attn.lepe[0], (H, 4))
        right = attn.stripe_attention(qkv[:, :, 8:], attn.lepe[0], (H, 2))
    torch.testing.assert_close(padded, torch.cat([left, right], 2),
                               rtol=0, atol=1e-14)


# --------------------------------------------------------------------------
# init_cfg


def test_init_cfg_pretrained(tmp_path):
    torch.manual_seed(0)
    source = small_model()
    path = tmp_path / 'ckpt.pth'
    sd = {f'backbone.{k}': v for k, v in source.state_dict().items()
          if not k.startswith(('norm0', 'norm1'))}  # like a classifier's
    sd['head.fc.weight'] = torch.zeros(10, 128)
    torch.save({'meta': {}, 'state_dict': sd}, path)

    model = BOATCSWinTransformer(
        arch=SMALL_ARCH, out_indices=(0, 1, 2),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()  # norm3 unused, norm0 / norm1 fresh
    for k, v in model.state_dict().items():
        if not k.startswith(('norm0', 'norm1')):
            assert torch.equal(v, source.state_dict()[k]), k
    assert torch.equal(model.norm0.weight, torch.ones(16))

    del sd['backbone.stages.2.blocks.0.fsla.proj.weight']
    sd['backbone.stages.9.blocks.0.norm1.weight'] = torch.ones(1)
    torch.save({'state_dict': sd}, path)
    model = BOATCSWinTransformer(
        arch=SMALL_ARCH,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointError) as e:
        model.init_weights()
    assert 'stages.2.blocks.0.fsla.proj.weight' in str(e.value)
    assert 'stages.9.blocks.0.norm1.weight' in str(e.value)


def test_init_cfg_rejects_official_layout(tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'state_dict': {'stage1_conv_embed.0.weight': torch.zeros(1)}},
               path)
    model = BOATCSWinTransformer(
        arch=SMALL_ARCH,
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(CheckpointError, match='boat_cswin_to_mmboat.py'):
        model.init_weights()


def test_registered_for_downstream_codebases():
    mmdet = pytest.importorskip('mmdet.registry')
    import mmboat.models  # noqa: F401
    model = mmdet.MODELS.build(
        dict(type='BOATCSWinTransformer', arch=SMALL_ARCH, out_indices=(3, )))
    assert isinstance(model, BOATCSWinTransformer)
