"""Convert a published BOAT-CSWin (or official CSWin) checkpoint for mmboat.

    python tools/model_converters/boat_cswin_to_mmboat.py SRC DST [--ema]

SRC is a file of the official releases (timm training format: weights under
``state_dict``, optionally ``state_dict_ema``, plus ``arch``, ``epoch``,
``optimizer``, ``args`` ...). It is read without running any code from it.
DST gets ``{'meta': ..., 'state_dict': ...}`` in the layout of an mmpretrain
``ImageClassifier`` with a ``BOATCSWinTransformer`` backbone
(``out_indices=(last,)``), ``GlobalAveragePooling`` and ``LinearClsHead``;
detection / segmentation configs load it with
``init_cfg=dict(type='Pretrained', checkpoint=DST)``.

A plain CSWin file (no FSLA weights) becomes a BOAT-CSWin initialisation: all
its weights are mapped and the FSLA weights start fresh (listed on output).
"""
import argparse
import os
import sys

import torch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert an official BOAT-CSWin / CSWin checkpoint into '
        'an mmboat checkpoint (never runs code from the file).')
    parser.add_argument('src', help='official .pth / .pth.tar file')
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument(
        '--ema',
        action='store_true',
        help="convert the EMA weights ('state_dict_ema') instead of "
        "'state_dict'")
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the fresh FSLA weights of a CSWin source (default: 0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # imported here so that --help answers without loading the model stack
    from mmboat.models.backbones.boat_cswin import \
        convert_boat_cswin_checkpoint
    from mmboat.utils import CheckpointError
    try:
        converted = convert_boat_cswin_checkpoint(
            args.src, use_ema=args.ema, seed=args.seed)
    except CheckpointError as e:
        sys.exit(f'error: cannot convert {args.src}: {e}')
    meta = converted['meta']
    meta['source_file'] = os.path.basename(args.src)
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(converted, args.dst)

    kind = 'BOAT-CSWin' if meta['source'] == 'boat-cswin' else 'CSWin'
    print(f"{args.src}: official {kind} checkpoint ('{meta['source_weights']}'"
          f"), {meta['num_classes']} classes")
    print(f'wrote {len(converted["state_dict"])} tensors to {args.dst}')
    if meta['arch']:
        print(f"backbone: dict(type='BOATCSWinTransformer', "
              f"arch={meta['arch']!r})")
    else:
        print(f"backbone: dict(type='BOATCSWinTransformer', arch=dict("
              f"embed_dims={meta['embed_dims']}, depths={meta['depths']}, "
              'num_heads=..., split_sizes=...)) (no preset has these '
              'weights; num_heads and split_sizes are not stored in them)')
    if meta['fresh_keys']:
        print(f'{len(meta["fresh_keys"])} FSLA weights are not in the CSWin '
              'file and start fresh:')
        for k in meta['fresh_keys']:
            print(f'  {k}')


if __name__ == '__main__':
    main()
