"""Zero padding of a map at the bottom / right to whole patches, windows or
stripes: the one rule every BOAT layer that pads uses.

``pad = ceil(size / k) * k - size``, written ``(size + k - 1) // k * k -
size``. The same integer as ``-size % k`` or mmcv's ``AdaptivePadding``
(``max(ceil(size / k) * k - size, 0)``), but under ``torch.compile`` with
dynamic shapes it keeps the symbolic sizes of all four stages plain floor
divisions of the input size: the ``Mod`` / ``Max`` / ``ceiling`` forms nest
stage after stage into expressions that dynamo took minutes per input size
to simplify.
"""
import torch


def padding_to_multiple(size: int, multiple: int) -> int:
    """Zeros to add to ``size`` for a multiple of ``multiple`` (0 if it is
    one)."""
    return (size + multiple - 1) // multiple * multiple - size


def has_padding(*pads: int) -> bool:
    """Whether any of ``pads`` is not 0, i.e. padded positions must be
    masked (and cropped).

    Always True under ``torch.compile`` / ``torch.export``: masking and
    cropping nothing changes no output, and a new input size then needs no
    guard on ``size % k`` (no recompilation when only the padding changes).
    """
    return torch.compiler.is_compiling() or any(p != 0 for p in pads)
