"""Argument checks and freezing shared by the BOAT backbones."""
from typing import Iterable, Sequence, Tuple, Union

import torch.nn as nn


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int) -> Tuple[int, ...]:
    """Sorted, non-negative stage indices; negative ones count from the end."""
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    parsed = []
    for i in out_indices:
        if not -num_stages <= i < num_stages:
            raise ValueError(f'out_indices {tuple(out_indices)} out of '
                             f'range for {num_stages} stages')
        parsed.append(i % num_stages)
    return tuple(sorted(set(parsed)))


def parse_fsla_blocks(fsla_blocks: Sequence[Sequence[int]],
                      depths: Sequence[int]) -> Tuple[Tuple[int, ...], ...]:
    """Per stage, the sorted indices of the blocks that carry FSLA."""
    if len(fsla_blocks) != len(depths):
        raise ValueError(
            f'fsla_blocks needs one list of block indices per stage '
            f'({len(depths)}), got {fsla_blocks!r}')
    parsed = []
    for i, (blocks, depth) in enumerate(zip(fsla_blocks, depths)):
        blocks = tuple(sorted(set(int(j) for j in blocks)))
        if any(not 0 <= j < depth for j in blocks):
            raise ValueError(f'fsla_blocks[{i}]={blocks} out of range: has '
                             f'indices outside [0, {depth}) (stage depth)')
        parsed.append(blocks)
    return tuple(parsed)


def freeze_stages(backbone: nn.Module, frozen_stages: int,
                  stem: Iterable[nn.Module]) -> None:
    """Eval mode and no gradients for the stem (``frozen_stages >= 0``) and
    for the first ``frozen_stages`` of ``backbone.stages`` with their output
    norms ``norm{i}``."""
    frozen = list(stem) if frozen_stages >= 0 else []
    for i in range(frozen_stages):
        frozen.append(backbone.stages[i])
        if i in backbone.out_indices:
            frozen.append(getattr(backbone, f'norm{i}'))
    for module in frozen:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False
