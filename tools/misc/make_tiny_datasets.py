"""Write the tiny-shapes datasets (COCO, ADE20K and ImageNet formats) that
the configs in configs/tiny/ train on.

    python tools/misc/make_tiny_datasets.py                 # data/tiny_shapes
    python tools/misc/make_tiny_datasets.py --out-dir DIR --seed 1 --tasks det
"""
import argparse
import time

from mmboat.datasets import make_tiny_datasets


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--out-dir',
        default='data/tiny_shapes',
        help='destination folder (default: %(default)s)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='the same seed writes the same files')
    parser.add_argument(
        '--tasks',
        nargs='+',
        default=['det', 'seg', 'cls'],
        choices=['det', 'seg', 'cls'],
        help='det: COCO, seg: ADE20K, cls: ImageNet')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    written = make_tiny_datasets(args.out_dir, args.seed, args.tasks)
    for task, root in written.items():
        print(f'{task}: {root}')
    print(f'done in {time.perf_counter() - start:.1f} s')


if __name__ == '__main__':
    main()
