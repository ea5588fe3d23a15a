"""Convert a published BOAT-Swin (or official Swin) checkpoint for mmboat.

    python tools/model_converters/boat_swin_to_mmboat.py SRC DST [--arch tiny]

SRC is a file of the official releases (Swin training format: weights under
``model``, plus optimizer / config...). It is read without running any code
from it. DST gets ``{'meta': ..., 'state_dict': ...}`` in the layout of an
mmpretrain ``ImageClassifier`` with a ``BOATSwinTransformer`` backbone
(``out_indices=(last,)``), ``GlobalAveragePooling`` and ``LinearClsHead``;
detection / segmentation configs load it with
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.

A plain Swin file (no FSLA weights) becomes a BOAT-Swin initialisation: all
its weights are mapped and the FSLA weights start fresh (listed on output).
"""
import argparse
import os
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official BOAT-Swin / Swin checkpoint into an '
        'mmboat checkpoint (never runs code from the file).')
    parser.add_argument('src', help='official .pth file')
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument(
        '--arch',
        choices=['tiny', 'small', 'base'],
        help='check that the file holds this preset (by default the '
        'architecture is read from the weights)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the fresh FSLA weights of a Swin source (default: 0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # imported here so that --help answers without loading the model stack
    from mmboat.models.backbones.boat_swin import \
        convert_boat_swin_checkpoint
    from mmboat.utils import CheckpointError, load_checkpoint_file
    try:
        checkpoint = load_checkpoint_file(args.src)
        converted = convert_boat_swin_checkpoint(
            checkpoint, arch=args.arch, seed=args.seed)
    except (CheckpointError, ValueError) as e:
        sys.exit(f'error: cannot convert {args.src}: {e}')
    meta = converted['meta']
    meta['source_file'] = os.path.basename(args.src)
    dst_dir = os.path.dirname(os.path.abspath(args.dst))
    os.makedirs(dst_dir, exist_ok=True)
    torch.save(converted, args.dst)

    kind = 'BOAT-Swin' if meta['source'] == 'boat-swin' else 'Swin'
    backbone = f"type='BOATSwinTransformer', arch={meta['arch']!r}"
    if meta['window_size'] != 7:
        backbone += f", window_size={meta['window_size']}"
    if meta['mlp_ratio'] != 4:
        backbone += f", mlp_ratio={meta['mlp_ratio']}"
    if not meta['default_fsla_blocks']:
        backbone += f", fsla_blocks={meta['fsla_blocks']}"
    print(f'{args.src}: official {kind} checkpoint, '
          f'{meta["num_classes"]} classes')
    print(f'wrote {len(converted["state_dict"])} tensors to {args.dst}')
    print(f'backbone: dict({backbone})')
    if meta['fresh_keys']:
        print(f'{len(meta["fresh_keys"])} FSLA weights are not in the Swin '
              'file and start fresh:')
        for k in meta['fresh_keys']:
            print(f'  {k}')


if __name__ == '__main__':
    main()
