import pytest
import torch

from mmboat.converters import convert_boat_swin_checkpoint
from mmboat.models.backbones import BOATSwinTransformer
from mmboat.models.backbones.boat_swin import (PaddedShiftWindowMSA,
                                               published_fsla_blocks)
from mmboat.utils import load_checkpoint_file
from tests.helpers import reference_fixture

# the architecture of the reference fixtures: small and fast
MINI = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


def fsla_map(model):
    """Per stage, the indices of the blocks that have FSLA."""
    return tuple(
        tuple(j for j, b in enumerate(stage.blocks) if b.fsla is not None)
        for stage in model.stages)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('arch,backbone,classifier', [
    ('tiny', 29_497_530, 30_265_186),
    ('small', 54_391_242, 55_158_898),
    ('base', 96_589_752, 97_612_960),
])
def test_presets(arch, backbone, classifier):
    with torch.device('meta'):
        dense = BOATSwinTransformer(arch=arch)
        cls = BOATSwinTransformer(arch=arch, out_indices=(3, ))
    assert count_params(dense) == backbone
    # + ImageNet head (C * 1000 + 1000): the published model's size
    c = cls.num_features[-1]
    assert count_params(cls) + c * 1000 + 1000 == classifier
    depths = BOATSwinTransformer.arch_zoo[arch]['depths']
    # published placement: shifted blocks of stages 1-3, none in stage 4
    assert fsla_map(cls) == tuple(
        tuple(range(1, d, 2)) if i < 3 else () for i, d in enumerate(depths))


@pytest.mark.parametrize('arch,swin,fsla', [
    ('tiny', 28_288_354, 1_976_832),
    ('small', 49_606_258, 5_552_640),
    ('base', 87_768_224, 9_844_736),
])
def test_fsla_params(arch, swin, fsla):
    """BOAT-Swin = Swin (its published size) + the FSLA branches."""
    with torch.device('meta'):
        boat = BOATSwinTransformer(arch=arch, out_indices=(3, ))
        plain = BOATSwinTransformer(
            arch=arch, out_indices=(3, ), fsla_blocks=((), (), (), ()))
    c = plain.num_features[-1]
    assert count_params(plain) + c * 1000 + 1000 == swin
    assert count_params(boat) - count_params(plain) == fsla


def test_arch_errors():
    with pytest.raises(ValueError, match="unknown BOAT-Swin arch 'huge'"):
        BOATSwinTransformer(arch='huge')
    with pytest.raises(ValueError, match=r"missing keys \['num_heads'\]"):
        BOATSwinTransformer(arch=dict(embed_dims=32, depths=(2, 2)))
    with pytest.raises(ValueError, match=r"unknown keys \['window'\]"):
        BOATSwinTransformer(arch=dict(MINI, window=7))
    with pytest.raises(ValueError, match='not divisible'):
        BOATSwinTransformer(arch=dict(MINI, num_heads=(3, 2, 4, 8)))
    with pytest.raises(ValueError, match='out_indices'):
        BOATSwinTransformer(arch=MINI, out_indices=(4, ))
    with pytest.raises(ValueError, match='fsla_blocks'):
        BOATSwinTransformer(arch=MINI, fsla_blocks=((1, ), (1, )))
    with pytest.raises(ValueError, match='outside'):
        BOATSwinTransformer(arch=MINI, fsla_blocks=((2, ), (), (), ()))


def test_fsla_placement():
    # structure follows the pre-training size, never the input size
    assert published_fsla_blocks((2, 2, 6, 2)) == ((1, ), (1, ), (1, 3, 5),
                                                   ())
    assert published_fsla_blocks((2, 2, 6, 2), 12, 384) == ((1, ), (1, ),
                                                            (1, 3, 5), ())
    assert published_fsla_blocks((2, 2, 2, 2), 7, 448) == ((1, ), ) * 4
    model = BOATSwinTransformer(
        arch=MINI, fsla_blocks=((0, 1), (), (1, ), (0, )))
    assert fsla_map(model) == ((0, 1), (), (1, ), (0, ))
    block = model.stages[0].blocks[0]
    assert {n.split('.')[0] for n, _ in block.named_children()} == {
        'norm1', 'attn', 'norm_fsla', 'fsla', 'norm2', 'ffn'
    }
    # no derived buffers in the state dict
    assert not any('relative_position_index' in k
                   for k in model.state_dict())


def test_shift_window_rule():
    """Shift only when the padded map has more than one window."""
    torch.manual_seed(0)
    shifted = PaddedShiftWindowMSA(16, 2, 7, shift_size=3).double().eval()
    plain = PaddedShiftWindowMSA(16, 2, 7, shift_size=0).double().eval()
    torch.nn.init.normal_(shifted.w_msa.relative_position_bias_table)
    plain.load_state_dict(shifted.state_dict())
    assert 'w_msa.relative_position_index' not in plain.state_dict()
    for hw, same in [((7, 7), True), ((5, 3), True), ((7, 9), False),
                     ((14, 14), False)]:
        x = torch.randn(2, hw[0] * hw[1], 16, dtype=torch.float64)
        out = shifted(x, hw)
        assert out.shape == x.shape
        assert torch.equal(out, plain(x, hw)) == same, hw


