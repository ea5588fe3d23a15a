"""Loading checkpoint files without executing code from them.

``torch.load(weights_only=False)`` runs whatever a pickle asks for, and
``weights_only=True`` refuses the objects that real release files carry (a
yacs ``CfgNode`` in BOAT-Swin files, an ``argparse.Namespace`` in timm
files). :func:`load_checkpoint_file` unpickles with an allow-list: tensors,
storages and plain containers are rebuilt, and every other class named in the
file becomes an inert :class:`OpaqueObject` that records its arguments and
state and runs nothing.
"""
import codecs
import collections
import os
import pickle
import re
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, truncated or of the wrong kind."""


class OpaqueObject(dict):
    """Stand-in for a class named in a checkpoint that is not allow-listed.

    Keeps what the pickle stored (constructor arguments, items, state) as
    data; never imports or calls the original class.
    """
    _pickle_class = '?'
    args: tuple = ()
    state: Any = None

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.setdefault('_items', []).append(item)

    def extend(self, items):
        self.setdefault('_items', []).extend(items)

    def __repr__(self):
        return f'OpaqueObject({self._pickle_class})'


def _opaque(module: str, name: str) -> type:
    return type(name, (OpaqueObject, ), {'_pickle_class': f'{module}.{name}'})


def _reconstructor(cls, base, state):
    """Safe ``copyreg._reconstructor``: only allowed or opaque classes."""
    return cls.__new__(cls) if isinstance(cls, type) and issubclass(
        cls, OpaqueObject) else cls()


def numpy_safe_globals() -> List[Tuple[Any, str]]:
    """(object, dotted name) of the numpy globals that pickles of plain
    arrays, scalars and dtypes name; rebuilding them runs no foreign code."""
    core = np._core if hasattr(np, '_core') else np.core
    globs = [(np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype')]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        globs += [(core.multiarray._reconstruct, f'{module}._reconstruct'),
                  (core.multiarray.scalar, f'{module}.scalar')]
    # numpy >= 1.25 pickles dtypes by their class, e.g. Float64DType
    for name in dir(getattr(np, 'dtypes', None) or ()):
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and name.endswith('DType'):
            globs.append((cls, f'numpy.dtypes.{name}'))
    return globs


_ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('collections', 'defaultdict'): collections.defaultdict,
    ('builtins', 'set'): set,
    ('__builtin__', 'set'): set,
    ('builtins', 'frozenset'): frozenset,
    ('builtins', 'slice'): slice,
    ('builtins', 'complex'): complex,
    ('builtins', 'bytearray'): bytearray,
    ('builtins', 'object'): object,
    ('copyreg', '_reconstructor'): _reconstructor,
    ('_codecs', 'encode'): codecs.encode,  # bytes in protocol-2 pickles
    ('torch._utils', '_rebuild_tensor'): torch._utils._rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'):
    torch._utils._rebuild_parameter_with_state,
    ('torch', 'Size'): torch.Size,
    ('torch', 'device'): torch.device,
    **{
        tuple(name.rsplit('.', 1)): obj
        for obj, name in numpy_safe_globals()
    },
}
_TORCH_DTYPES = {
    name
    for name in dir(torch) if isinstance(getattr(torch, name), torch.dtype)
}


class _RestrictedUnpickler(pickle.Unpickler):

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == 'torch' and name in _TORCH_DTYPES:
            return getattr(torch, name)
        if module == 'torch' and name.endswith('Storage'):
            return getattr(torch, name)
        return _opaque(module, name)


class _RestrictedPickleModule:
    """A ``pickle_module`` for :func:`torch.load` that runs no foreign code."""
    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError
    __name__ = 'mmboat_restricted_pickle'

    @staticmethod
    def load(f, **kwargs):
        return _RestrictedUnpickler(f, **kwargs).load()


def load_checkpoint_file(path: str, map_location='cpu') -> Dict[str, Any]:
    """Read a checkpoint file safely; see the module docstring.

    Args:
        path (str): a ``.pth`` / ``.pth.tar`` file (zip or legacy format).
        map_location: passed to :func:`torch.load`.

    Returns:
        dict: the top-level object of the file.

    Raises:
        CheckpointError: missing, empty, truncated or non-PyTorch files.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file is empty: {path}')
    try:
        obj = torch.load(
            path,
            map_location=map_location,
            pickle_module=_RestrictedPickleModule,
            weights_only=False)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile,
            ValueError, KeyError, AttributeError) as e:
        hint = ''
        if zipfile.is_zipfile(path) or 'zip' in str(e) or isinstance(
                e, EOFError):
            hint = ' The file looks truncated or corrupt: download it again.'
        raise CheckpointError(
            f'cannot read checkpoint {path}: {type(e).__name__}: {e}.{hint}'
        ) from e
    if not isinstance(obj, dict):
        raise CheckpointError(
            f'checkpoint {path} holds a {type(obj).__name__}, not a dict of '
            'weights; it is not a PyTorch training checkpoint')
    return obj


def key_report(title: str, keys, limit: int = 20) -> str:
    """``title (n):`` and the first ``limit`` keys, one per line."""
    if not keys:
        return ''
    shown = '\n'.join(f'  {k}' for k in keys[:limit])
    more = f'\n  ... and {len(keys) - limit} more' if len(keys) > limit \
        else ''
    return f'{title} ({len(keys)}):\n{shown}{more}\n'


