"""Does FSLA help? Fine-tune the tiny detection and segmentation configs,
BOAT against its no-FSLA twin, each from its own pretrained backbone (and
from scratch), over several seeds, and tabulate mean and spread.

    python tools/analysis_tools/fsla_ablation.py --work-dir DIR \
        [--tasks det seg] [--families swin cswin] [--seeds 0 1 2] \
        [--init pretrained scratch] [--jobs 2] [--out table.md]

Each run is ``tools/train.py configs/tiny/<config> --cfg-options
randomness.seed=S`` in ``DIR/<config>/seed<S>`` (one thread per run,
``--jobs`` runs at once). A run whose work dir already holds its final
metrics is not run again, and an interrupted one continues (``--resume``),
so the command can be repeated until the table is complete. The table
(markdown) gives, per task and family, each variant's metrics as mean and
standard deviation over the seeds, and the val top-1 of its pretrained
backbone from ``mmboat/checkpoints/manifest.json``.
"""
import argparse
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # run from a clone without installing

from mmengine.config import Config  # noqa: E402

from mmboat.analysis.run_logs import scalar_records  # noqa: E402
from mmboat.utils.checkpoint import shipped_backbone_entry  # noqa: E402

#: per task: the config name pattern and the metrics to report
TASKS = dict(
    det=('mask-rcnn_boat-{fam}-nano{variant}{init}_fpn_tiny-shapes',
         ('coco/bbox_mAP', 'coco/segm_mAP')),
    seg=('upernet_boat-{fam}-nano{variant}{init}_tiny-shapes', ('mIoU', )))
VARIANTS = (('BOAT', ''), ('no FSLA', '-nofsla'))
INITS = dict(pretrained='', scratch='-scratch')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', required=True, help='where runs go')
    parser.add_argument(
        '--tasks', nargs='+', default=['det', 'seg'], choices=sorted(TASKS))
    parser.add_argument(
        '--families',
        nargs='+',
        default=['swin', 'cswin'],
        choices=['swin', 'cswin'])
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument(
        '--init',
        nargs='+',
        default=['pretrained', 'scratch'],
        choices=sorted(INITS),
        help='backbone initialisations to compare')
    parser.add_argument(
        '--jobs', type=int, default=2, help='runs at once, one thread each')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='extra --cfg-options for every run (e.g. a shorter schedule)')
    parser.add_argument('--out', help='also write the table to this file')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    if any(s < 0 for s in args.seeds):
        parser.error(f'--seeds must be >= 0, got {args.seeds}')
    return args


def final_metrics(run_dir: str, names) -> dict:
    """The metrics of the last validation of a finished run, or {}."""
    found = {}
    for rec in scalar_records(run_dir):
        if all(n in rec for n in names):
            found = {n: rec[n] for n in names}
    done = osp.exists(osp.join(run_dir, 'last_checkpoint'))
    return found if done else {}


def train(config: str, seed: int, run_dir: str, options, names) -> dict:
    """Run (or finish) one training; its final metrics."""
    metrics = final_metrics(run_dir, names)
    if metrics:
        return metrics
    os.makedirs(run_dir, exist_ok=True)
    command = [
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'),
        osp.join(REPO, 'configs', 'tiny',
                 f'{config}.py'), '--work-dir', run_dir, '--resume',
        '--cfg-options', f'randomness.seed={seed}', *options
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    start = time.perf_counter()
    with open(osp.join(run_dir, 'train.out'), 'a') as log:
        proc = subprocess.run(command, stdout=log, stderr=log, env=env)
    minutes = (time.perf_counter() - start) / 60
    if proc.returncode != 0:
        raise RuntimeError(f'{config} seed {seed} failed (exit '
                           f'{proc.returncode}): see {run_dir}/train.out')
    metrics = final_metrics(run_dir, names)
    print(
        f'[ablation] {config} seed {seed}: {metrics} ({minutes:.1f} min)',
        flush=True)
    return metrics


def pretrain_top1(config: str):
    """Val top-1 of the shipped backbone that ``config`` (its pretrained
    variant) starts from, from the manifest; None when it starts from
    none."""
    entry = shipped_backbone_entry(
        Config.fromfile(osp.join(REPO, 'configs', 'tiny', f'{config}.py')))
    return entry and entry['val_top1']


def mean_std(values) -> str:
    """``mean ± standard deviation`` (mAP: 3 decimals, mIoU: 2)."""
    if not values:
        return 'n/a'
    mean = statistics.mean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.
    digits = 3 if mean <= 1 else 2
    return f'{mean:.{digits}f} ± {spread:.{digits}f}'


def table(results, args) -> str:
    lines = []
    for task in args.tasks:
        names = TASKS[task][1]
        lines += [
            f'\n**{task}** ({len(args.seeds)} seeds: mean ± standard '
            'deviation)\n',
            '| family | backbone | init | pretraining top-1 | ' +
            ' | '.join(names) + ' |', '|---|---|---|---|' + '---|' * len(names)
        ]
        for fam in args.families:
            for label, variant in VARIANTS:
                for init in args.init:
                    runs = results.get((task, fam, variant, init), [])
                    top1 = pretrain_top1(TASKS[task][0].format(
                        fam=fam, variant=variant, init=INITS[init]))
                    cells = [
                        mean_std([r[n] for r in runs if n in r]) for n in names
                    ]
                    lines.append(f'| {fam} | {label} | {init} | ' +
                                 (f'{top1:.2f}%' if top1 else '-') + ' | ' +
                                 ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    jobs = []
    for task in args.tasks:
        pattern, names = TASKS[task]
        for fam in args.families:
            for _, variant in VARIANTS:
                for init in args.init:
                    config = pattern.format(
                        fam=fam, variant=variant, init=INITS[init])
                    for seed in args.seeds:
                        run_dir = osp.join(args.work_dir, config,
                                           f'seed{seed}')
                        jobs.append(
                            ((task, fam, variant, init),
                             (config, seed, run_dir, args.cfg_options, names)))
    results, failed = {}, []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [(key, pool.submit(train, *job)) for key, job in jobs]
        for key, future in futures:
            try:
                results.setdefault(key, []).append(future.result())
            except RuntimeError as e:
                failed.append(str(e))
    text = table(results, args)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text)
    for message in failed:
        print(f'[ablation] {message}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
