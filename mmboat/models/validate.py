"""What the BOAT backbones and FSLA accept, checked in one place.

Every argument of a BOAT backbone, and the image batch given to its
``forward``, is checked here, before anything is built or computed, so
that both families accept and refuse the same things. A refused value
raises a :class:`ValueError` (a value out of range) or a
:class:`TypeError` (a value of the wrong type) whose message names the
argument, the value, what is allowed and the fix::

    BOAT-Swin: drop_path_rate=2 is not allowed: it must be a number in
    [0, 1) (stochastic depth of the last block). Fix: use e.g.
    drop_path_rate=0.1, or 0 for no stochastic depth

What is allowed:

- ``arch``: a preset name or a dict with the family's keys; ``embed_dims``
  an int >= 1; per stage (as many stages as you like, at least one) an
  int >= 1 for ``depths`` (a stage has at least one block: remove a stage
  by removing its entry from every per-stage key), ``num_heads`` (dividing
  the stage's channels ``embed_dims * 2**i``) and the family's own keys
  (BOAT-CSWin's ``split_sizes``);
- ``drop_rate``, ``attn_drop_rate``, ``drop_path_rate``: in [0, 1);
- ``mlp_ratio``: a number > 0 that leaves the MLP at least one hidden
  channel (``int(embed_dims * mlp_ratio) >= 1``);
- ``in_channels``, BOAT-Swin's ``window_size`` and ``pretrain_img_size``:
  ints >= 1;
- ``out_indices``: stage indices (negative ones count from the end);
  ``frozen_stages``: in [-1, number of stages];
- ``fsla_blocks``: one sequence of block indices per stage;
  ``fsla_cfg``: FSLA's options (:func:`check_fsla_options`);
- the input of ``forward``: a 4-D floating-point tensor
  (B, in_channels, H, W), B >= 0 (an empty batch gives empty outputs),
  H, W >= 1, on the device and of the dtype of the weights (another
  floating dtype is fine under ``torch.autocast``, where it works).

The input checks read shapes, dtypes and devices only, never values, so
they never wait for the device.
"""
import math
import numbers
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch

#: the options of FSLA that ``fsla_cfg`` may set
FSLA_OPTIONS = ('cluster_size', 'overlap', 'num_iters', 'temperature',
                'qk_scale')
#: floating dtypes that autocast casts to one another
_AUTOCAST_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def refuse(error: type,
           name: str,
           value: Any,
           allowed: str,
           fix: str,
           owner: str = '') -> None:
    """Raise ``error`` saying that ``name=value`` is not allowed, what is
    (``allowed``) and what to do (``fix``); ``owner`` (the family or
    module) starts the message."""
    prefix = f'{owner}: ' if owner else ''
    raise error(f'{prefix}{name}={value!r} is not allowed: {allowed}. '
                f'Fix: {fix}')


def is_sequence(value: Any) -> bool:
    """A sequence that is not a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def is_int(value: Any) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str,
              value: Any,
              minimum: int,
              fix: str,
              owner: str = '',
              what: str = '') -> int:
    """``value`` as an int, refused unless an int (not a bool) >=
    ``minimum``; ``what`` says what the value is for."""
    allowed = f'it must be an int >= {minimum}{what}'
    if not is_int(value):
        refuse(TypeError, name, value, allowed, fix, owner)
    if value < minimum:
        refuse(ValueError, name, value, allowed, fix, owner)
    return int(value)


def check_number(name: str,
                 value: Any,
                 allowed: str,
                 in_range,
                 fix: str,
                 owner: str = '') -> float:
    """``value`` as a float, refused unless a finite real number (not a
    bool) for which ``in_range(value)`` holds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        refuse(TypeError, name, value, allowed, fix, owner)
    if not math.isfinite(value) or not in_range(value):
        refuse(ValueError, name, value, allowed, fix, owner)
    return float(value)


def check_rate(name: str, value: Any, what: str, owner: str = '') -> float:
    """A probability of dropping: a number in [0, 1) (1 would drop
    everything)."""
    return check_number(
        name,
        value,
        f'it must be a number in [0, 1) ({what})',
        lambda v: 0 <= v < 1,
        f'use e.g. {name}=0.1, or 0 to turn it off',
        owner=owner)


def check_per_stage(name: str,
                    values: Any,
                    fix: str,
                    owner: str = '') -> Tuple[int, ...]:
    """A sequence (not a string) of ints >= 1, one per stage."""
    if not is_sequence(values):
        refuse(TypeError, name, values,
               'it must be a sequence of ints, one per stage', fix, owner)
    return tuple(
        check_int(f'{name}[{i}]', v, 1, fix, owner)
        for i, v in enumerate(values))