#: The published ImageNet-1k checkpoints of the BOAT code release, per
#: backbone type and preset: (model name, file name as published).
PUBLISHED_CHECKPOINTS = {
    'BOATSwinTransformer': {
        'tiny': ('BOAT-Swin-T', 'tiny.pth'),
        'small': ('BOAT-Swin-S', 'small.pth'),
        'base': ('BOAT-Swin-B', 'base.pth'),
    },
    'BOATCSWinTransformer': {
        'tiny': ('BOAT-CSWin-T', 'cswin_tiny.pth.tar'),
        'small': ('BOAT-CSWin-S', 'cswin_small.pth.tar'),
        'base': ('BOAT-CSWin-B', 'cswin_base.pth.tar'),
    },
}


def published_checkpoint(
        backbone: torch.nn.Module) -> Optional[Tuple[str, str]]:
    """(model name, file name) of the published checkpoint with the
    architecture of ``backbone``, or None when no release has it."""
    cls = type(backbone)
    arch = getattr(backbone, 'arch', None)
    for preset, release in PUBLISHED_CHECKPOINTS.get(cls.__name__, {}).items():
        expected = cls.parse_arch(preset)
        if not isinstance(arch, dict):
            arch = {k: getattr(backbone, k, None) for k in expected}
        if all(arch.get(k) == v for k, v in expected.items()):
            return release
    return None


def missing_checkpoint_message(backbone: torch.nn.Module, path: str,
                               converter: str) -> str:
    """Say that ``path`` is missing and which command makes it."""
    release = published_checkpoint(backbone)
    if release is None:
        source = 'SRC.pth'
        what = 'an official checkpoint of this architecture (SRC.pth)'
    else:
        source = release[1]
        what = f'the published {release[0]} weights ({source})'
    where = '' if os.path.isabs(path) else \
        f' (looked for {os.path.abspath(path)})'
    return (f'pretrained checkpoint {path} of {type(backbone).__name__} '
            f'not found{where}. Convert {what} into it with:\n'
            f'    python {converter} {source} {path}\n'
            'or set the backbone\'s init_cfg=None to start from scratch.')


def load_backbone_weights(backbone: torch.nn.Module, path: str,
                          official_prefixes: Tuple[str, ...],
                          converter: str) -> None:
    """Load an mmboat checkpoint into a backbone, every weight checked.

    A missing file raises :class:`CheckpointError` with the converter
    command that makes it (:func:`missing_checkpoint_message`). The file is
    read with :func:`load_checkpoint_file`. With ``backbone.*``
    keys (an mmboat classifier checkpoint) only those are used; otherwise
    ``head.*`` / ``neck.*`` are ignored. Output norms ``norm{i}`` may be
    absent (a classifier has only the last one: they keep their fresh
    initialisation) or unused; any other missing, unexpected or misshapen
    weight raises :class:`CheckpointError` listing them all.

    Args:
        backbone (nn.Module): the model to load into.
        path (str): the checkpoint file.
        official_prefixes (tuple[str]): key prefixes of the unconverted
            release format, rejected with a pointer to ``converter``.
        converter (str): the script that converts the release format.
    """
    from mmengine.logging import print_log
    name = type(backbone).__name__
    if not os.path.isfile(path):
        raise CheckpointError(
            missing_checkpoint_message(backbone, path, converter))
    ckpt = load_checkpoint_file(path)
    state_dict = ckpt.get('state_dict', ckpt.get('model', ckpt))
    if any(k.startswith(official_prefixes) for k in state_dict):
        raise CheckpointError(
            f'{path} is in the official release layout, not mmboat\'s: '
            f'convert it first with {converter}')
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {
            k[len('backbone.'):]: v
            for k, v in state_dict.items() if k.startswith('backbone.')
        }
    else:
        state_dict = {
            k: v
            for k, v in state_dict.items()
            if not k.startswith(('head.', 'neck.'))
        }
    upgrade = getattr(backbone, 'upgrade_state_dict', None)
    if upgrade is not None:  # keys written by older versions of the model
        upgrade(state_dict)
    own = backbone.state_dict()
    is_output_norm = re.compile(r'norm\d+\.').match
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    fresh = [k for k in missing if is_output_norm(k)]
    unused = [k for k in unexpected if is_output_norm(k)]
    missing = [k for k in missing if k not in fresh]
    unexpected = [k for k in unexpected if k not in unused]
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items() if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f'{path} does not fit this {name}:\n' +
            key_report('missing weights', missing) +
            key_report('unexpected weights', unexpected) +
            key_report('shape mismatches', mismatched) +
            'Check arch and fsla_blocks against the checkpoint (its meta '
            'says how it was converted).')
    ours = {k: v for k, v in state_dict.items() if k in own}
    backbone.load_state_dict(ours, strict=False)

    def norms(keys):
        return sorted({k.split('.')[0] for k in keys})

    print_log(
        f'{name}: loaded {len(state_dict) - len(unused)} tensors from {path}' +
        (f'; output norms not in the checkpoint start fresh: '
         f'{norms(fresh)}' if fresh else '') +
        (f'; unused output norms: {norms(unused)}' if unused else ''),
        logger='current')
