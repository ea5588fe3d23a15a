"""BOAT-CSWin (and CSWin) files of the official releases -> mmboat.

The published BOAT-CSWin files (``cswin_tiny.pth.tar``, ...) are in the timm
training format: weights under ``state_dict``, optionally EMA weights under
``state_dict_ema``; the FSLA of block ``stage{i}.{j}`` (stages from 1) is
its ``content_attn.*`` and ``norm3.*``. An official CSWin file converts
too, into a BOAT-CSWin initialisation whose FSLA weights start fresh.
``tools/model_converters/boat_cswin_to_mmboat.py`` is the command line.
"""
from typing import Dict, Union

import torch

from mmboat.families import BOAT_CSWIN
from .core import (Arch, FamilyConverter, KeyMap, convert, match_preset, need,
                   register)

# official name prefix -> mmboat name prefix after 'backbone.' (KeyMap)
KEY_MAP = KeyMap('''
    stage{i+1}.{j}.norm1.           stages.{i}.blocks.{j}.norm1.
    stage{i+1}.{j}.qkv.             stages.{i}.blocks.{j}.attn.qkv.
    stage{i+1}.{j}.proj.            stages.{i}.blocks.{j}.attn.proj.
    stage{i+1}.{j}.attns.0.get_v.   stages.{i}.blocks.{j}.attn.lepe.0.
    stage{i+1}.{j}.attns.1.get_v.   stages.{i}.blocks.{j}.attn.lepe.1.
    stage{i+1}.{j}.norm3.           stages.{i}.blocks.{j}.norm_fsla.
    stage{i+1}.{j}.content_attn.    stages.{i}.blocks.{j}.fsla.
    stage{i+1}.{j}.norm2.           stages.{i}.blocks.{j}.norm2.
    stage{i+1}.{j}.mlp.fc1.         stages.{i}.blocks.{j}.ffn.layers.0.0.
    stage{i+1}.{j}.mlp.fc2.         stages.{i}.blocks.{j}.ffn.layers.1.
    merge{i+1}.                     stages.{i}.downsample.
    stage1_conv_embed.0.            patch_embed.proj.
    stage1_conv_embed.2.            patch_embed.norm.
    norm.                           norm{last}.
''')


def infer_arch(weights: Dict[str, torch.Tensor]) -> Arch:
    """Embed dims and depths from the weights; FSLA, if any, in the even
    blocks (the published placement). ``num_heads`` and ``split_sizes``
    change no weight shape: ``meta['arch']`` is the preset with these embed
    dims and depths, or None."""
    embed_dims = int(need(weights, 'stage1_conv_embed.0.weight').shape[0])
    depths = KEY_MAP.depths(weights)
    has_fsla = bool(KEY_MAP.fsla_blocks(weights))
    return Arch(
        kwargs=dict(
            arch=dict(
                embed_dims=embed_dims,
                depths=depths,
                num_heads=(2, ) * len(depths),
                split_sizes=(1, ) * len(depths))),
        has_fsla=has_fsla,
        meta=dict(
            arch=match_preset(
                BOAT_CSWIN, embed_dims=embed_dims, depths=depths),
            embed_dims=embed_dims,
            depths=list(depths)),
        summary=f'embed_dims={embed_dims}, depths={depths}' +
        (', FSLA in the even blocks' if has_fsla else ''))


def describe(meta: dict) -> str:
    if meta['arch']:
        return f"dict(type='BOATCSWinTransformer', arch={meta['arch']!r})"
    return ("dict(type='BOATCSWinTransformer', arch=dict(embed_dims="
            f"{meta['embed_dims']}, depths={meta['depths']}, num_heads=..., "
            'split_sizes=...)) (no preset has these weights; num_heads and '
            'split_sizes are not stored in them)')


CONVERTER = register(
    FamilyConverter(BOAT_CSWIN, KEY_MAP, infer_arch, describe))


def convert_boat_cswin_checkpoint(checkpoint: Union[str, dict],
                                  use_ema: bool = False,
                                  seed: int = 0) -> dict:
    """Official BOAT-CSWin (or CSWin) checkpoint -> mmboat checkpoint.

    Args:
        checkpoint (str | dict): a timm-format file (``state_dict``,
            optionally ``state_dict_ema``, ``arch``, ``epoch``, ...), read
            without running code from it, or its loaded dict.
        use_ema (bool): convert ``state_dict_ema`` instead of
            ``state_dict``.
        seed (int): seed of the fresh FSLA weights of a CSWin source.

    Returns:
        dict: ``{'meta': ..., 'state_dict': ...}`` with ``backbone.*`` and
        ``head.fc.*`` keys (see :mod:`mmboat.converters.core`).
        ``meta['source']`` is ``'boat-cswin'`` or ``'cswin'``; for a CSWin
        source the FSLA weights (even blocks) are drawn fresh and listed in
        ``meta['fresh_keys']``. ``meta['source_weights']`` says which
        weights of the file were converted, ``meta['num_classes']`` is
        None for a file without a head.

    Raises:
        CheckpointError: unreadable or truncated file, a file of another
            format (BOAT-Swin, already converted), missing, unknown or
            misshapen weights.
    """
    return convert(CONVERTER, checkpoint, seed=seed, use_ema=use_ema)
