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
import secrets
from typing import List, Optional

import torch

from mmboat.families import Family
from mmboat.utils.checkpoint import CheckpointError
from mmboat.utils.runner_cli import add_debug_option, exit_with_error
from .core import CONVERTERS, FamilyConverter, convert


def _arch_option(family: Family) -> dict:
    return dict(
        flags=('--arch', ),
        choices=list(family.arch_zoo),
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


def build_parser(converter: FamilyConverter) -> argparse.ArgumentParser:
    family = converter.family
    releases = [release.file for release in family.published.values()]
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
    add_debug_option(parser)
    return parser


def report(converter: FamilyConverter, converted: dict, src: str,
           dst: str) -> None:
    """Print what was read and written, the backbone config and the fresh
    weights."""
    family = converter.family
    meta = converted['meta']
    kind = family.name if meta['source'] == family.key else \
        family.plain_name
    classes = 'no head' if meta['num_classes'] is None else \
        f"{meta['num_classes']} classes"
    print(f"{src}: official {kind} checkpoint ('{meta['source_weights']}'"
          f'), {classes}')
    print(f'wrote {len(converted["state_dict"])} tensors to {dst}')
    print(f'backbone: {converter.describe(meta)}')
    if meta['fresh_keys']:
        print(f'{len(meta["fresh_keys"])} FSLA weights are not in the '
              f'{family.plain_name} file and start fresh:')
        for k in meta['fresh_keys']:
            print(f'  {k}')


def check_destination(src: str, dst: str) -> None:
    """Refuse, before converting, a destination that would overwrite the
    source (the same file, also through a symbolic or hard link) or that
    cannot be written: an existing directory, a folder path through a
    file, a folder that is not writable. Raises :class:`CheckpointError`.
    """
    if os.path.exists(src) and os.path.exists(dst) and os.path.samefile(
            src, dst):
        link = '' if os.path.abspath(src) == os.path.abspath(dst) else \
            ' (through a link)'
        raise CheckpointError(
            f'the destination {dst} is the source file {src}{link}: '
            'converting would overwrite the official file and lose what '
            'else it holds (optimizer state, config, EMA weights); give '
            'another destination, e.g. checkpoints/<name>_mmboat.pth')
    if os.path.isdir(dst):
        example = os.path.join(dst, 'model_mmboat.pth')
        raise CheckpointError(
            f'the destination {dst} is a directory: give the path of the '
            f'.pth file to write, e.g. {example}')
    folder = os.path.dirname(os.path.abspath(dst))
    parent = folder
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise CheckpointError(
            f'cannot write {dst}: {parent} is a file, not a folder, so the '
            f'folder {folder} cannot be made')
    if not os.access(parent, os.W_OK | os.X_OK):
        what = 'its folder' if parent == folder else \
            f'{parent}, where its folder {folder} would be made,'
        raise CheckpointError(
            f'cannot write {dst}: {what} is not writable; give a '
            'destination in a folder you can write')


def save_atomically(obj, dst: str) -> None:
    """``torch.save(obj)`` into a new file of the destination's folder
    (created if missing), renamed to ``dst`` once complete: an interrupted
    or failed save never leaves half a file at ``dst`` and never touches
    the file that was there. Raises :class:`CheckpointError` when the
    folder cannot be created or written."""
    folder = os.path.dirname(os.path.abspath(dst))
    tmp = os.path.join(
        folder, f'.{os.path.basename(dst)}.'
        f'{os.getpid()}.{secrets.token_hex(4)}.tmp')
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise CheckpointError(
            f'cannot write {dst}: its folder {folder} cannot be made '
            f'({e.strerror}); give a destination in a folder you can '
            'write') from e
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise CheckpointError(
            f'cannot write {dst}: cannot create a file in its folder '
            f'{folder} ({e.strerror}); give a destination in a folder you '
            'can write') from e
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
        os.replace(tmp, dst)
    except (OSError, RuntimeError) as e:  # e.g. a full disk
        raise CheckpointError(f'cannot write {dst}: {e}') from e
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)


def main(family_key: str, argv: Optional[List[str]] = None) -> None:
    """Convert SRC into DST with ``CONVERTERS[family_key]``; on an error,
    exit with a message and write nothing: SRC is only read, never written,
    and DST is replaced only by a complete file."""
    converter = CONVERTERS[family_key]
    args = vars(build_parser(converter).parse_args(argv))
    src, dst = args.pop('src'), args.pop('dst')
    try:
        check_destination(src, dst)
        converted = convert(converter, src, **args)
        converted['meta']['source_file'] = os.path.basename(src)
        save_atomically(converted, dst)
    except ValueError as e:  # CheckpointError and refused architectures
        exit_with_error(f'error: cannot convert {src}: {e}', e)
    report(converter, converted, src, dst)
