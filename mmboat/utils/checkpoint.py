"""Loading checkpoint files without executing code from them.

``torch.load(weights_only=False)`` runs whatever a pickle asks for, and
``weights_only=True`` refuses the objects that real release files carry (a
yacs ``CfgNode`` in BOAT-Swin files, an ``argparse.Namespace`` in timm
files). :func:`load_checkpoint_file` unpickles with an allow-list: tensors,
storages and plain containers are rebuilt, and every other class named in the
file becomes an inert :class:`OpaqueObject` that records its arguments and
state and runs nothing.

This module reads files and compares weights; it imports nothing of mmboat
and knows no model family and no release format. What a file that cannot
be loaded is (an official release file to convert, another family's
weights) is said by the :class:`CheckpointFormats` that the converters
install (:func:`use_checkpoint_formats`; ``import mmboat`` does).
"""
import codecs
import collections
import json
import logging
import os
import pickle
import re
import zipfile
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, truncated or of the wrong kind."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint holds objects whose unpickling could run code."""


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


#: ``mmboat://NAME`` names the file NAME shipped in the package's
#: ``checkpoints/`` folder (e.g. ``mmboat://tiny_shapes/...pth``), wherever
#: the package is installed and whatever the working directory
SHIPPED_SCHEME = 'mmboat://'
SHIPPED_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'checkpoints')

#: what each shipped file is: config, steps, val top-1, sha256, ...
SHIPPED_MANIFEST = os.path.join(SHIPPED_DIR, 'manifest.json')


def shipped_backbone_entry(cfg) -> Optional[dict]:
    """The :data:`SHIPPED_MANIFEST` entry of the shipped checkpoint that the
    backbone of config ``cfg`` starts from (``init_cfg`` with an
    ``mmboat://`` checkpoint), or None when it starts from none."""
    init = cfg.model.backbone.get('init_cfg') or {}
    path = init.get('checkpoint') if isinstance(init, dict) else None
    if not (isinstance(path, str) and path.startswith(SHIPPED_SCHEME)):
        return None
    with open(SHIPPED_MANIFEST) as f:
        return json.load(f)[path[len(SHIPPED_SCHEME):]]


def resolve_checkpoint_path(path: str) -> str:
    """The file behind ``path``: ``mmboat://NAME`` is NAME under
    :data:`SHIPPED_DIR`; any other path is returned as it is."""
    if isinstance(path, str) and path.startswith(SHIPPED_SCHEME):
        return os.path.join(SHIPPED_DIR, path[len(SHIPPED_SCHEME):])
    return path


def looked_for(path: str) -> str:
    """`` (looked for /absolute/path)`` for a relative ``path``, else ''."""
    return '' if os.path.isabs(path) else \
        f' (looked for {os.path.abspath(path)})'


def checkpoint_not_found(path: str) -> CheckpointNotFoundError:
    """The error for a checkpoint file ``path`` that does not exist."""
    return CheckpointNotFoundError(
        f'checkpoint file {path} does not exist{looked_for(path)}')


def checkpoint_is_a_directory(path: str) -> CheckpointError:
    """The error for a checkpoint ``path`` that is a directory."""
    return CheckpointError(
        f'checkpoint {path} is a directory, not a checkpoint file: give the '
        'path of the .pth file itself')


#: how every zip archive (``torch.save``'s format since torch 1.6) starts
ZIP_MAGIC = b'PK\x03\x04'