@pytest.mark.parametrize('size', [(224, 224), (333, 517), (40, 24)])
@pytest.mark.parametrize('train', [False, True])
def test_forward_any_size(size, train):
    torch.manual_seed(0)
    model = BOATSwinTransformer(arch=MINI, drop_path_rate=0.2)
    model.init_weights()
    model.train(train)
    x = torch.randn(1, 3, *size)
    backward = train and size == (40, 24)  # keep the big sizes fast
    with torch.set_grad_enabled(backward):
        outs = model(x)
    assert len(outs) == 4
    for i, out in enumerate(outs):
        stride = 4 * 2**i
        assert out.shape == (1, 32 * 2**i, -(-size[0] // stride),
                             -(-size[1] // stride))
        assert torch.isfinite(out).all()
    if backward:
        sum(o.sum() for o in outs).backward()
        assert model.stages[0].blocks[1].fsla.qkv.weight.grad is not None


def test_autocast_and_half_precision():
    torch.manual_seed(0)
    model = BOATSwinTransformer(arch=MINI).eval()
    x = torch.randn(1, 3, 64, 72)
    ref = model(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(x)
    for o, r in zip(outs, ref):
        assert o.shape == r.shape and torch.isfinite(o).all()
    outs = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert all(o.dtype == torch.bfloat16 for o in outs)


def test_out_indices():
    model = BOATSwinTransformer(arch=MINI, out_indices=(1, -1)).eval()
    assert not hasattr(model, 'norm0') and hasattr(model, 'norm3')
    outs = model(torch.randn(2, 3, 64, 96))
    assert [o.shape for o in outs] == [(2, 64, 8, 12), (2, 256, 2, 3)]


def test_batch_independence():
    torch.manual_seed(0)
    model = BOATSwinTransformer(arch=MINI).double().eval()
    x = torch.randn(3, 3, 112, 80, dtype=torch.float64)
    batched = model(x)
    for b in range(3):
        single = model(x[b:b + 1])
        for o_b, o_s in zip(batched, single):
            torch.testing.assert_close(o_b[b:b + 1], o_s)


def test_frozen_stages():
    model = BOATSwinTransformer(arch=MINI, frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, model.stages[0], model.stages[1],
              model.norm0, model.norm1]
    for m in frozen:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
        assert all(not sub.training for sub in m.modules())
    for m in [model.stages[2], model.stages[3], model.norm2, model.norm3]:
        assert m.training
        assert all(p.requires_grad for p in m.parameters())
    with pytest.raises(ValueError, match='frozen_stages'):
        BOATSwinTransformer(arch=MINI, frozen_stages=5)


def test_with_cp():
    torch.manual_seed(0)
    ref = BOATSwinTransformer(arch=MINI, drop_path_rate=0.3)
    ref.init_weights()
    cp = BOATSwinTransformer(arch=MINI, drop_path_rate=0.3, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 96, 64)
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


@pytest.fixture(scope='module')
def mini_checkpoint(tmp_path_factory):
    """The official mini fixture converted and saved as an mmboat file."""
    src = reference_fixture('boat_swin_mini_official.pth')
    converted = convert_boat_swin_checkpoint(load_checkpoint_file(str(src)))
    path = tmp_path_factory.mktemp('ckpt') / 'boat_swin_mini.pth'
    torch.save(converted, path)
    return path, converted['state_dict']


def test_init_cfg_pretrained(mini_checkpoint):
    path, state_dict = mini_checkpoint
    model = BOATSwinTransformer(
        arch=MINI, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    own = model.state_dict()
    for k, v in state_dict.items():
        if k.startswith('backbone.'):
            assert torch.equal(own[k[len('backbone.'):]], v), k
    # the classification checkpoint has only the last output norm: the
    # others start fresh (LayerNorm at 1 / 0)
    assert torch.equal(own['norm0.weight'], torch.ones(32))
    assert torch.equal(own['norm0.bias'], torch.zeros(32))


def test_init_cfg_errors(mini_checkpoint, tmp_path):
    path, state_dict = mini_checkpoint
    broken = dict(state_dict)
    del broken['backbone.stages.1.blocks.1.fsla.qkv.weight']
    broken['backbone.extra.weight'] = torch.zeros(1)
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': broken}, bad)
    model = BOATSwinTransformer(
        arch=MINI, init_cfg=dict(type='Pretrained', checkpoint=str(bad)))
    with pytest.raises(ValueError) as e:
        model.init_weights()
    assert 'stages.1.blocks.1.fsla.qkv.weight' in str(e.value)
    assert 'extra.weight' in str(e.value)
    # wrong structure: FSLA also in stage 4
    model = BOATSwinTransformer(
        arch=MINI,
        fsla_blocks=((1, ), (1, ), (1, ), (1, )),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match='stages.3.blocks.1.fsla'):
        model.init_weights()
    # official layout: points to the converter
    official = reference_fixture('boat_swin_mini_official.pth')
    model = BOATSwinTransformer(
        arch=MINI, init_cfg=dict(type='Pretrained', checkpoint=str(official)))
    with pytest.raises(ValueError, match='boat_swin_to_mmboat'):
        model.init_weights()
