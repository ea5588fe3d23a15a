"""BOAT-Swin only: presets and parameter counts, the published FSLA
placement, and loading the converted reference checkpoint. What both
backbones promise is in test_backbone_contract.py."""
import pytest
import torch

from mmboat.converters import convert_boat_swin_checkpoint
from mmboat.models.backbones import BOATSwinTransformer
from mmboat.models.backbones.boat_swin import published_fsla_blocks
from mmboat.utils import load_checkpoint_file
from tests.helpers import count_params, fsla_map, reference_fixture

# the architecture of the reference fixtures: small and fast
MINI = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


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


def test_fsla_placement():
    # structure follows the pre-training size, never the input size
    assert published_fsla_blocks((2, 2, 6, 2)) == ((1, ), (1, ), (1, 3, 5), ())
    assert published_fsla_blocks((2, 2, 6, 2), 12,
                                 384) == ((1, ), (1, ), (1, 3, 5), ())
    assert published_fsla_blocks((2, 2, 2, 2), 7, 448) == ((1, ), ) * 4
    model = BOATSwinTransformer(
        arch=MINI, fsla_blocks=((0, 1), (), (1, ), (0, )))
    assert fsla_map(model) == ((0, 1), (), (1, ), (0, ))
    block = model.stages[0].blocks[0]
    assert {n.split('.')[0]
            for n, _ in block.named_children()
            } == {'norm1', 'attn', 'norm_fsla', 'fsla', 'norm2', 'ffn'}
    # no derived buffers in the state dict
    assert not any('relative_position_index' in k for k in model.state_dict())


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