def _unreadable(path: str, error: Exception) -> CheckpointError:
    """A :class:`CheckpointError` saying why ``path`` cannot be read."""
    with open(path, 'rb') as f:
        head = f.read(len(ZIP_MAGIC))
    if head == ZIP_MAGIC:
        what = ('is a damaged zip archive: the file looks truncated or '
                'corrupt (an interrupted download or save?); download or '
                'save it again')
    elif head[:1] == b'\x80':
        what = ('is a damaged pickle: the file looks truncated or corrupt '
                '(an interrupted download or save?); download or save it '
                'again')
    else:
        what = ('is not a PyTorch checkpoint: it is neither a zip archive '
                "(torch.save's format) nor a pickle")
    return CheckpointError(f'cannot read checkpoint {path}: it {what} '
                           f'({type(error).__name__}: {error})')


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
    path = resolve_checkpoint_path(path)
    if os.path.isdir(path):
        raise checkpoint_is_a_directory(path)
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f'checkpoint file not found: {path}')
    if os.path.getsize(path) == 0:
        raise CheckpointError(f'checkpoint file is empty: {path}')
    try:
        obj = torch.load(
            path,
            map_location=map_location,
            pickle_module=_RestrictedPickleModule,
            weights_only=False)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile,
            ValueError, KeyError, AttributeError, OSError) as e:
        raise _unreadable(path, e) from e
    if not isinstance(obj, dict):
        raise CheckpointError(
            f'checkpoint {path} holds a {type(obj).__name__}, not a dict of '
            'weights; it is not a PyTorch training checkpoint')
    return obj


def opaque_classes(obj, limit: int = 10000) -> List[str]:
    """The classes of the :class:`OpaqueObject` s inside ``obj`` (what
    :func:`load_checkpoint_file` read), sorted, each once."""
    found, todo = set(), [obj]
    while todo and limit > 0:
        limit -= 1
        item = todo.pop()
        if isinstance(item, OpaqueObject):
            found.add(item._pickle_class)
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo.extend(item)
    return sorted(found)


class CheckpointFormats:
    """What this module's messages can say about a checkpoint, and which
    models :func:`check_model_fits` checks: an extension point.

    This base knows no format and checks no model. mmboat's converters,
    which detect the formats of the official releases, install theirs
    (:class:`mmboat.converters.core.OfficialFormats`) with
    :func:`use_checkpoint_formats` when mmboat is imported.
    """

    def checks(self, module: torch.nn.Module) -> bool:
        """Whether a model holding ``module`` loads only checkpoints whose
        weights fit it (:func:`check_model_fits`)."""
        return False

    def is_official(self, ckpt) -> bool:
        """Whether ``ckpt`` is an unconverted official release file."""
        return False

    def describe(self,
                 ckpt,
                 path: str,
                 module: Optional[torch.nn.Module] = None,
                 prefix: str = 'backbone.') -> str:
        """What ``ckpt`` (read from ``path``) is when it is not a
        checkpoint of ``module`` (its weights under ``prefix``), with what
        to do; '' when there is nothing to say."""
        return ''


_formats = CheckpointFormats()


def use_checkpoint_formats(formats: CheckpointFormats) -> None:
    """Let :func:`unloadable_checkpoint_error` and :func:`check_model_fits`
    use ``formats``."""
    global _formats
    _formats = formats


def checkpoint_formats() -> CheckpointFormats:
    """The :class:`CheckpointFormats` in use."""
    return _formats


def unloadable_checkpoint_error(path: str,
                                error: Exception) -> CheckpointError:
    """Why torch's weights-only loader refused ``path`` (with ``error``),
    found out without running code from it: the file is unreadable
    (:func:`load_checkpoint_file` says why), or it holds objects other than
    tensors and training state; for an official release file, with the
    converter command that makes an mmboat checkpoint of it
    (:class:`CheckpointFormats`)."""
    try:
        ckpt = load_checkpoint_file(path)
    except CheckpointError as e:
        return e
    classes = opaque_classes(ckpt)
    if classes:
        shown = ', '.join(
            classes[:10]) + (', ...' if len(classes) > 10 else '')
        objects = f'objects of {shown}'
    else:  # what torch refused, in its own words
        lines = re.sub(r'\x1b\[[0-9;]*m', '', str(error)).splitlines() or ['']
        line = next((x for x in lines if 'WeightsUnpickler' in x), lines[0])
        objects = f'objects ({type(error).__name__}: {line.strip()})'
    advice = _formats.describe(ckpt, path, None) or (
        'Load only its weights: re-save them from a trusted environment, '
        "e.g. torch.save({'state_dict': model.state_dict()}, 'new.pth').")
    return UnsafeCheckpointError(
        f'{path} holds {objects} besides tensors and MMEngine training '
        'state; mmboat loads checkpoints without running code from them, '
        f'and unpickling these could run code from the file.\n{advice}')


