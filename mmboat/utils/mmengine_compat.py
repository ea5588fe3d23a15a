"""Let MMEngine 0.10 load its own checkpoints on torch >= 2.6.

MMEngine 0.10.x calls ``torch.load`` without ``weights_only``; since torch
2.6 that means ``weights_only=True``, which refuses the objects MMEngine
itself writes into a checkpoint (``HistoryBuffer`` of the message hub, numpy
arrays), so ``load_from`` and ``resume`` of a Runner checkpoint fail
(open-mmlab/mmengine#1655).

:func:`register_checkpoint_loader` replaces MMEngine's loader for local
files by one that keeps ``weights_only=True`` and allows, for the duration
of that one load, exactly the globals MMEngine writes. ``getattr`` (which
pickle uses to name ``HistoryBuffer.min`` and friends) is allowed only on
``HistoryBuffer``'s public methods. Any other global still makes the load
fail, so a foreign pickle cannot run code.
"""
import os.path as osp
import pickle

import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint import numpy_safe_globals


def _history_buffer_getattr(obj, name, *default):
    """``getattr`` restricted to the public methods of ``HistoryBuffer``."""
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer methods are allowed')


MMENGINE_SAFE_GLOBALS = [
    HistoryBuffer,
    (_history_buffer_getattr, 'builtins.getattr'),
    (_history_buffer_getattr, '__builtin__.getattr'),
] + numpy_safe_globals()


def load_local_checkpoint(filename, map_location=None):
    """MMEngine's local-file checkpoint loader, with ``weights_only=True``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(
            f'{filename} holds objects that are not tensors or MMEngine '
            'training state, and loading it would run code from the file. '
            'Published BOAT/Swin/CSWin release files must first go through '
            "mmboat's converters in tools/model_converters/. "
            f'Original error: {e}') from e


def register_checkpoint_loader():
    """Make MMEngine load local checkpoints with :func:`load_local_checkpoint`."""
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        load_local_checkpoint)
