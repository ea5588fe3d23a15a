"""What the BOAT backbones and FSLA accept, checked once, when they are built.

A refused argument raises a :class:`ValueError` (out of range) or a
:class:`TypeError` (wrong type) whose message names the argument, the
value, what is allowed and the fix::

    BOAT-Swin: drop_path_rate=2 is not allowed: it must be a number in
    [0, 1) (stochastic depth of the last block). Fix: use e.g.
    drop_path_rate=0.1, or 0 to turn it off

Forward passes only check the shape of their input, in one condition
that ``torch.compile`` and ``torch.export`` trace; the message of a bad
shape is built here (:func:`image_batch_error`) only when it fails.
Images of another dtype or device than the weights are refused by
PyTorch's own layers, with its own messages; FSLA called directly checks
its tokens' dtype against its weights' (metadata only, no host sync) and
refuses another one outside autocast (:func:`token_dtype_error`).
"""
import math
import numbers
from typing import Any, Dict, Optional, Sequence, Tuple, Union

#: the options of FSLA that ``fsla_cfg`` may set
FSLA_OPTIONS = ('cluster_size', 'overlap', 'num_iters', 'temperature',
                'qk_scale')


def refusal(error: type,
            name: str,
            value: Any,
            allowed: str,
            fix: str,
            owner: str = '') -> Exception:
    """``error`` saying that ``name=value`` is not allowed, what is
    (``allowed``) and what to do (``fix``); ``owner`` starts the message."""
    prefix = f'{owner}: ' if owner else ''
    return error(f'{prefix}{name}={value!r} is not allowed: {allowed}. '
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
              what: str = '',
              maximum: Optional[int] = None) -> int:
    """``value`` as an int, refused unless an int (not a bool) in
    [``minimum``, ``maximum``]; ``what`` says what the value is."""
    allowed = (f'it must be an int >= {minimum}{what}' if maximum is None else
               f'it must be an int in [{minimum}, {maximum}]{what}')
    if not is_int(value):
        raise refusal(TypeError, name, value, allowed, fix, owner)
    if value < minimum or (maximum is not None and value > maximum):
        raise refusal(ValueError, name, value, allowed, fix, owner)
    return int(value)


def check_positive_ints(owner: str, **values: Any) -> None:
    """Refuse, naming it, any of ``values`` (argument name -> value) that
    is not an int >= 1: the sizes of a layer (channels, heads, windows)."""
    for name, value in values.items():
        check_int(name, value, 1, f'use e.g. {name}=1 or larger', owner)