def weights_of(ckpt, path: str, places=('state_dict', )) -> dict:
    """The named weights of a checkpoint: its first entry of ``places``
    that it has (MMEngine reads ``state_dict``), else its top level.
    Raises :class:`CheckpointError` unless they are a dict whose names
    are all strings."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict of '
            'weights; it is not a PyTorch training checkpoint')
    where = next((p for p in places if p in ckpt), None)
    state_dict = ckpt if where is None else ckpt[where]
    what = 'its top level' if where is None else f"its '{where}'"
    if not isinstance(state_dict, dict):
        raise CheckpointError(
            f'checkpoint {path}: {what} holds a '
            f'{type(state_dict).__name__}, not named weights')
    bad = [k for k in state_dict if not isinstance(k, str)]
    if bad:
        shown = ', '.join(repr(k) for k in bad[:5])
        more = ', ...' if len(bad) > 5 else ''
        raise CheckpointError(
            f'checkpoint {path}: {what} holds weights whose names are not '
            f"strings ({shown}{more}): it is not a model's state dict, whose "
            "names are strings such as 'backbone.patch_embed.norm.weight'")
    return state_dict


def key_report(title: str, keys, limit: int = 20) -> str:
    """``title (n):`` and the first ``limit`` keys, one per line."""
    if not keys:
        return ''
    shown = '\n'.join(f'  {k}' for k in keys[:limit])
    more = f'\n  ... and {len(keys) - limit} more' if len(keys) > limit \
        else ''
    return f'{title} ({len(keys)}):\n{shown}{more}\n'


class NonFiniteWeightsError(CheckpointError):
    """A checkpoint holds weights with NaN or Inf values."""


def _is_finite(tensor: torch.Tensor) -> bool:
    """Whether every value of a float tensor is finite: its sum is NaN or
    Inf when one is (one reduction, no mask: a few percent of the time it
    takes to read a checkpoint); a finite tensor whose sum overflows is
    checked value by value."""
    if bool(torch.isfinite(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


def non_finite_weights(state_dict: dict) -> List[str]:
    """The names of the floating-point tensors of ``state_dict`` that hold
    a NaN or an Inf, in its order (checked on the device they are on)."""
    return [
        k for k, v in state_dict.items()
        if torch.is_tensor(v) and (v.is_floating_point() or v.is_complex())
        and v.numel() and not _is_finite(v)
    ]


#: what to do about a file with non-finite weights
NON_FINITE_FIX = ('the file is damaged, or was saved by a run whose '
                  'training diverged; re-convert it from the published '
                  'checkpoint, or use an earlier checkpoint of the run. '
                  'Nothing was loaded')


def check_finite_weights(state_dict: dict,
                         path: str,
                         fix: str = NON_FINITE_FIX,
                         shown: int = 5) -> None:
    """Refuse ``state_dict`` (read from ``path``) when any of its floating
    tensors holds NaN or Inf: a :class:`NonFiniteWeightsError` with their
    count, the first ``shown`` names and ``fix``."""
    bad = non_finite_weights(state_dict)
    if bad:
        names = ', '.join(bad[:shown]) + (', ...' if len(bad) > shown else '')
        count = f'{len(bad)} tensor{"s" if len(bad) > 1 else ""} ' \
            f'hold{"" if len(bad) > 1 else "s"}'
        raise NonFiniteWeightsError(
            f'checkpoint {path}: {count} NaN or Inf: {names}: {fix}.')


class Fit(NamedTuple):
    """How a state dict fits a model's: the names of the model's weights
    it lacks, of its weights the model does not have, and a line per
    weight of the wrong shape (or not a tensor)."""
    missing: List[str]
    unexpected: List[str]
    mismatched: List[str]

    def __bool__(self):
        """True when something does not fit."""
        return bool(self.missing or self.unexpected or self.mismatched)

    def report(self) -> str:
        return (key_report('missing weights', self.missing) +
                key_report('unexpected weights', self.unexpected) +
                key_report('shape mismatches', self.mismatched))


def compare_weights(own: Dict[str, torch.Tensor], state_dict: dict) -> Fit:
    """How ``state_dict`` fits ``own`` (a model's state dict)."""
    mismatched = []
    for k, v in state_dict.items():
        if k not in own:
            continue
        if not torch.is_tensor(v):
            mismatched.append(f'{k}: checkpoint holds a {type(v).__name__}, '
                              'not a tensor')
        elif v.shape != own[k].shape:
            mismatched.append(f'{k}: checkpoint {tuple(v.shape)} vs model '
                              f'{tuple(own[k].shape)}')
    return Fit([k for k in own if k not in state_dict],
               [k for k in state_dict if k not in own], mismatched)


#: the config key that lets :func:`check_model_fits` load a checkpoint
#: that does not fit (``--allow-partial`` of tools/train.py, tools/test.py)
PARTIAL_LOAD_KEY = 'allow_partial_load'
#: how to load a checkpoint that does not fit, on purpose
PARTIAL_LOAD_HINT = (
    'To load only the weights that fit and keep the others as initialised, '
    'pass --allow-partial (tools/train.py, tools/test.py, the demo, '
    f'export_onnx.py, visualize_clusters.py) or set {PARTIAL_LOAD_KEY} = '
    'True in the config.')


def check_model_fits(model: torch.nn.Module,
                     ckpt: dict,
                     path: str,
                     revise_keys=(),
                     allow_partial: bool = False) -> None:
    """Refuse to load ``ckpt`` (read from ``path``) into a ``model`` that
    holds an mmboat backbone (a module that the :class:`CheckpointFormats`
    in use checks) unless its weights fit, name for name and shape for
    shape.

    The names are those of ``ckpt['state_dict']`` (or its top level, as
    MMEngine reads them) after ``revise_keys`` (MMEngine's ``(pattern,
    replacement)`` pairs). A model without an mmboat backbone is not
    checked for fit; for every model, weights that hold NaN or Inf are
    refused (:func:`check_finite_weights`), ``allow_partial`` or not.

    Raises:
        NonFiniteWeightsError: weights hold NaN or Inf.
        CheckpointError: the weights do not fit: the missing, unexpected
            and misshapen ones, and what the file is when it is an
            official release file (with the converter command) or holds
            another family's weights. With ``allow_partial`` the same is
            logged as a warning instead.
    """
    from mmengine.logging import print_log

    state_dict = weights_of(ckpt, path)
    check_finite_weights(state_dict, path)
    formats = _formats
    backbones = [(f'{n}.' if n else '', m) for n, m in model.named_modules()
                 if formats.checks(m)]
    if not backbones:
        return
    for pattern, replacement in revise_keys:
        state_dict = {
            re.sub(pattern, replacement, k): v
            for k, v in state_dict.items()
        }
    fit = compare_weights(model.state_dict(), state_dict)
    if not fit:
        return
    prefix, backbone = backbones[0]
    what = formats.describe(ckpt, path, backbone, prefix)
    # init_cfg (the backbone's loader) takes the backbone's weights when
    # they fit but for the output norms
    in_backbone = re.compile(re.escape(prefix) + r'(?!norm\d+\.)').match
    if not what and prefix and any(map(in_backbone, state_dict)) and not any(
            map(in_backbone, fit.missing + fit.unexpected + fit.mismatched)):
        what = (f'Its {prefix[:-1]} weights fit: to initialise only the '
                f'{prefix[:-1]} from it, set model.{prefix}init_cfg='
                f"dict(type='Pretrained', checkpoint='{path}').")
    message = (f'checkpoint {path} does not fit the model '
               f'({type(model).__name__} with a {type(backbone).__name__} '
               f'{prefix[:-1] or "backbone"}):\n' +
               (f'{what}\n' if what else '') +
               ('' if formats.is_official(ckpt) else fit.report()))
    if allow_partial:
        print_log(
            message + f'{PARTIAL_LOAD_KEY} is set: the weights that fit are '
            'loaded, the others keep their initialisation.',
            logger='current',
            level=logging.WARNING)
        return
    raise CheckpointError(message + 'Nothing was loaded. ' + PARTIAL_LOAD_HINT)
