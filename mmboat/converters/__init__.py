"""Converters of the published BOAT checkpoints into mmboat checkpoints.

:mod:`.core` does the work for every family; :mod:`.boat_swin` and
:mod:`.boat_cswin` hold each family's key maps and architecture inference;
:mod:`.cli` is the command line of ``tools/model_converters/``.
"""
from .boat_cswin import convert_boat_cswin_checkpoint
from .boat_swin import convert_boat_swin_checkpoint
from .core import FAMILIES, convert

__all__ = [
    'FAMILIES', 'convert', 'convert_boat_cswin_checkpoint',
    'convert_boat_swin_checkpoint'
]
