"""BOAT-Swin (and Swin) files of the official releases -> mmboat.

The published BOAT-Swin files (``tiny.pth``, ...) are in the Swin training
format: weights under ``model``, the FSLA of block ``layers.{i}.blocks.{j}``
as its ``attnC.*`` and ``norm4.*``. An official Swin file converts too,
into a BOAT-Swin initialisation whose FSLA weights start fresh.
``tools/model_converters/boat_swin_to_mmboat.py`` is the command line.
"""
import math
from typing import Dict, Optional, Union

import torch

from mmboat.families import BOAT_SWIN
from mmboat.utils import CheckpointError
from .core import (Arch, FamilyConverter, KeyMap, convert, match_preset, need,
                   register)

# official name prefix -> mmboat name prefix after 'backbone.' (KeyMap)
KEY_MAP = KeyMap('''
    layers.{i}.blocks.{j}.norm1.     stages.{i}.blocks.{j}.norm1.
    layers.{i}.blocks.{j}.attn.      stages.{i}.blocks.{j}.attn.w_msa.
    layers.{i}.blocks.{j}.norm4.     stages.{i}.blocks.{j}.norm_fsla.
    layers.{i}.blocks.{j}.attnC.     stages.{i}.blocks.{j}.fsla.
    layers.{i}.blocks.{j}.norm2.     stages.{i}.blocks.{j}.norm2.
    layers.{i}.blocks.{j}.mlp.fc1.   stages.{i}.blocks.{j}.ffn.layers.0.0.
    layers.{i}.blocks.{j}.mlp.fc2.   stages.{i}.blocks.{j}.ffn.layers.1.
    layers.{i}.downsample.           stages.{i}.downsample.
    patch_embed.proj.                patch_embed.projection.
    patch_embed.norm.                patch_embed.norm.
    norm.                            norm{last}.
''')
_TABLE = 'layers.{i}.blocks.{j}.attn.relative_position_bias_table'


def _unfold_reduction_order(w: torch.Tensor) -> torch.Tensor:
    """Official merge order (x0, x1, x2, x3) -> ``nn.Unfold`` order."""
    out_channels, in_channels = w.shape
    w = w.reshape(out_channels, 4, in_channels // 4)
    w = w[:, [0, 2, 1, 3], :].transpose(1, 2)
    return w.reshape(out_channels, in_channels)


def _unfold_norm_order(w: torch.Tensor) -> torch.Tensor:
    in_channels = w.shape[0]
    w = w.reshape(4, in_channels // 4)
    return w[[0, 2, 1, 3], :].transpose(0, 1).reshape(in_channels)


def _first(weights: Dict[str, torch.Tensor], keys) -> Optional[torch.Tensor]:
    return next((weights[k] for k in keys if k in weights), None)


def infer_arch(weights: Dict[str, torch.Tensor],
               arch: Union[str, dict, None] = None) -> Arch:
    """Embed dims, depths, heads, window, MLP ratio and FSLA placement,
    read from the names and shapes of the weights; with ``arch`` (a preset
    name or an arch dict) the file must hold that architecture."""
    backbone = BOAT_SWIN.backbone
    proj = need(weights, 'patch_embed.proj.weight')
    if proj.shape[-1] != backbone.patch_size:
        raise CheckpointError(
            f'patch size {proj.shape[-1]} is not supported (BOAT-Swin '
            f'uses {backbone.patch_size})')
    depths = KEY_MAP.depths(weights)
    tables = []  # the relative position table of each stage
    for i, depth in enumerate(depths):
        names = [_TABLE.format(i=i, j=j) for j in range(depth)]
        tables.append(_first(weights, names))
        if tables[-1] is None:
            need(weights, names[0])
    window = (math.isqrt(tables[0].shape[0]) + 1) // 2
    fc1 = _first(weights, (f'layers.{i}.blocks.0.mlp.fc1.weight'
                           for i in range(len(depths))))
    ratio = 4. if fc1 is None else fc1.shape[0] / fc1.shape[1]
    found = backbone.parse_arch(
        dict(
            embed_dims=proj.shape[0],
            depths=depths,
            num_heads=tuple(t.shape[1] for t in tables)))
    if arch is not None and backbone.parse_arch(arch) != found:
        raise CheckpointError(
            f'the checkpoint holds arch {found}, not {arch!r} '
            f'({backbone.parse_arch(arch)})')

    fsla = KEY_MAP.fsla_blocks(weights)
    published = backbone.published_fsla_blocks(depths, window)
    fsla_blocks = tuple(
        tuple(j for j in range(d) if (i, j) in fsla)
        for i, d in enumerate(depths)) if fsla else published
    return Arch(
        kwargs=dict(
            arch=found,
            in_channels=proj.shape[1],
            window_size=window,
            mlp_ratio=ratio,
            fsla_blocks=fsla_blocks),
        has_fsla=bool(fsla),
        meta=dict(
            arch=match_preset(BOAT_SWIN, **found) or dict(
                embed_dims=found['embed_dims'],
                depths=list(depths),
                num_heads=list(found['num_heads'])),
            window_size=window,
            mlp_ratio=ratio,
            fsla_blocks=[list(b) for b in fsla_blocks],
            default_fsla_blocks=fsla_blocks == published),
        summary=f'arch {found}')


def transform(key: str, value: torch.Tensor) -> torch.Tensor:
    """Patch merging: the official (x0, x1, x2, x3) channel order -> the
    ``nn.Unfold`` order of mmcv's ``PatchMerging``."""
    if key.endswith('downsample.reduction.weight'):
        return _unfold_reduction_order(value)
    if '.downsample.norm.' in key:
        return _unfold_norm_order(value)
    return value


def describe(meta: dict) -> str:
    cfg = f"type='BOATSwinTransformer', arch={meta['arch']!r}"
    if meta['window_size'] != 7:
        cfg += f", window_size={meta['window_size']}"
    if meta['mlp_ratio'] != 4:
        cfg += f", mlp_ratio={meta['mlp_ratio']}"
    if not meta['default_fsla_blocks']:
        cfg += f", fsla_blocks={meta['fsla_blocks']}"
    return f'dict({cfg})'


CONVERTER = register(
    FamilyConverter(BOAT_SWIN, KEY_MAP, infer_arch, describe, transform))


def convert_boat_swin_checkpoint(checkpoint: Union[str, dict],
                                 arch: Union[str, dict, None] = None,
                                 seed: int = 0) -> dict:
    """Official BOAT-Swin (or Swin) checkpoint -> mmboat checkpoint.

    Args:
        checkpoint (str | dict): an official file (weights under
            ``model``), read without running code from it, or what
            :func:`mmboat.utils.load_checkpoint_file` read from one, or the
            bare weights dict.
        arch (str | dict, optional): expected architecture (a preset name or
            an arch dict); by default read from the weights.
        seed (int): seed of the fresh FSLA weights when the source is a
            plain Swin file. Default: 0.

    Returns:
        dict: ``{'meta': ..., 'state_dict': ...}`` with ``backbone.*`` and
        ``head.fc.*`` keys (see :mod:`mmboat.converters.core`).
        ``meta['source']`` is ``'boat-swin'`` or ``'swin'``; for a Swin
        source every FSLA weight starts fresh and ``meta['fresh_keys']``
        lists them. ``meta['arch']`` is a preset name or an arch dict,
        ``meta['num_classes']`` None for a file without a head.

    Raises:
        CheckpointError: the file is unreadable or of another family, or
            weights are missing, unexpected or inconsistent (the message
            lists them).
    """
    return convert(CONVERTER, checkpoint, seed=seed, arch=arch)
