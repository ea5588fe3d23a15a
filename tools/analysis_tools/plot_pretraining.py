"""Plot val top-1 against training step for stream pretraining runs.

    python tools/analysis_tools/plot_pretraining.py WORK_DIR [WORK_DIR ...] \
        [--shipped] --out docs/images/pretraining.png

Each WORK_DIR is the MMEngine work dir of a run of a
``configs/tiny/*_stream-pretrain_tiny-shapes.py`` config, over one or more
sessions (``--resume``); its curve is read from the run's own logs
(``<timestamp>/vis_data/scalars.json``). ``--shipped`` adds the curve that
the manifest (``--manifest``, default: the package's) recorded from the
logs of each shipped backbone whose run is not given as a WORK_DIR (up to
its shipped epoch), and marks the step and val top-1 of the shipped
checkpoint of every plotted config. A run's no-FSLA twin is drawn dashed in
the colour of its BOAT run.
"""
import argparse
import json
import os.path as osp
import sys

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # run from a clone without installing

from mmboat.analysis.run_logs import val_curve  # noqa: E402
from mmboat.utils.checkpoint import SHIPPED_MANIFEST  # noqa: E402
from mmboat.utils.runner_cli import exit_with_error  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dirs', nargs='*', help='pretraining work dirs')
    parser.add_argument(
        '--shipped',
        action='store_true',
        help='also the curves the manifest recorded for its shipped '
        'backbones')
    parser.add_argument(
        '--manifest',
        default=SHIPPED_MANIFEST,
        help='the manifest of --shipped (default: the package\'s)')
    parser.add_argument(
        '--out',
        default='pretraining.png',
        help='the picture to write (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.work_dirs and not args.shipped:
        parser.error('give pretraining work dirs, --shipped, or both')
    return args


def read_shipped(manifest_file):
    """{config name: (curve, (steps, val top-1))} of the checkpoints of
    ``manifest_file``; the curve ([(step, top-1)]) is empty where the
    manifest recorded none."""
    with open(manifest_file) as f:
        manifest = json.load(f)
    return {
        osp.splitext(osp.basename(entry['config']))[0]:
        ([tuple(p) for p in entry.get('val_curve', [])], (entry['steps'],
                                                          entry['val_top1']))
        for entry in manifest.values()
    }


def main(argv=None):
    args = parse_args(argv)
    try:
        curves = [val_curve(w) for w in args.work_dirs]
    except ValueError as e:
        exit_with_error(f'plot_pretraining: {e}', e)
    shipped = read_shipped(args.manifest) if args.shipped else {}
    given = {name for name, _ in curves}
    curves += [(name, curve) for name, (curve, _) in shipped.items()
               if curve and name not in given]
    curves.sort()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colours, labels = {}, set()
    for name, points in curves:
        # a second cycle continues its first's line: one legend entry
        label = name.split('_')[0]
        family = label.replace('-nofsla', '')
        colour = colours.setdefault(family, f'C{len(colours)}')
        steps, top1 = zip(*points) if points else ((), ())
        ax.plot(
            steps,
            top1,
            linestyle='--' if '-nofsla' in name else '-',
            color=colour,
            label=None if label in labels else label)
        labels.add(label)
        if name in shipped:
            ax.plot(
                *shipped[name][1],
                marker='o',
                markersize=7,
                color=colour,
                markerfacecolor='white' if '-nofsla' in name else colour,
                linestyle='none')
    if any(name in shipped for name, _ in curves):
        ax.plot([], [],
                marker='o',
                color='grey',
                linestyle='none',
                label='shipped checkpoint')
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
