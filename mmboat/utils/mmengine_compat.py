"""Let MMEngine 0.10 load its own checkpoints on torch >= 2.6.

MMEngine 0.10.x calls ``torch.load`` without ``weights_only``; since torch
2.6 that means ``weights_only=True``, which refuses the objects MMEngine
itself writes into a checkpoint (``HistoryBuffer`` of the message hub, numpy
arrays), so ``load_from`` and ``resume`` of a Runner checkpoint fail
(open-mmlab/mmengine#1655).

:func:`load_local_checkpoint` reads a local file with ``weights_only=True``,
allowing for the duration of that one load exactly the globals MMEngine
writes. ``getattr`` (which pickle uses to name ``HistoryBuffer.min`` and
friends) is allowed only on ``HistoryBuffer``'s public methods. Any other
global still makes the load fail, so a foreign pickle cannot run code; why
it failed (not a checkpoint, truncated, foreign objects, an official
release file to convert) is found out without running code from the file.
:func:`load_weights_into`, the one way mmboat's tools load weights, reads
with it and refuses a checkpoint that does not fit a model with an mmboat
backbone, unless partial loading is asked for; MMEngine's Runner does the
same through :class:`mmboat.engine.SafeCheckpointHook`, which configs
declare. Nothing of MMEngine is replaced. (Configs inherit mmboat's,
``_base_ = 'mmboat::...'``, through MMEngine's own tables:
:mod:`mmboat.registry`.)
"""
import os.path as osp
import pickle

import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import (_load_checkpoint,
                                        _load_checkpoint_to_model)

from .checkpoint import (CheckpointError, check_model_fits,
                         checkpoint_not_found, numpy_safe_globals,
                         resolve_checkpoint_path, unloadable_checkpoint_error,
                         weights_of)

#: the folder of the mmboat package
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


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
    """MMEngine's local-file checkpoint loader, with ``weights_only=True``.

    A missing file, a file that is not a checkpoint, one torch's
    weights-only loader refuses (it is diagnosed by
    :func:`~.checkpoint.unloadable_checkpoint_error`, which runs no code
    from it) and weights whose names are not strings raise a
    :class:`~.checkpoint.CheckpointError` that says which.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise checkpoint_not_found(filename)
    if osp.getsize(filename) == 0:
        raise CheckpointError(f'checkpoint file is empty: {filename}')
    try:
        with torch.serialization.safe_globals(MMENGINE_SAFE_GLOBALS):
            ckpt = torch.load(
                filename, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError,
            ValueError, KeyError, AttributeError) as e:
        raise unloadable_checkpoint_error(filename, e) from e
    weights_of(ckpt, filename)
    return ckpt


def read_checkpoint(filename: str, map_location='cpu') -> dict:
    """A checkpoint read without running code from it: a local file (or
    ``mmboat://NAME``) by :func:`load_local_checkpoint`, a URL or another
    scheme by MMEngine's loader for it."""
    filename = resolve_checkpoint_path(str(filename))
    if '://' in filename:
        return _load_checkpoint(filename, map_location=map_location)
    return load_local_checkpoint(filename, map_location=map_location)


def load_weights_into(model: torch.nn.Module,
                      filename: str,
                      map_location='cpu',
                      strict: bool = False,
                      revise_keys=((r'^module.', ''), ),
                      allow_partial: bool = False) -> dict:
    """Load a checkpoint's weights into ``model``: the one way mmboat's
    tools load weights.

    The file is read by :func:`read_checkpoint` (no code from it runs); a
    model with an mmboat backbone refuses weights that do not fit
    (:func:`~.checkpoint.check_model_fits`) unless ``allow_partial`` (and
    not ``strict``); then MMEngine loads them (``revise_keys`` as in
    MMEngine). Returns the checkpoint.
    """
    checkpoint = read_checkpoint(filename, map_location)
    check_model_fits(model, checkpoint, filename, revise_keys, allow_partial
                     and not strict)
    return _load_checkpoint_to_model(
        model, checkpoint, strict, revise_keys=revise_keys)
