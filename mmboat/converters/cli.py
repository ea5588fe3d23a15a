"""The command line of ``tools/model_converters/boat_*_to_mmboat.py``.

    python tools/model_converters/boat_swin_to_mmboat.py SRC DST [--arch A]
    python tools/model_converters/boat_cswin_to_mmboat.py SRC DST [--ema]

SRC is a file of the official releases, read without running any code from
it; DST gets ``{'meta': ..., 'state_dict': ...}`` in the layout of an
mmpretrain ``ImageClassifier`` (see :mod:`mmboat.converters.core`), which
detection / segmentation configs load with
``init_cfg=dict(type='Pretrained', checkpoint=DST)``. The command says
which file it read, what it wrote, the backbone config that fits, and the
FSLA weights that start fresh when SRC is a plain Swin / CSWin file.
"""
import argparse
import os
import sys
from typing import List, Optional

import torch

from mmboat.utils.checkpoint import PUBLISHED_CHECKPOINTS
from .core import FAMILIES, Family, convert


def _arch_option(family: Family) -> dict:
    return dict(
        flags=('--arch', ),
        choices=list(family.backbone.arch_zoo),
        help='check that the file holds this preset (by default the '
        'architecture is read from the weights)')


def _ema_option(family: Family) -> dict:
    return dict(
        flags=('--ema', ),
        dest='use_ema',
        action='store_true',
        help="convert the EMA weights ('state_dict_ema') instead of "
        "'state_dict'")


#: the option of each family's command line beyond SRC, DST and --seed
OPTIONS = {'BOAT-Swin': _arch_option, 'BOAT-CSWin': _ema_option}


def build_parser(family: Family) -> argparse.ArgumentParser:
    releases = [
        f for _, f in PUBLISHED_CHECKPOINTS[family.backbone.__name__].values()
    ]
    parser = argparse.ArgumentParser(
        description=f'Convert an official {family.name} / '
        f'{family.plain_name} checkpoint into an mmboat checkpoint (never '
        'runs code from the file).')
    parser.add_argument(
        'src',
        help=f'official file ({", ".join(releases)} or a '
        f'{family.plain_name} file)')
    parser.add_argument('dst', help='output .pth file')
    option = OPTIONS[family.name](family)
    parser.add_argument(*option.pop('flags'), **option)
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help=f'seed of the fresh FSLA weights of a {family.plain_name} '
        'source (default: 0)')
    return parser


def report(family: Family, converted: dict, src: str, dst: str) -> None:
    """Print what was read and written, the backbone config and the fresh
    weights."""
    meta = converted['meta']
    kind = family.name if meta['source'] == family.key else \
        family.plain_name
    classes = 'no head' if meta['num_classes'] is None else \
        f"{meta['num_classes']} classes"
    print(f"{src}: official {kind} checkpoint ('{meta['source_weights']}'"
          f'), {classes}')
    print(f'wrote {len(converted["state_dict"])} tensors to {dst}')
    print(f'backbone: {family.describe(meta)}')
    if meta['fresh_keys']:
        print(f'{len(meta["fresh_keys"])} FSLA weights are not in the '
              f'{family.plain_name} file and start fresh:')
        for k in meta['fresh_keys']:
            print(f'  {k}')


def main(family_key: str, argv: Optional[List[str]] = None) -> None:
    """Convert SRC into DST for the family ``FAMILIES[family_key]``; on
    an error, exit with a message and write nothing."""
    family = FAMILIES[family_key]
    args = vars(build_parser(family).parse_args(argv))
    src, dst = args.pop('src'), args.pop('dst')
    try:
        converted = convert(family, src, **args)
    except ValueError as e:  # CheckpointError and refused architectures
        sys.exit(f'error: cannot convert {src}: {e}')
    converted['meta']['source_file'] = os.path.basename(src)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(converted, dst)
    report(family, converted, src, dst)
