"""BOAT-CSWin only: parameter counts, the published FSLA placement, stripe
heads, and state dicts of version 1. What both backbones promise is in
test_backbone_contract.py."""
import math
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from mmboat.models.backbones import BOATCSWinTransformer
from mmboat.utils import load_checkpoint_file
from tests.helpers import REPO_ROOT, count_params

SMALL_ARCH = dict(
    embed_dims=16,
    depths=(1, 2, 2, 1),
    num_heads=(2, 2, 4, 8),
    split_sizes=(1, 2, 7, 7))


@pytest.mark.parametrize('arch, count', [
    ('tiny', 25_878_848),
    ('small', 39_600_384),
    ('base', 88_861_056),
])
def test_preset_parameter_counts(arch, count):
    with torch.device('meta'):
        model = BOATCSWinTransformer(arch=arch)
        plain = BOATCSWinTransformer(arch=arch, fsla_blocks=((), ) * 4)
    assert count_params(model) == count
    # without FSLA and norm0..2, with a 1000-class head: CSWin, whose paper
    # gives 23M / 35M / 78M (rounded up)
    norms = sum(model.num_features[i] * 2 for i in range(3))
    cswin = count_params(plain) - norms + model.num_features[-1] * 1001
    paper = {'tiny': 23, 'small': 35, 'base': 78}
    assert math.ceil(cswin / 1e6) == paper[arch]


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


def test_stripe_heads_must_be_even():
    with pytest.raises(ValueError, match='num_heads must be even'):
        BOATCSWinTransformer(arch=dict(SMALL_ARCH, num_heads=(1, 2, 4, 8)))


# --------------------------------------------------------------------------
# state dicts of version 1 (timm's Mlp: ffn.fc1 / ffn.fc2), written by
# mmboat at 0bda027 in tests/assets/boat_cswin_v1.pth: a tiny BOAT-CSWin
# (torch.manual_seed(0), init_weights(), every parameter perturbed by
# 0.05 * randn), its state_dict() (metadata version 1), an input (float32)
# and the float64 outputs of the eval model on it

LEGACY = REPO_ROOT / 'tests' / 'assets' / 'boat_cswin_v1.pth'


@pytest.fixture(scope='module')
def legacy():
    return load_checkpoint_file(str(LEGACY))


def outputs(model, x):
    with torch.no_grad():
        return model.double().eval()(x.double())


def assert_same_outputs(outs, ref):
    """The outputs of version 1, up to float64 rounding."""
    assert len(outs) == len(ref)
    for out, r in zip(outs, ref):
        torch.testing.assert_close(out, r, rtol=1e-10, atol=1e-12)


def new_model(legacy, **kwargs):
    return BOATCSWinTransformer(
        arch=legacy['arch'], out_indices=(0, 1, 2), **kwargs)


def test_version_1_keys(legacy):
    old = legacy['state_dict']
    assert old._metadata['']['version'] == 1
    assert 'stages.0.blocks.0.ffn.fc1.weight' in old
    own = new_model(legacy).state_dict()
    assert own._metadata['']['version'] == 2
    assert 'stages.0.blocks.0.ffn.layers.0.0.weight' in own
    assert not any('.ffn.fc' in k for k in own)
    renamed = BOATCSWinTransformer.upgrade_state_dict(OrderedDict(old))
    assert sorted(renamed) == sorted(own)


@pytest.mark.parametrize('metadata', ['version 1', 'none'])
def test_version_1_state_dict_loads(legacy, metadata, one_thread):
    state_dict = legacy['state_dict']
    if metadata == 'none':  # e.g. a dict built by hand: renamed too
        state_dict = dict(state_dict)
    model = new_model(legacy)
    model.load_state_dict(state_dict, strict=True)
    assert_same_outputs(outputs(model, legacy['input']), legacy['outputs'])


def test_version_1_state_dict_loads_in_a_model(legacy, one_thread):
    """Under a prefix (a classifier's, a detector's ``backbone.``), with
    its metadata."""
    old = legacy['state_dict']
    state_dict = OrderedDict((f'backbone.{k}', v) for k, v in old.items())
    state_dict._metadata = OrderedDict(
        (f'backbone.{k}' if k else 'backbone', v)
        for k, v in old._metadata.items())
    parent = nn.Module()
    parent.backbone = new_model(legacy)
    parent.load_state_dict(state_dict, strict=True)
    assert_same_outputs(
        outputs(parent.backbone, legacy['input']), legacy['outputs'])


def test_version_1_checkpoint_loads_through_init_cfg(legacy, tmp_path,
                                                     one_thread):
    path = tmp_path / 'v1.pth'
    torch.save(
        {
            'state_dict': {
                f'backbone.{k}': v
                for k, v in legacy['state_dict'].items()
            }
        }, path)
    model = new_model(
        legacy, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert_same_outputs(outputs(model, legacy['input']), legacy['outputs'])


def test_version_2_keys_are_not_renamed(legacy):
    """The rename is versioned: a version-2 state dict with an old key
    does not load."""
    model = new_model(legacy)
    state_dict = model.state_dict()
    key = 'stages.0.blocks.0.ffn.layers.0.0.weight'
    state_dict['stages.0.blocks.0.ffn.fc1.weight'] = state_dict.pop(key)
    with pytest.raises(RuntimeError, match='ffn.fc1.weight'):
        new_model(legacy).load_state_dict(state_dict, strict=True)
    state_dict = model.state_dict()
    new_model(legacy).load_state_dict(state_dict, strict=True)