def parse_arch(arch: Union[str, dict], zoo: Dict[str, dict],
               keys: Tuple[str, ...], owner: str) -> dict:
    """A preset name (any case) of ``zoo`` or an arch dict with ``keys``
    -> a new, checked arch dict: ``embed_dims`` an int, the other keys
    tuples of ints, one per stage."""
    first = next(iter(zoo.values()), {})
    example = ', '.join(f'{k}={v}' for k, v in first.items())
    hint = (f'use one of {sorted(zoo)} or a dict with keys '
            f'{list(keys)}, e.g. dict({example})')
    if isinstance(arch, str):
        if arch.lower() not in zoo:
            raise ValueError(f'unknown {owner} arch {arch!r}: {hint}')
        arch = zoo[arch.lower()]
    elif not isinstance(arch, dict):
        raise ValueError(f'arch must be a preset name or a dict, got '
                         f'{type(arch).__name__}: {hint}')
    missing = [k for k in keys if k not in arch]
    unknown = sorted(set(arch) - set(keys))
    if missing or unknown:
        raise ValueError(f'{owner} arch dict: missing keys {missing}, '
                         f'unknown keys {unknown}: {hint}')
    embed_dims = check_int('embed_dims', arch['embed_dims'], 1,
                           f'use e.g. embed_dims={first.get("embed_dims")}',
                           owner)
    parsed = dict(embed_dims=embed_dims)
    fixes = dict(
        depths='give every stage at least one block, e.g. depths='
        f'{first.get("depths")}; to leave a stage out, remove its entry '
        f'from every per-stage key ({", ".join(keys[1:])})',
        num_heads=f'use e.g. num_heads={first.get("num_heads")}: '
        'num_heads[i] must divide the channels embed_dims * 2**i of stage i')
    for k in keys[1:]:
        fix = fixes.get(k, f'use e.g. {k}={first.get(k)}')
        parsed[k] = check_per_stage(k, arch[k], fix, owner)
    per_stage = {k: parsed[k] for k in keys[1:]}
    if not parsed['depths'] or len(set(map(len, per_stage.values()))) > 1:
        raise ValueError(f'arch {", ".join(per_stage)} must have one '
                         f'entry per stage, got {per_stage}')
    for i, h in enumerate(parsed['num_heads']):
        channels = embed_dims * 2**i
        if channels % h:
            refuse(
                ValueError, f'num_heads[{i}]', h,
                f'stage {i} has {channels} channels, not divisible by '
                f'num_heads[{i}]', fixes['num_heads'], owner)
    return parsed


def check_even_heads(num_heads: Sequence[int], stages: Sequence[int],
                     owner: str) -> None:
    """The heads of every stage of ``stages`` split in two halves
    (BOAT-CSWin's two stripe directions)."""
    for i in stages:
        if num_heads[i] % 2:
            refuse(
                ValueError, f'num_heads[{i}]', num_heads[i],
                f'num_heads must be even in stage {i} (half the heads per '
                'stripe direction)',
                f'use e.g. num_heads[{i}]={2 * num_heads[i]}', owner)


def check_image_size(name: str,
                     value: Any,
                     owner: str = '') -> Union[int, Tuple[int, int]]:
    """An image size: an int >= 1 or a pair (H, W) of them."""
    fix = f'use e.g. {name}=224 or {name}=(224, 224)'
    if is_sequence(value):
        if len(value) != 2:
            refuse(ValueError, name, value,
                   'it must be an int or a pair (H, W)', fix, owner)
        return tuple(
            check_int(f'{name}[{i}]', v, 1, fix, owner)
            for i, v in enumerate(value))
    return check_int(name, value, 1, fix, owner)


