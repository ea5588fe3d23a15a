"""Stems and merges share one interface; LePE is a depthwise 3x3
convolution."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmboat.models.layers import (ConvMerging, ConvStem, LePE, PatchStem,
                                  UnfoldMerging)


@pytest.mark.parametrize('stem, side', [
    (PatchStem(3, 8), lambda s: math.ceil(s / 4)),
    (ConvStem(3, 8), lambda s: (s - 3) // 4 + 1),
])
def test_stems(stem, side):
    x = torch.randn(2, 3, 37, 50)
    tokens, hw = stem(x)
    assert hw == (side(37), side(50))
    assert tokens.shape == (2, hw[0] * hw[1], 8)


@pytest.mark.parametrize('merge', [UnfoldMerging(8, 16), ConvMerging(8, 16)])
@pytest.mark.parametrize('hw', [(7, 9), (8, 8), (1, 3)])
def test_merges(merge, hw):
    x = torch.randn(2, hw[0] * hw[1], 8)
    tokens, out_hw = merge(x, hw)
    assert out_hw == (math.ceil(hw[0] / 2), math.ceil(hw[1] / 2))
    assert tokens.shape == (2, out_hw[0] * out_hw[1], 16)


def test_lepe_is_a_depthwise_3x3_convolution():
    lepe = LePE(6)
    assert set(dict(lepe.named_parameters())) == {'weight', 'bias'}
    x = torch.randn(2, 6, 5, 7)
    ref = F.conv2d(x, lepe.weight, lepe.bias, padding=1, groups=6)
    torch.testing.assert_close(lepe(x), ref)
    assert lepe.weight.shape == (6, 1, 3, 3)


@pytest.mark.parametrize('size', [(3, 3), (5, 7), (3, 40), (64, 96)])
def test_conv_stem_is_unchanged_from_3_pixels(size):
    """Sides of 3 pixels or more (every size that ran before thin images
    did) go through the convolution and the norm alone: the same outputs,
    bit for bit."""
    stem = ConvStem(3, 8)
    x = torch.randn(2, 3, *size)
    tokens, hw = stem(x)
    ref = stem.proj(x)
    assert hw == tuple(ref.shape[2:])
    assert torch.equal(tokens, stem.norm(ref.flatten(2).transpose(1, 2)))


@pytest.mark.parametrize('size', [(1, 500), (500, 2), (1, 1), (2, 2)])
def test_conv_stem_zero_pads_thin_sides_to_3(size):
    """A side of 1 or 2 pixels is zero-padded to 3 at the bottom / right:
    the convolution's own zero padding, extended."""
    stem = ConvStem(3, 8)
    x = torch.randn(2, 3, *size)
    tokens, hw = stem(x)
    padded = F.pad(x, (0, max(3 - size[1], 0), 0, max(3 - size[0], 0)))
    ref, ref_hw = stem(padded)
    assert hw == ref_hw == tuple((max(s, 3) - 3) // 4 + 1 for s in size)
    assert torch.equal(tokens, ref)
