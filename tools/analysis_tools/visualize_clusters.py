"""Draw the feature-space clusters of FSLA on an image.

    python tools/analysis_tools/visualize_clusters.py IMAGE CONFIG [CHECKPOINT]
    python tools/analysis_tools/visualize_clusters.py demo.jpg CONFIG CKPT \\
        --stages 0 --heads 0 1 --query 64 48 --out-dir outputs/clusters

Runs the image through the config's test pipeline, data preprocessor and
BOAT backbone (detection, segmentation or classification config; BOAT-Swin
or BOAT-CSWin), clusters the input of every chosen FSLA block with the
block's own projection and clustering, and writes one PNG per block to
OUT_DIR/<image>_stage<s>_block<b>.png: one panel per head with a colour per
leaf cluster over the image, and a tile with the query token, its leaf
cluster and the overlap tokens of the sibling leaf. Without CHECKPOINT the
model is randomly initialised.
"""
import argparse
import os.path as osp
import sys


def positive_int(text):
    """An argparse type: an int >= 1, else a usage error naming it."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer >= 1')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the feature-space clusters of FSLA on an image')
    parser.add_argument('image', help='image file')
    parser.add_argument(
        'config', help='config file of mmdet, mmseg or mmpretrain')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint file; without it the model is randomly initialised')
    parser.add_argument(
        '--stages',
        type=int,
        nargs='+',
        help='backbone stages (from 0); default: every stage with FSLA')
    parser.add_argument(
        '--blocks',
        type=int,
        nargs='+',
        help='block indices inside a stage; default: every FSLA block')
    parser.add_argument(
        '--heads',
        type=int,
        nargs='+',
        help='attention heads, one panel each; default: the first 8')
    parser.add_argument(
        '--query',
        type=int,
        nargs=2,
        metavar=('X', 'Y'),
        help='pixel of the image the model saw (after the test pipeline) '
        'whose token is drawn with what it attends to; default: the centre')
    parser.add_argument(
        '--out-dir',
        default='outputs/clusters',
        help='where the PNGs go (default: %(default)s)')
    parser.add_argument(
        '--device', default='cpu', help='cpu, cuda, cuda:1... (default: cpu)')
    parser.add_argument(
        '--alpha',
        type=float,
        default=0.55,
        help='opacity of the cluster colours (default: %(default)s)')
    parser.add_argument(
        '--panel-size',
        type=positive_int,
        default=320,
        help='long side of a panel in pixels (default: %(default)s)')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='load the weights that fit the model and warn about the '
        'others, instead of refusing a checkpoint that does not fit')
    parser.add_argument(
        '--palette-png',
        action='store_true',
        help='write 8-bit palette PNGs, several times smaller, the legend '
        'colours kept exactly')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # imported here so that --help answers without loading the model stack
    from mmboat.utils.runner_cli import exit_with_error
    if not osp.isfile(args.image):
        exit_with_error(
            f'error: image {args.image} does not exist; give an image '
            'file, e.g. data/tiny_shapes/coco/images/val/000000.jpg')
    from mmboat.apis import build_inferencer
    from mmboat.visualization import check_heads, draw_clusters, fsla_clusters
    try:
        # the weights are loaded by mmboat.apis.load_model_weights
        inferencer = build_inferencer(args.config, args.checkpoint,
                                      args.device, args.allow_partial)
        picture, clusters = fsla_clusters(
            args.image, inferencer, stages=args.stages, blocks=args.blocks)
        for c in clusters:  # every choice checked before anything is drawn
            check_heads(args.heads, c.num_heads,
                        f'stage {c.stage} (block {c.block})')
        stem = osp.splitext(osp.basename(args.image))[0]
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(clusters), file=sys.stderr)
        drawn = []
        for c in clusters:
            drawn.append(
                draw_clusters(
                    picture,
                    c,
                    osp.join(args.out_dir,
                             f'{stem}_stage{c.stage}_block{c.block}.png'),
                    heads=args.heads,
                    query=args.query,
                    alpha=args.alpha,
                    panel_size=args.panel_size,
                    palette_png=args.palette_png))
            bar.update()
        sys.stderr.write('\n')
    except (FileNotFoundError, ValueError) as e:
        exit_with_error(f'error: {e}', e)
    print(f'wrote {len(drawn)} picture(s):')
    for c, picture in zip(clusters, drawn):
        lo, hi = c.leaf_sizes()
        size = f'{lo}' if lo == hi else f'{lo}-{hi}'
        print(f'{picture.path}  stage {c.stage} block {c.block}: '
              f'{c.hw_shape[0]} x {c.hw_shape[1]} tokens, {c.num_heads} '
              f'head(s), {c.num_leaves} leaf cluster(s) of {size} tokens')
    return drawn


if __name__ == '__main__':
    main()