def check_backbone_args(owner: str, embed_dims: int, num_stages: int,
                        in_channels: Any, mlp_ratio: Any, drop_rate: Any,
                        attn_drop_rate: Any, drop_path_rate: Any,
                        frozen_stages: Any) -> dict:
    """The scalar arguments shared by every family, checked; returns
    them as a dict of ints and floats."""
    mlp_ratio = check_number(
        'mlp_ratio', mlp_ratio,
        f'it must be a number > 0 that leaves the MLP at least one hidden '
        f'channel (int(embed_dims * mlp_ratio) >= 1, embed_dims='
        f'{embed_dims})', lambda v: int(embed_dims * v) >= 1,
        'use e.g. mlp_ratio=4 (the published models)', owner)
    allowed = f'it must be an int in [-1, {num_stages}] (the number of stages)'
    fix = (f'use -1 (nothing frozen), 0 (the stem) up to {num_stages} (the '
           'stem and every stage)')
    if not is_int(frozen_stages):
        refuse(TypeError, 'frozen_stages', frozen_stages, allowed, fix, owner)
    if not -1 <= frozen_stages <= num_stages:
        refuse(ValueError, 'frozen_stages', frozen_stages, allowed, fix, owner)
    return dict(
        in_channels=check_int(
            'in_channels', in_channels, 1,
            'use the channels of the input images, e.g. in_channels=3 '
            'for RGB', owner),
        mlp_ratio=mlp_ratio,
        drop_rate=check_rate('drop_rate', drop_rate,
                             'dropout after projections and in the MLP',
                             owner),
        attn_drop_rate=check_rate('attn_drop_rate', attn_drop_rate,
                                  'dropout on attention weights', owner),
        drop_path_rate=check_rate('drop_path_rate', drop_path_rate,
                                  'stochastic depth of the last block', owner),
        frozen_stages=int(frozen_stages))


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int,
                      owner: str = '') -> Tuple[int, ...]:
    """Sorted, non-negative stage indices; negative ones count from the
    end."""
    allowed = (f'stage indices must be ints in [{-num_stages}, '
               f'{num_stages}) for {num_stages} stages')
    fix = f'use e.g. out_indices={tuple(range(num_stages))}'
    indices = (out_indices, ) if is_int(out_indices) else out_indices
    if not is_sequence(indices):
        refuse(TypeError, 'out_indices', out_indices, allowed, fix, owner)
    for i in indices:
        if not is_int(i):
            refuse(TypeError, 'out_indices', out_indices, allowed, fix, owner)
        if not -num_stages <= i < num_stages:
            refuse(ValueError, 'out_indices', out_indices, allowed, fix, owner)
    return tuple(sorted(set(int(i) % num_stages for i in indices)))


def parse_fsla_blocks(fsla_blocks: Any,
                      depths: Sequence[int],
                      owner: str = '') -> Tuple[Tuple[int, ...], ...]:
    """Per stage, the sorted indices of the blocks that carry FSLA."""
    example = [list(range(1, d, 2)) for d in depths]
    fix = (f'give one list of block indices per stage, e.g. '
           f'fsla_blocks={example}, or {[[] for _ in depths]} for no FSLA')
    if not is_sequence(fsla_blocks) or not all(
            is_sequence(b) for b in fsla_blocks):
        refuse(
            TypeError, 'fsla_blocks', fsla_blocks,
            f'it must hold one sequence of block indices per stage '
            f'({len(depths)} stages)', fix, owner)
    if len(fsla_blocks) != len(depths):
        refuse(
            ValueError, 'fsla_blocks', fsla_blocks,
            f'fsla_blocks needs one list of block indices per stage '
            f'({len(depths)}), got {len(fsla_blocks)}', fix, owner)
    parsed = []
    for i, (blocks, depth) in enumerate(zip(fsla_blocks, depths)):
        blocks = tuple(
            sorted(
                set(
                    check_int(f'fsla_blocks[{i}]', j, 0, fix, owner)
                    for j in blocks)))
        if any(j >= depth for j in blocks):
            refuse(
                ValueError, f'fsla_blocks[{i}]', blocks,
                f'out of range: has indices outside [0, {depth}) (stage '
                'depth)', fix, owner)
        parsed.append(blocks)
    return tuple(parsed)