def check_number(name: str,
                 value: Any,
                 allowed: str,
                 in_range,
                 fix: str,
                 owner: str = '') -> float:
    """``value`` as a float, refused unless a finite real number (not a
    bool) for which ``in_range(value)`` holds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise refusal(TypeError, name, value, allowed, fix, owner)
    if not math.isfinite(value) or not in_range(value):
        raise refusal(ValueError, name, value, allowed, fix, owner)
    return float(value)


def check_rate(name: str, value: Any, what: str, owner: str = '') -> float:
    """A probability of dropping, in [0, 1) (1 would drop everything)."""
    return check_number(name, value, f'it must be a number in [0, 1) ({what})',
                        lambda v: 0 <= v < 1,
                        f'use e.g. {name}=0.1, or 0 to turn it off', owner)


def check_per_stage(name: str,
                    values: Any,
                    fix: str,
                    owner: str = '') -> Tuple[int, ...]:
    """A sequence (not a string) of ints >= 1, one per stage."""
    if not is_sequence(values):
        raise refusal(TypeError, name, values,
                      'it must be a sequence of ints, one per stage', fix,
                      owner)
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
    parsed = dict(
        embed_dims=check_int('embed_dims', arch['embed_dims'], 1,
                             f'use e.g. embed_dims={first.get("embed_dims")}',
                             owner))
    heads_fix = (f'use e.g. num_heads={first.get("num_heads")}: num_heads[i] '
                 'must divide the channels embed_dims * 2**i of stage i')
    fixes = dict(
        depths='give every stage at least one block, e.g. depths='
        f'{first.get("depths")}; to leave a stage out, remove its entry '
        f'from every per-stage key ({", ".join(keys[1:])})',
        num_heads=heads_fix)
    for k in keys[1:]:
        parsed[k] = check_per_stage(
            k, arch[k], fixes.get(k, f'use e.g. {k}={first.get(k)}'), owner)
    per_stage = {k: parsed[k] for k in keys[1:]}
    if not parsed['depths'] or len(set(map(len, per_stage.values()))) > 1:
        raise ValueError(f'arch {", ".join(per_stage)} must have one '
                         f'entry per stage, got {per_stage}')
    for i, h in enumerate(parsed['num_heads']):
        channels = parsed['embed_dims'] * 2**i
        if channels % h:
            raise refusal(
                ValueError, f'num_heads[{i}]', h,
                f'stage {i} has {channels} channels, not divisible by '
                f'num_heads[{i}]', heads_fix, owner)
    return parsed


def check_even_heads(num_heads: Sequence[int], stages: Sequence[int],
                     owner: str) -> None:
    """The heads of every stage of ``stages`` split in two halves
    (BOAT-CSWin's two stripe directions)."""
    for i in stages:
        if num_heads[i] % 2:
            raise refusal(
                ValueError, f'num_heads[{i}]', num_heads[i],
                f'num_heads must be even in stage {i} (half the heads per '
                'stripe direction)',
                f'use e.g. num_heads[{i}]={2 * num_heads[i]}', owner)


def check_image_size(name: str,
                     value: Any,
                     owner: str = '') -> Union[int, Tuple[int, int]]:
    """An image size: an int >= 1 or a pair (H, W) of them."""
    fix = f'use e.g. {name}=224 or {name}=(224, 224)'
    if not is_sequence(value):
        return check_int(name, value, 1, fix, owner)
    if len(value) != 2:
        raise refusal(ValueError, name, value,
                      'it must be an int or a pair (H, W)', fix, owner)
    return tuple(
        check_int(f'{name}[{i}]', v, 1, fix, owner)
        for i, v in enumerate(value))


def check_backbone_args(owner: str, embed_dims: int, num_stages: int,
                        in_channels: Any, mlp_ratio: Any, drop_rate: Any,
                        attn_drop_rate: Any, drop_path_rate: Any,
                        frozen_stages: Any) -> dict:
    """The scalar arguments shared by every family, checked; returns
    them as a dict of ints and floats."""
    return dict(
        in_channels=check_int(
            'in_channels', in_channels, 1,
            'use the channels of the input images, e.g. in_channels=3 '
            'for RGB', owner),
        mlp_ratio=check_number(
            'mlp_ratio', mlp_ratio,
            'it must be a number > 0 that leaves the MLP at least one '
            'hidden channel (int(embed_dims * mlp_ratio) >= 1, embed_dims='
            f'{embed_dims})', lambda v: int(embed_dims * v) >= 1,
            'use e.g. mlp_ratio=4 (the published models)', owner),
        drop_rate=check_rate('drop_rate', drop_rate,
                             'dropout after projections and in the MLP',
                             owner),
        attn_drop_rate=check_rate('attn_drop_rate', attn_drop_rate,
                                  'dropout on attention weights', owner),
        drop_path_rate=check_rate('drop_path_rate', drop_path_rate,
                                  'stochastic depth of the last block', owner),
        frozen_stages=check_int(
            'frozen_stages',
            frozen_stages,
            -1, f'use -1 (nothing frozen), 0 (the stem) up to {num_stages} '
            '(the stem and every stage)',
            owner,
            ' (the number of stages)',
            maximum=num_stages))


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int,
                      owner: str = '') -> Tuple[int, ...]:
    """Sorted, non-negative stage indices; negative ones count from the
    end."""
    allowed = (f'stage indices must be ints in [{-num_stages}, '
               f'{num_stages}) for {num_stages} stages')
    fix = f'use e.g. out_indices={tuple(range(num_stages))}'
    indices = (out_indices, ) if is_int(out_indices) else out_indices
    if not is_sequence(indices) or not all(map(is_int, indices)):
        raise refusal(TypeError, 'out_indices', out_indices, allowed, fix,
                      owner)
    if not all(-num_stages <= i < num_stages for i in indices):
        raise refusal(ValueError, 'out_indices', out_indices, allowed, fix,
                      owner)
    return tuple(sorted(set(int(i) % num_stages for i in indices)))


