"""Converters of the published BOAT checkpoints into mmboat checkpoints,
and checkpoint format detection.

:mod:`.core` does the work for every family and detects the formats;
:mod:`.boat_swin` and :mod:`.boat_cswin` hold each family's key maps and
architecture inference; :mod:`.cli` is the command line of
``tools/model_converters/``. The families themselves are described in
:mod:`mmboat.families`. Nothing here imports the backbones: their loader
imports this package.
"""
from .boat_cswin import convert_boat_cswin_checkpoint
from .boat_swin import convert_boat_swin_checkpoint
from .core import (CONVERTERS, OFFICIAL_FORMATS, convert, official_formats,
                   what_checkpoint_is)

__all__ = [
    'CONVERTERS', 'OFFICIAL_FORMATS', 'convert',
    'convert_boat_cswin_checkpoint', 'convert_boat_swin_checkpoint',
    'official_formats', 'what_checkpoint_is'
]