def check_fsla_options(cluster_size: Any = 49,
                       overlap: Any = 20,
                       num_iters: Any = 2,
                       temperature: Any = 100.,
                       qk_scale: Any = None,
                       prefix: str = '',
                       owner: str = '') -> dict:
    """FSLA's options, checked (``prefix`` names where they come from,
    e.g. ``fsla_cfg.``); returns them as a dict."""
    cluster_size = check_int(
        f'{prefix}cluster_size', cluster_size, 2,
        f'use e.g. {prefix}cluster_size=49 (the published models)', owner,
        ' (tokens per cluster)')
    overlap = check_int(f'{prefix}overlap', overlap, 0,
                        f'use e.g. {prefix}overlap=20 (the published models)',
                        owner)
    if overlap >= cluster_size:
        refuse(ValueError, f'{prefix}overlap', overlap,
               f'it must be in [0, cluster_size={cluster_size})',
               f'use an overlap below {cluster_size}, e.g. 20', owner)
    num_iters = check_int(f'{prefix}num_iters', num_iters, 0,
                          f'use e.g. {prefix}num_iters=2', owner)
    temperature = check_number(f'{prefix}temperature', temperature,
                               'it must be a number > 0', lambda v: v > 0,
                               f'use e.g. {prefix}temperature=100', owner)
    if qk_scale is not None:
        qk_scale = check_number(
            f'{prefix}qk_scale', qk_scale, 'it must be None or a number > 0',
            lambda v: v > 0,
            f'use None (head_dims ** -0.5) or e.g. {prefix}qk_scale=1.0',
            owner)
    return dict(
        cluster_size=cluster_size,
        overlap=overlap,
        num_iters=num_iters,
        temperature=temperature,
        qk_scale=qk_scale)


def parse_fsla_cfg(fsla_cfg: Optional[dict],
                   defaults: dict,
                   owner: str = '') -> dict:
    """``defaults`` updated with ``fsla_cfg``, whose keys must be
    :data:`FSLA_OPTIONS`, every value checked."""
    if fsla_cfg is not None and not isinstance(fsla_cfg, dict):
        refuse(TypeError, 'fsla_cfg', fsla_cfg, 'it must be a dict or None',
               'use e.g. fsla_cfg=dict(cluster_size=49)', owner)
    unknown = set(fsla_cfg or {}) - set(FSLA_OPTIONS)
    if unknown:
        raise ValueError(f'unknown fsla_cfg keys {sorted(unknown)}; '
                         f'allowed: {sorted(FSLA_OPTIONS)}')
    cfg = {**defaults, **(fsla_cfg or {})}
    check_fsla_options(**cfg, prefix='fsla_cfg.', owner=owner)
    return cfg


def check_image_batch(x: Any,
                      in_channels: int,
                      weight: torch.Tensor,
                      owner: str = '') -> None:
    """The input of a backbone's ``forward``: a 4-D floating-point tensor
    (B, in_channels, H, W), B >= 0, H, W >= 1, on the device and of the
    dtype of ``weight`` (the stem's), or of a dtype autocast converts.

    Reads shapes, dtypes and devices only (no sync with the device)."""
    shape = f'(B, {in_channels}, H, W)'
    if not isinstance(x, torch.Tensor):
        refuse(TypeError, 'input',
               type(x).__name__, f'it must be a torch.Tensor {shape}',
               'stack the images into one tensor, e.g. torch.stack(images)',
               owner)
    size = tuple(x.shape)
    if x.dim() != 4:
        fix = ('add the batch axis for one image, x[None]'
               if x.dim() == 3 else 'give a batch of images (B, C, H, W)')
        refuse(ValueError, 'input shape', size,
               f'it must be a 4-D batch {shape}, got {x.dim()}-D', fix, owner)
    if size[1] != in_channels:
        refuse(
            ValueError, 'input shape', size,
            f'the backbone takes {in_channels} channels (in_channels='
            f'{in_channels}), the input has {size[1]}',
            f'give {in_channels}-channel images (e.g. drop an alpha '
            f'channel, repeat a grey one), or build the backbone with '
            f'in_channels={size[1]}', owner)
    if size[2] < 1 or size[3] < 1:
        refuse(ValueError, 'input shape', size, 'H and W must be >= 1',
               'give images of at least 1 x 1 pixels', owner)
    if not x.is_floating_point():
        refuse(
            TypeError, 'input dtype', x.dtype,
            'the backbone takes floating-point images',
            'convert them with x.float() (normalised as in training, e.g. '
            'by the data preprocessor)', owner)
    if x.device != weight.device:
        refuse(ValueError, 'input device', x.device,
               f'the weights are on {weight.device}',
               f'move the input, x.to({str(weight.device)!r}), or the model',
               owner)
    if x.dtype != weight.dtype and not (torch.is_autocast_enabled(
            x.device.type) and x.dtype in _AUTOCAST_DTYPES
                                        and weight.dtype in _AUTOCAST_DTYPES):
        refuse(
            TypeError, 'input dtype', x.dtype,
            f'the weights are {weight.dtype} (another dtype only works '
            'under torch.autocast)',
            f'cast the input, x.to({weight.dtype}), or the model, e.g. '
            f'model.to({x.dtype}), or run under torch.autocast', owner)
