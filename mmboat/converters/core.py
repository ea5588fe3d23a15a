"""The core shared by the converters of the published checkpoints, and
checkpoint format detection.

Format detection (:func:`official_formats`, :func:`mmboat_family`,
:func:`what_checkpoint_is`) tells an unconverted official release file of
each family (:mod:`mmboat.families`) from an mmboat checkpoint, and which
family an mmboat checkpoint holds; the backbones' loader, the timm models
and, through :class:`OfficialFormats`, :mod:`mmboat.utils.checkpoint` use
it to say what a file that does not fit is and how to convert it.

Converting an official release file into an mmboat checkpoint goes the
same way for every family (:func:`convert`):

1. :func:`read_checkpoint`: a path is read with
   :func:`mmboat.utils.load_checkpoint_file`, which runs no code from it;
2. :func:`pick_weights`: the weights are picked out of the file, without
   the buffers that are not weights (:data:`NON_WEIGHTS`); a file of
   another family or one already converted is refused, and so are weights
   that hold NaN or Inf (a damaged file);
3. the family's converter reads the architecture from the weights
   (:attr:`FamilyConverter.infer_arch`);
4. :func:`map_weights`: official names become mmboat names
   (:class:`KeyMap`);
5. :func:`fresh_fsla_weights`: a plain Swin / CSWin source gets FSLA
   weights initialised as in training from scratch;
6. :func:`verify`: the result must fit the backbone, built on the ``meta``
   device, and a linear head, key for key and shape for shape;
7. :func:`build_meta`.

The result has the keys of an mmpretrain ``ImageClassifier`` with this
backbone (``out_indices=(last, )``, the final norm as ``norm{last}``),
``GlobalAveragePooling`` and ``LinearClsHead``. Every failure raises
:class:`mmboat.utils.CheckpointError` (a ``ValueError``); lists of weights
are written with :func:`mmboat.utils.key_report`.

The converters reach the backbone classes through their descriptions
(:attr:`mmboat.families.Family.backbone`), never by importing them: the
backbones' loader imports this module.
"""
import os
import re
from collections import OrderedDict
from typing import Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import torch

from mmboat.families import FAMILIES, Family, family_of
from mmboat.utils import (CheckpointError, CheckpointFormats, key_report,
                          load_checkpoint_file)
from mmboat.utils.checkpoint import check_finite_weights

#: buffers of the official models that are not weights
NON_WEIGHTS = ('relative_position_index', 'attn_mask')
#: where a training file keeps its weights, in the order they are looked for
WEIGHT_PLACES = ('state_dict', 'model')
#: where a timm training file keeps its EMA weights
EMA_PLACE = 'state_dict_ema'
#: name of the file's top level when it holds the weights itself
TOP_LEVEL = '<top level>'
#: top-level entries of a training file copied into ``meta['source_*']``
SOURCE_FIELDS = ('arch', 'epoch', 'max_accuracy')
#: mmboat names of the FSLA weights, and of any weight of a block
FSLA_KEY = re.compile(r'\.(fsla|norm_fsla)\.')
BLOCK_NAME = re.compile(r'backbone\.stages\.(\d+)\.blocks\.(\d+)\.')
#: name prefixes of mmboat weights (a model's, or a bare backbone's), which
#: no official file has
MMBOAT_PREFIXES = ('backbone.', 'stages.')


class _Template:
    """A name prefix with integer fields: ``{i}``, or ``{i+1}`` for a
    field written one higher."""

    def __init__(self, text: str):
        parts = re.split(r'\{(\w+)(?:\+(\d+))?\}', text)
        self.literals = parts[0::3]
        self.fields = [(name, int(offset or 0))
                       for name, offset in zip(parts[1::3], parts[2::3])]
        self.names = {name for name, _ in self.fields}
        self.regex = re.compile(
            re.escape(self.literals[0]) + ''.join(
                fr'(?P<{name}>\d+)' + re.escape(literal)
                for (name, _), literal in zip(self.fields, self.literals[1:])))

    def match(self, key: str) -> Optional[Tuple[dict, str]]:
        """(field values, rest of ``key``) if ``key`` starts with this."""
        found = self.regex.match(key)
        if found is None:
            return None
        values = {name: int(found[name]) - off for name, off in self.fields}
        return values, key[found.end():]

    def format(self, values: dict) -> str:
        return self.literals[0] + ''.join(
            f'{values[name] + off}{literal}'
            for (name, off), literal in zip(self.fields, self.literals[1:]))