def parse_fsla_blocks(fsla_blocks: Any,
                      depths: Sequence[int],
                      owner: str = '') -> Tuple[Tuple[int, ...], ...]:
    """Per stage, the sorted indices of the blocks that carry FSLA."""
    example = [list(range(1, d, 2)) for d in depths]
    fix = (f'give one list of block indices per stage, e.g. '
           f'fsla_blocks={example}, or {[[] for _ in depths]} for no FSLA')
    if not is_sequence(fsla_blocks) or not all(map(is_sequence, fsla_blocks)):
        raise refusal(
            TypeError, 'fsla_blocks', fsla_blocks,
            f'it must hold one sequence of block indices per stage '
            f'({len(depths)} stages)', fix, owner)
    if len(fsla_blocks) != len(depths):
        raise refusal(
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
            raise refusal(
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
        # the published ratio, 20 of 49, always below cluster_size
        example = min(cluster_size - 1, round(cluster_size * 20 / 49))
        raise refusal(
            ValueError, f'{prefix}overlap', overlap,
            f'it must be in [0, cluster_size={cluster_size})',
            f'use an overlap below {cluster_size}, e.g. {prefix}overlap='
            f'{example} (the published models: 20 of 49), or a larger '
            f'{prefix}cluster_size', owner)
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
        raise refusal(TypeError, 'fsla_cfg', fsla_cfg,
                      'it must be a dict or None',
                      'use e.g. fsla_cfg=dict(cluster_size=49)', owner)
    unknown = set(fsla_cfg or {}) - set(FSLA_OPTIONS)
    if unknown:
        raise ValueError(f'unknown fsla_cfg keys {sorted(unknown)}; '
                         f'allowed: {sorted(FSLA_OPTIONS)}')
    cfg = {**defaults, **(fsla_cfg or {})}
    check_fsla_options(**cfg, prefix='fsla_cfg.', owner=owner)
    return cfg


def token_dtype_error(dtype, weight_dtype, owner: str = '') -> TypeError:
    """The error of tokens of ``dtype`` into a layer whose weights are of
    ``weight_dtype`` (built only when the forward's dtype check fails)."""
    name = str(dtype).replace('torch.', '')
    weights = str(weight_dtype).replace('torch.', '')
    if not (dtype.is_floating_point or dtype.is_complex):
        fix = f'convert the tokens, x.to({weight_dtype})'
    else:
        fix = (f'convert the tokens, x.to({weight_dtype}), or the module, '
               f'module.to({dtype}); under torch.autocast float16, bfloat16 '
               'and float32 tokens all run')
    return refusal(
        TypeError, 'tokens dtype', name,
        f'the weights are {weights}: tokens must be of the same float type '
        '(or float16 / bfloat16 / float32 under autocast)', fix, owner)


def image_batch_error(shape: Sequence[int],
                      in_channels: int,
                      owner: str = '') -> ValueError:
    """The error of a backbone input of ``shape`` that is not a 4-D batch
    (B, ``in_channels``, H, W) with H, W >= 1 (built only when the
    forward's shape check fails)."""
    size, batch = tuple(shape), f'(B, {in_channels}, H, W)'
    if len(size) != 4:
        fix = ('add the batch axis for one image, x[None]'
               if len(size) == 3 else 'give a batch of images (B, C, H, W)')
        allowed = f'it must be a 4-D batch {batch}, got {len(size)}-D'
    elif size[1] != in_channels:
        allowed = (f'the backbone takes {in_channels} channels (in_channels='
                   f'{in_channels}), the input has {size[1]}')
        fix = (f'give {in_channels}-channel images (e.g. drop an alpha '
               f'channel, repeat a grey one), or build the backbone with '
               f'in_channels={size[1]}')
    else:
        allowed = 'H and W must be >= 1'
        fix = 'give images of at least 1 x 1 pixels'
    return refusal(ValueError, 'input shape', size, allowed, fix, owner)
