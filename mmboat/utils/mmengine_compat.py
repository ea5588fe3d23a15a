"""Let MMEngine 0.10 load its own checkpoints on torch >= 2.6, and load
configs that inherit mmboat's, ``_base_ = 'mmboat::...'``.

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

:func:`register_config_package` lets a config inherit mmboat's configs the
way it inherits mmdet's, ``_base_ = 'mmboat::boat_swin/x.py'``: from
``mmboat/.mim/configs/boat_swin/x.py``, where ``pip install -e`` links and
``pip install`` copies the repository's ``configs/``. MMEngine 0.10 refuses
``pkg::`` for packages outside its ``MODULE2PACKAGE`` table
(open-mmlab/mmengine#1410), finds a package from its distribution's
location, which for a PEP 660 editable install is site-packages, where the
package is not, and gives every typed dict of the inherited file that has
no ``_scope_`` the scope ``mmboat``, which no registry has (a dataset of
mmpretrain would then be looked up in MMEngine's root registry and not be
found). mmboat's configs are mmdet / mmseg / mmpretrain configs, so they
are loaded with no scope of their own: their ``default_scope`` applies, as
when they are loaded by path.
"""
import os.path as osp
import pickle

import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint import numpy_safe_globals

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
    """Make MMEngine load local checkpoints with
    :func:`load_local_checkpoint`."""
    register = CheckpointLoader.register_scheme(prefixes='', force=True)
    register(load_local_checkpoint)


def register_config_package():
    """Make MMEngine load ``mmboat::<path>`` from ``mmboat/.mim/configs``."""
    resolve = Config._get_cfg_path
    if getattr(resolve, 'resolves_mmboat', False):
        return

    def get_cfg_path(cfg_path, filename):
        package, sep, name = cfg_path.partition('::')
        if not sep or package != 'mmboat':
            return resolve(cfg_path, filename)
        configs = osp.join(PACKAGE_DIR, '.mim', 'configs')
        if not osp.isdir(configs):
            raise FileNotFoundError(
                f'{PACKAGE_DIR} has no .mim/configs, so {cfg_path!r} (in '
                f'{filename}) cannot be found: install mmboat with pip '
                '(`pip install -e .` or `pip install .` in its repository), '
                'which links or copies its configs there')
        path = osp.join(configs, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{cfg_path!r} (in {filename}) does not exist: mmboat has '
                f'no config {path}; its configs are under {configs}')
        return path, None

    get_cfg_path.resolves_mmboat = True
    Config._get_cfg_path = staticmethod(get_cfg_path)
