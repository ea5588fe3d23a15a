"""Locally-enhanced positional encoding (LePE), shared by the attentions.

CSWin's LePE (Dong et al. 2022) adds to an attention's output a depthwise
3x3 convolution of its values, laid out as an image. Stripe attention
(:mod:`.stripe_attention`) applies it inside every stripe; FSLA
(:mod:`.feature_space_attention`) on the whole map, in the image order of
the tokens.
"""
import torch.nn as nn

from ..validate import check_positive_ints


class LePE(nn.Conv2d):
    """Depthwise 3x3 convolution of the values, zero-padded by 1.

    A plain :class:`torch.nn.Conv2d` (parameters ``weight`` and ``bias``,
    PyTorch's default initialisation) whose name says what it is for.

    Args:
        channels (int): channels of the values.

    Shape:
        x: (B, C, H, W) values laid out as an image; returns (B, C, H, W).
    """

    def __init__(self, channels: int):
        check_positive_ints(type(self).__name__, channels=channels)
        super().__init__(channels, channels, 3, padding=1, groups=channels)
