"""Write the tiny-shapes datasets (COCO, ADE20K and ImageNet formats) that
the configs in configs/tiny/ train on.

    python tools/misc/make_tiny_datasets.py                 # data/tiny_shapes
    python tools/misc/make_tiny_datasets.py --out-dir DIR --seed 1 --tasks det
"""
import argparse
import time

from mmboat.datasets import make_tiny_datasets
from mmboat.utils.runner_cli import exit_with_error


def non_negative_int(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f'{text!r} is not a non-negative integer')
    return int(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--out-dir',
        default='data/tiny_shapes',
        help='destination folder (default: %(default)s)')
    parser.add_argument(
        '--seed',
        type=non_negative_int,
        default=0,
        help='the same seed writes the same files')
    parser.add_argument(
        '--tasks',
        nargs='+',
        default=['det', 'seg', 'cls'],
        choices=['det', 'seg', 'cls'],
        help='det: COCO, seg: ADE20K, cls: ImageNet')
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    start = time.perf_counter()
    try:
        written = make_tiny_datasets(args.out_dir, args.seed, args.tasks)
    except (ValueError, OSError) as e:
        exit_with_error(str(e), e, parser)  # usage and status 2
    for task, root in written.items():
        print(f'{task}: {root}')
    print(f'done in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