class KeyMap:
    """Official <-> mmboat weight names, from a table of name prefixes.

    Each line of ``table`` holds an official prefix and the prefix of the
    backbone weight it becomes (``backbone.`` is added), with the fields
    ``{i}`` (stage, from 0; ``{i+1}`` counts from 1), ``{j}`` (block) and
    ``{last}`` (the last stage). The first line that fits a name applies;
    a name that fits no line is unknown. The classification head
    (``head.`` -> ``head.fc.``) is the same in every family.
    """

    def __init__(self, table: str):
        rules = [line.split() for line in table.strip().splitlines()]
        rules = [(old, f'backbone.{new}') for old, new in rules]
        rules.append(('head.', 'head.fc.'))
        self.rules = [(_Template(old), _Template(new)) for old, new in rules]

    def to_mmboat(self, key: str, num_stages: int) -> Optional[str]:
        """mmboat name of an official weight; None if no line knows it."""
        return self._rename(key, 0, num_stages - 1)

    def knows_mmboat(self, key: str) -> bool:
        """Whether a line of the table knows this mmboat weight name."""
        return self._rename(key, 1) is not None

    def to_official(self, key: str) -> str:
        """Official name of an mmboat weight (for messages)."""
        return self._rename(key, 1) or key

    def _rename(self, key, src, last=None):
        for rule in self.rules:
            found = rule[src].match(key)
            if found is not None:
                values, rest = found
                values.setdefault('last', last)
                return rule[1 - src].format(values) + rest
        return None

    def blocks(self, weights) -> Dict[Tuple[int, int], List[str]]:
        """(stage, block) -> the mmboat names of its official weights."""
        blocks = {}
        for key in weights:
            new = self.to_mmboat(key, num_stages=0) or ''  # {last} unused
            found = BLOCK_NAME.match(new)
            if found:
                block = (int(found[1]), int(found[2]))
                blocks.setdefault(block, []).append(new)
        return blocks

    def depths(self, weights) -> Tuple[int, ...]:
        """Blocks per stage, read from the official block names."""
        stages = {}
        for i, j in self.blocks(weights):
            stages.setdefault(i, set()).add(j)
        depths = tuple(
            max(stages.get(i, {-1})) + 1
            for i in range(max(stages, default=-1) + 1))
        if not depths or min(depths) < 1:
            found = {i: sorted(b) for i, b in sorted(stages.items())}
            raise CheckpointError('missing the blocks of whole stages '
                                  f'(blocks found per stage: {found})')
        return depths

    def fsla_blocks(self, weights) -> Set[Tuple[int, int]]:
        """The (stage, block)s with FSLA weights."""
        return {
            block
            for block, names in self.blocks(weights).items() if any(
                FSLA_KEY.search(name) for name in names)
        }


class Arch(NamedTuple):
    """What a family reads from the weights of an official file."""
    #: arguments of the backbone that the weights fill
    kwargs: dict
    #: whether the file has FSLA weights (BOAT) or not (plain Swin / CSWin)
    has_fsla: bool
    #: family-specific entries of the converted file's ``meta``
    meta: dict
    #: the architecture in a few words, for messages
    summary: str


def _same(key: str, value: torch.Tensor) -> torch.Tensor:
    return value


class FamilyConverter:
    """How the official files of one family become mmboat checkpoints:
    what the core cannot know alone. The family's facts (name, backbone,
    presets, official prefixes, converter script) are its description.

    Args:
        family (Family): the description (:mod:`mmboat.families`).
        key_map (KeyMap): official <-> mmboat names.
        infer_arch (callable): ``infer_arch(weights, **options) -> Arch``.
        describe (callable): ``describe(meta) -> str``, the backbone config
            of a converted file as Python text.
        transform (callable): ``transform(official_key, value)``, the
            value in mmboat's layout. Default: the value itself.
    """

    def __init__(self,
                 family: Family,
                 key_map: KeyMap,
                 infer_arch: Callable[..., Arch],
                 describe: Callable[[dict], str],
                 transform: Callable = _same):
        self.family, self.key_map = family, key_map
        self.infer_arch, self.describe = infer_arch, describe
        self.transform = transform


#: the converters, by family key ('boat-swin', ...)
CONVERTERS: Dict[str, FamilyConverter] = {}


def register(converter: FamilyConverter) -> FamilyConverter:
    CONVERTERS[converter.family.key] = converter
    return converter


