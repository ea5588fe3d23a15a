"""Draw the predictions of a detection, segmentation or classification
config on images, with the visualiser of its library.

    python tools/demo/image_demo.py demo.jpg CONFIG --weights CHECKPOINT
    python tools/demo/image_demo.py images/ CONFIG --out-dir outputs/demo

Writes one picture per image to OUT_DIR/vis/ (detection: boxes and masks
scoring at least --score-thr; segmentation: the coloured label map over the
image; classification: the --topk best classes) and prints each path with a
one-line summary. Detection also writes OUT_DIR/preds/<name>.json,
segmentation OUT_DIR/pred/<n>_pred.png (label maps). Without --weights the
model is randomly initialised: a check of the pipeline, not of predictions.
"""
import argparse

import numpy as np


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer >= 1')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the predictions of a config on images')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument(
        'config', help='config file of mmdet, mmseg or mmpretrain')
    parser.add_argument(
        '--weights',
        help='checkpoint file; without it the model is randomly '
        'initialised')
    parser.add_argument(
        '--out-dir',
        default='outputs/demo',
        help='pictures go to OUT_DIR/vis/ (default: %(default)s)')
    parser.add_argument(
        '--device', default='cpu', help='cpu, cuda, cuda:1... (default: cpu)')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: draw boxes scoring at least this '
        '(default: %(default)s)')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help='load the weights that fit the model and warn about the '
        'others, instead of refusing a checkpoint that does not fit')
    parser.add_argument(
        '--topk',
        type=positive_int,
        default=5,
        help='classification: draw this many best classes '
        '(default: %(default)s)')
    return parser.parse_args(argv)


def class_name(classes, label: int) -> str:
    if classes is not None and 0 <= label < len(classes):
        return str(classes[label])
    return str(label)


def summary(task: str, prediction, classes, score_thr: float,
            topk: int) -> str:
    """One line on one image's prediction."""
    if task == 'det':
        scored = zip(prediction['scores'], prediction['labels'])
        found = [(s, lb) for s, lb in scored if s >= score_thr]
        shown = ', '.join(f'{class_name(classes, lb)} {s:.2f}'
                          for s, lb in found[:5])
        more = ', ...' if len(found) > 5 else ''
        return f'{len(found)} objects >= {score_thr}: {shown}{more}' \
            if found else f'no object >= {score_thr}'
    if task == 'seg':
        labels, counts = np.unique(prediction, return_counts=True)
        order = np.argsort(-counts)[:5]
        return ', '.join(f'{class_name(classes, int(labels[i]))} '
                         f'{100 * counts[i] / prediction.size:.0f}%'
                         for i in order)
    scores = prediction['pred_scores']
    best = np.argsort(-scores)[:topk]
    return ', '.join(f'{class_name(classes, int(i))} {scores[i]:.2f}'
                     for i in best)


def main(argv=None):
    args = parse_args(argv)
    # imported here so that --help answers without loading the model stack
    from mmboat.apis import (build_inferencer, class_names, list_images,
                             task_of, visualize)
    from mmboat.utils import CheckpointError
    from mmboat.utils.runner_cli import exit_with_error
    try:
        images = list_images(args.inputs)
        inferencer = build_inferencer(args.config, args.weights, args.device,
                                      args.allow_partial)
        paths, predictions = visualize(
            images,
            inferencer,
            out_dir=args.out_dir,
            score_thr=args.score_thr,
            topk=args.topk)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        exit_with_error(f'error: {e}', e)

    task, classes = task_of(inferencer), class_names(inferencer)
    print(f'wrote {len(paths)} picture(s):')
    for path, prediction in zip(paths, predictions):
        line = summary(task, prediction, classes, args.score_thr, args.topk)
        print(f'{path}  {line}')


if __name__ == '__main__':
    main()
