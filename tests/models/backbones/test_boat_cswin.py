"""BOAT-CSWin only: parameter counts, the published FSLA placement, stripe
heads. What both backbones promise is in test_backbone_contract.py."""
import math

import pytest
import torch

from mmboat.models.backbones import BOATCSWinTransformer
from tests.helpers import count_params

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