def need(weights: Dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """``weights[key]``, or a :class:`CheckpointError` that names it."""
    if key not in weights:
        raise CheckpointError(f'missing weights: {key}')
    return weights[key]


def match_preset(family: Family, **fields) -> Optional[str]:
    """The first preset of ``family.arch_zoo`` with these values."""

    def plain(value):
        return tuple(value) if isinstance(value, (list, tuple)) else value

    for name, preset in family.arch_zoo.items():
        if all(plain(preset[k]) == plain(v) for k, v in fields.items()):
            return name
    return None


def read_checkpoint(checkpoint) -> dict:
    """A path (read safely) or an already loaded checkpoint dict."""
    if isinstance(checkpoint, (str, os.PathLike)):
        return load_checkpoint_file(os.fspath(checkpoint))
    if not isinstance(checkpoint, dict):
        raise CheckpointError('expected a checkpoint file or dict, got '
                              f'{type(checkpoint).__name__}')
    return checkpoint


def _holds(weights, prefixes: Tuple[str, ...]) -> bool:
    return isinstance(weights, dict) and any(
        isinstance(k, str) and k.startswith(prefixes) for k in weights)


def _places(ckpt: dict) -> Dict[str, object]:
    """Where a file may keep weights: :data:`WEIGHT_PLACES`,
    :data:`EMA_PLACE` and the top level."""
    places = {w: ckpt.get(w) for w in (*WEIGHT_PLACES, EMA_PLACE)}
    places[TOP_LEVEL] = ckpt
    return places


def official_formats(ckpt: dict) -> List[Tuple[Family, str]]:
    """Format detection: ``(family, where)`` for every place of ``ckpt``
    that holds weights of an official file of a family of
    :data:`mmboat.families.FAMILIES` (its ``official_prefixes``); empty for
    an mmboat file or any other."""
    if not isinstance(ckpt, dict):
        return []
    return [(family, where) for family in FAMILIES.values()
            for where, weights in _places(ckpt).items()
            if _holds(weights, family.official_prefixes)
            and not _holds(weights, MMBOAT_PREFIXES)]


def mmboat_family(state_dict: dict, prefix: str = '') -> Optional[Family]:
    """The family whose mmboat backbone names (the :class:`KeyMap` of its
    converter) the weights under ``prefix`` have: the one that knows the
    most of them, when it knows more than any other family; None
    otherwise."""
    keys = [
        'backbone.' + k[len(prefix):] for k in state_dict
        if isinstance(k, str) and k.startswith(prefix)
    ]
    known = sorted(((sum(c.key_map.knows_mmboat(k) for k in keys), key)
                    for key, c in CONVERTERS.items()),
                   reverse=True)
    if not known or known[0][0] == 0 or (len(known) > 1
                                         and known[0][0] == known[1][0]):
        return None
    return FAMILIES[known[0][1]]


def _converted_name(path: str) -> str:
    name = os.path.basename(path)
    for ext in ('.pth.tar', '.pth', '.tar', '.pt', '.bin'):
        if name.endswith(ext):
            name = name[:-len(ext)]
            break
    return f'checkpoints/{name}_mmboat.pth'


def what_checkpoint_is(ckpt: dict,
                       path: str,
                       backbone=None,
                       prefix: str = 'backbone.') -> str:
    """Say what ``ckpt`` (read from ``path``) is when it is not an mmboat
    checkpoint of ``backbone`` (an mmboat backbone, or None): an official
    file of a family of :data:`mmboat.families.FAMILIES` (and the converter
    command that makes an mmboat checkpoint of it), or an mmboat checkpoint
    of another family (its weights under ``prefix``). '' when it is
    neither."""
    model = family_of(backbone) if backbone is not None else None
    this = '' if model is None else \
        f'this model\'s backbone is {model.backbone_type} ({model.name})'
    found = official_formats(ckpt)
    if found:
        family, where = found[0]
        text = (f'{path} is an official {family.name} / {family.plain_name} '
                f"release file ({family.file_format}, weights under "
                f"'{where}'), not an mmboat checkpoint")
        command = (f'    python {family.converter} {path} '
                   f'{_converted_name(path)}')
        if model is None or model is family:
            return f'{text}: convert it first with\n{command}'
        return (f'{text}, and of the other family: {this}. Converted with\n'
                f'{command}\nit initialises a {family.backbone_type}; '
                f'for this model, convert a {model.name} / '
                f'{model.plain_name} file with {model.converter}.')
    state_dict = ckpt.get('state_dict', ckpt)
    other = mmboat_family(state_dict, prefix) if isinstance(state_dict,
                                                            dict) else None
    if model is None or other is None or other is model:
        return ''
    return (f'{path} holds {other.name} weights (the mmboat layout of '
            f'{other.backbone_type}), but {this}: use it with a '
            f'{other.backbone_type} config, or give a {model.name} '
            f'checkpoint (convert an official {model.name} / '
            f'{model.plain_name} file with {model.converter}).')


def pick_weights(ckpt: dict,
                 family: Family,
                 use_ema: bool = False) -> Tuple[Dict[str, torch.Tensor], str]:
    """The official weights of a release file of ``family`` and where they
    were.

    Looks in :data:`WEIGHT_PLACES`, then the top level (or only in
    :data:`EMA_PLACE` with ``use_ema``), and drops :data:`NON_WEIGHTS`.
    A file of another family (:func:`official_formats`), an mmboat file or
    one without this family's weights raises :class:`CheckpointError`.
    """
    places = _places(ckpt)
    for other, where in official_formats(ckpt):
        if other is not family:
            raise CheckpointError(
                f'this is a {other.name} checkpoint ({other.file_format}, '
                f"'{other.official_prefixes[0]}*' weights under '{where}'), "
                f'not a {family.name} one: use {other.converter}')
    if any(_holds(sd, MMBOAT_PREFIXES) for sd in places.values()):
        raise CheckpointError(
            'this is already an mmboat checkpoint (backbone.* or stages.* '
            'keys): load it directly, no conversion needed')
    found = [
        w for w in (*WEIGHT_PLACES, TOP_LEVEL)
        if _holds(places[w], family.official_prefixes)
    ]
    if use_ema:
        if EMA_PLACE not in ckpt:
            raise CheckpointError(
                f"--ema asked for '{EMA_PLACE}', but the file has none "
                f'(top-level keys: {sorted(map(str, ckpt))})')
        found = [EMA_PLACE]
    elif not found and _holds(places[EMA_PLACE], family.official_prefixes):
        raise CheckpointError(
            f"the file has only '{EMA_PLACE}' weights: convert with --ema")
    elif not found:
        raise CheckpointError(
            f'no {family.plain_name} / {family.name} weights found '
            f'(expected a file in the {family.file_format} with '
            f"'{family.official_prefixes[0]}*' weights); top-level keys: "
            f'{sorted(map(str, ckpt))[:20]}')
    where = found[0]
    if not isinstance(places[where], dict):
        raise CheckpointError(f"'{where}' holds a "
                              f'{type(places[where]).__name__}, not weights')
    weights = {
        k: v
        for k, v in places[where].items()
        if not (isinstance(k, str) and k.endswith(NON_WEIGHTS))
    }
    not_tensors = [
        k for k, v in weights.items()
        if not (isinstance(k, str) and torch.is_tensor(v))
    ]
    if not_tensors:
        raise CheckpointError(
            f"'{where}' holds entries that are not named tensors: "
            f'{not_tensors}')
    return weights, where


def map_weights(weights: Dict[str, torch.Tensor], converter: FamilyConverter,
                num_stages: int) -> Tuple[Dict[str, torch.Tensor], list]:
    """(mmboat state dict, official names that no rule knows)."""
    state_dict, unknown = OrderedDict(), []
    for key, value in weights.items():
        new = converter.key_map.to_mmboat(key, num_stages)
        if new is None:
            unknown.append(key)
            continue
        try:
            value = converter.transform(key, value)
        except (RuntimeError, ValueError):
            pass  # a shape the transform cannot take: verify() reports it
        state_dict[new] = value.detach().clone().contiguous()
    return state_dict, unknown


def fresh_fsla_weights(backbone: type, kwargs: dict,
                       seed: int) -> Dict[str, torch.Tensor]:
    """FSLA weights of ``backbone(**kwargs)`` as in training from scratch,
    drawn from ``seed`` (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = backbone(**kwargs)
        model.init_weights()
    return OrderedDict((f'backbone.{k}', v)
                       for k, v in model.state_dict().items()
                       if FSLA_KEY.search(k))


def verify(state_dict: Dict[str, torch.Tensor], unknown: list,
           converter: FamilyConverter, kwargs: dict, title: str) -> None:
    """Raise :class:`CheckpointError` (``title`` and a key report) unless
    ``state_dict`` fills the family's ``backbone(**kwargs)``, built on the
    ``meta`` device, and, if it has one, a linear head: no missing,
    unexpected (``unknown`` included) or misshapen weight."""
    with torch.device('meta'):
        model = converter.family.backbone(**kwargs)
    expected = {
        f'backbone.{k}': tuple(v.shape)
        for k, v in model.state_dict().items()
    }
    head = state_dict.get('head.fc.weight', state_dict.get('head.fc.bias'))
    if head is not None:  # no head is fine for a backbone, half a head not
        num_classes = head.shape[0]
        expected['head.fc.weight'] = (num_classes, model.num_features[-1])
        expected['head.fc.bias'] = (num_classes, )
    name = converter.key_map.to_official
    missing = [name(k) for k in expected if k not in state_dict]
    unexpected = list(unknown) + [
        name(k) for k in state_dict if k not in expected
    ]
    mismatched = [
        f'{name(k)}: {tuple(v.shape)}, expected {expected[k]}'
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(f'{title}:\n' +
                              key_report('missing weights', missing) +
                              key_report('unexpected weights', unexpected) +
                              key_report('shape mismatches', mismatched))


def build_meta(family: Family, arch: Arch, ckpt: dict, where: str,
               state_dict: Dict[str, torch.Tensor], fresh_keys: list) -> dict:
    """The ``meta`` of a converted file: its source, the family's
    architecture entries, ``num_classes`` (None without a head), the fresh
    weights and the :data:`SOURCE_FIELDS` of the file."""
    head = state_dict.get('head.fc.weight')
    meta = dict(
        source=(family.name if arch.has_fsla else family.plain_name).lower(),
        source_weights=where,
        **arch.meta,
        num_classes=None if head is None else int(head.shape[0]),
        fresh_keys=list(fresh_keys))
    for k in SOURCE_FIELDS:
        if isinstance(ckpt.get(k), (str, int, float)):
            meta[f'source_{k}'] = ckpt[k]
    return meta


def convert(converter: FamilyConverter,
            checkpoint,
            seed: int = 0,
            use_ema: bool = False,
            **options) -> dict:
    """Convert an official file of ``converter.family`` into an mmboat
    checkpoint.

    Args:
        converter (FamilyConverter): the converter of the file's family.
        checkpoint (str | os.PathLike | dict): the file, or what
            :func:`mmboat.utils.load_checkpoint_file` read from it.
        seed (int): seed of the fresh FSLA weights of a plain source.
        use_ema (bool): convert the EMA weights (:data:`EMA_PLACE`).
        **options: passed to ``converter.infer_arch`` (``arch`` for
            BOAT-Swin).

    Returns:
        dict: ``{'meta': ..., 'state_dict': ...}``, see the module
        docstring and :func:`build_meta`.

    Raises:
        CheckpointError: for everything that stops the conversion.
    """
    family = converter.family
    ckpt = read_checkpoint(checkpoint)
    weights, where = pick_weights(ckpt, family, use_ema)
    check_finite_weights(
        weights,
        checkpoint if isinstance(checkpoint, (str, os.PathLike)) else
        f"the checkpoint's '{where}'",
        fix='the file is damaged (an interrupted download?); download the '
        'published checkpoint again and convert that')
    try:
        arch = converter.infer_arch(weights, **options)
        kwargs = dict(arch.kwargs)
        num_stages = len(kwargs['arch']['depths'])
        kwargs['out_indices'] = (num_stages - 1, )
        state_dict, unknown = map_weights(weights, converter, num_stages)
        fresh = {} if arch.has_fsla else fresh_fsla_weights(
            family.backbone, kwargs, seed)
        state_dict.update(fresh)
        kind = family.name if arch.has_fsla else family.plain_name
        verify(state_dict, unknown, converter, kwargs,
               f"'{where}' is not a complete {kind} model ({arch.summary})")
    except CheckpointError:
        raise
    except ValueError as e:  # the backbone refuses the architecture
        raise CheckpointError(f"'{where}': {e}") from e
    meta = build_meta(family, arch, ckpt, where, state_dict, list(fresh))
    return dict(meta=meta, state_dict=state_dict)


class OfficialFormats(CheckpointFormats):
    """The :class:`mmboat.utils.CheckpointFormats` of mmboat: the formats
    of the official releases (format detection above), and a check of
    every model that holds an mmboat backbone. ``import mmboat`` installs
    :data:`OFFICIAL_FORMATS`."""

    def checks(self, module: torch.nn.Module) -> bool:
        return family_of(module) is not None

    def is_official(self, ckpt) -> bool:
        return bool(official_formats(ckpt))

    def describe(self,
                 ckpt,
                 path: str,
                 module: Optional[torch.nn.Module] = None,
                 prefix: str = 'backbone.') -> str:
        return what_checkpoint_is(ckpt, path, module, prefix)


OFFICIAL_FORMATS = OfficialFormats()
