"""Plot val top-1 against training step for stream pretraining runs.

    python tools/analysis_tools/plot_pretraining.py WORK_DIR [WORK_DIR ...] \
        --out docs/pretraining.png

Each WORK_DIR is the MMEngine work dir of a run of a
``configs/tiny/*_stream-pretrain_tiny-shapes.py`` config, over one or more
sessions (``--resume``). The curves are read from the runs' own logs
(``<timestamp>/vis_data/scalars.json``); a run's no-FSLA twin is drawn
dashed in the colour of its BOAT run.
"""
import argparse
import glob
import json
import os.path as osp
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from mmengine.config import Config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='+', help='pretraining work dirs')
    parser.add_argument(
        '--out',
        default='pretraining.png',
        help='the picture to write (default: %(default)s)')
    return parser.parse_args(argv)


def run_curve(work_dir: str):
    """(config name, [(step, val top-1)]) of one run, by epoch; a later
    session's value of an epoch replaces an earlier one."""
    configs = glob.glob(osp.join(work_dir, '*_stream-pretrain_*.py'))
    if len(configs) != 1:
        raise ValueError(f'{work_dir}: no dumped *_stream-pretrain_*.py '
                         'config; is it the work dir of a pretraining run?')
    cfg = Config.fromfile(configs[0])
    loader = cfg.train_dataloader
    iters_per_epoch = -(-loader.dataset.images_per_epoch // loader.batch_size)
    by_epoch = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'accuracy/top1' in rec:
                    by_epoch[rec['step']] = rec['accuracy/top1']
    name = osp.splitext(osp.basename(configs[0]))[0]
    return name, [(e * iters_per_epoch, by_epoch[e]) for e in sorted(by_epoch)]


def main(argv=None):
    args = parse_args(argv)
    try:
        curves = [run_curve(w) for w in args.work_dirs]
    except ValueError as e:
        from mmboat.utils.runner_cli import exit_with_error
        exit_with_error(f'plot_pretraining: {e}', e)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colours = {}
    for name, points in curves:
        family = name.split('_')[0].replace('-nofsla', '')
        colour = colours.setdefault(family, f'C{len(colours)}')
        steps, top1 = zip(*points) if points else ((), ())
        ax.plot(
            steps,
            top1,
            linestyle='--' if '-nofsla' in name else '-',
            color=colour,
            label=name.split('_')[0])
    ax.axhline(
        97, color='grey', linewidth=0.8, linestyle=':', label='target 97%')
    ax.set_xlabel('training step (batch 32)')
    ax.set_ylabel('val top-1 (%), tiny-shapes imagenet/val')
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    ax.set_title('Stream pretraining of the nano backbones')
    fig.tight_layout()
    fig.savefig(args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
