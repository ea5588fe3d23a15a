"""Ship the backbone of a tiny-shapes pretraining run with mmboat.

    python tools/misc/publish_tiny_checkpoint.py WORK_DIR [--checkpoint PTH]

WORK_DIR is the MMEngine work dir of a run of a
``configs/tiny/*_stream-pretrain_tiny-shapes.py`` config (one or more
sessions of ``tools/train.py ... --resume``). The tool writes the run's
backbone weights (float32, ``backbone.*`` keys, nothing else; with
``--whole-model`` the classifier's backbone, neck and head, as the CNN
teacher's distillation needs) to
``mmboat/checkpoints/tiny_shapes/<config name>.pth`` and records in
``mmboat/checkpoints/manifest.json`` the config, the commit it was trained
at, steps (from the start of the backbone's training: a second cycle
counts on from the shipped checkpoint it starts from), wall time, val
top-1, the val top-1 curve up to the shipped
epoch (``val_curve``, [step, top-1] pairs, which ``plot_pretraining.py
--shipped`` draws once the work dir is gone), sha256 and the command that
reproduces it.
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import os.path as osp
import re
import sys
import tempfile

import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)  # run from a clone without installing

from mmboat.analysis import run_logs  # noqa: E402
from mmboat.utils import load_checkpoint_file  # noqa: E402
from mmboat.utils.checkpoint import SHIPPED_DIR  # noqa: E402
from mmboat.utils.runner_cli import exit_with_error  # noqa: E402

# MMEngine's log file lines start with 2026/12/07 01:02:34
LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir', help='work dir of the pretraining run')
    parser.add_argument(
        '--checkpoint',
        help='the checkpoint to ship (default: the run\'s last one)')
    parser.add_argument(
        '--whole-model',
        action='store_true',
        help='ship backbone, neck and head (the teacher), not the backbone')
    parser.add_argument(
        '--shipped-dir',
        default=SHIPPED_DIR,
        help='the package\'s checkpoints folder (default: %(default)s)')
    parser.add_argument(
        '--commit',
        help='commit the run was trained at (default: the one written in '
        'WORK_DIR/commit by the launch script, else this clone\'s HEAD)')
    return parser.parse_args(argv)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def session_logs(work_dir: str):
    """The ``<timestamp>/<timestamp>.log`` of every session of the run, in
    order."""
    return sorted(glob.glob(osp.join(work_dir, '*', '*.log')))


def wall_minutes(logs, epoch: int) -> float:
    """Minutes from the first log line to the validation of ``epoch``,
    summed over sessions (time between sessions, when nothing ran, is not
    counted)."""
    total, end = 0., f'Epoch(val) [{epoch}]'
    for log in logs:
        stamps, done = [], False
        with open(log) as f:
            for line in f:
                m = LOG_TIME.match(line)
                if m:
                    stamps.append(
                        datetime.datetime.strptime(
                            m.group(1), '%Y/%m/%d %H:%M:%S'))
                    if end in line and 'accuracy/top1' in line:
                        done = True
                        break
        if len(stamps) > 1:
            total += (stamps[-1] - stamps[0]).total_seconds()
        if done:
            break
    return total / 60


def main(argv=None):
    args = parse_args(argv)
    work_dir = osp.abspath(args.work_dir)
    try:
        # refuses a folder with no run
        name, curve = run_logs.val_curve(work_dir)
    except ValueError as e:
        exit_with_error(f'publish: {e}', e)
    cfg = Config.fromfile(run_logs.run_config(work_dir))
    checkpoint = args.checkpoint
    if checkpoint is None:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            checkpoint = f.read().strip()
    ckpt = load_checkpoint_file(checkpoint)
    parts = ('backbone.', 'neck.', 'head.') if args.whole_model else \
        ('backbone.', )
    weights = {
        k: v.float().clone() if v.is_floating_point() else v.clone()
        for k, v in ckpt['state_dict'].items() if k.startswith(parts)
    }
    # steps from the start of the backbone's training, as the curve's
    epoch = ckpt['meta']['epoch']
    step = run_logs.start_step(cfg) + ckpt['meta']['iter']
    curve = [(s, round(t, 2)) for s, t in curve if s <= step]
    if not curve or curve[-1][0] != step:
        exit_with_error(f'publish: no val top-1 of epoch {epoch} in the '
                        f'logs of {work_dir}')
    top1 = curve[-1][1]
    commit = args.commit
    if commit is None and osp.exists(osp.join(work_dir, 'commit')):
        with open(osp.join(work_dir, 'commit')) as f:
            commit = f.read().strip()
    if commit is None:
        commit = os.popen(f'git -C {REPO} rev-parse HEAD').read().strip()

    out = osp.join(args.shipped_dir, 'tiny_shapes', f'{name}.pth')
    os.makedirs(osp.dirname(out), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(out), suffix='.pth')
    os.close(fd)
    torch.save(
        dict(
            state_dict=weights,
            meta=dict(
                config=f'configs/tiny/{name}.py', epoch=epoch, iter=step)),
        tmp)
    os.chmod(tmp, 0o644)  # package data: readable by all, as pip installs
    os.replace(tmp, out)

    manifest, manifest_file = {}, osp.join(args.shipped_dir, 'manifest.json')
    if osp.exists(manifest_file):
        with open(manifest_file) as f:
            manifest = json.load(f)
    manifest[f'tiny_shapes/{name}.pth'] = dict(
        config=f'configs/tiny/{name}.py',
        commit=commit,
        steps=step,
        epochs=epoch,
        schedule_epochs=cfg.train_cfg.max_epochs,
        wall_minutes=round(wall_minutes(session_logs(work_dir), epoch), 1),
        val_top1=top1,
        val_curve=[list(point) for point in curve],
        sha256=sha256(out),
        command=(f'python tools/train.py configs/tiny/{name}.py --work-dir '
                 f'WORK_DIR --resume && python '
                 f'tools/misc/publish_tiny_checkpoint.py WORK_DIR' +
                 (f' --checkpoint WORK_DIR/epoch_{epoch}.pth'
                  if args.checkpoint else '') +
                 (' --whole-model' if args.whole_model else '')))
    text = json.dumps(dict(sorted(manifest.items())), indent=2)
    # one line per [step, top-1] point of the curves
    text = re.sub(r'\[\s+(\d+),\s+([\d.]+)\s+\]', r'[\1, \2]', text)
    with open(manifest_file, 'w') as f:
        f.write(text + '\n')
    print(f'{out}: {len(weights)} tensors, {osp.getsize(out) / 2**20:.1f} '
          f'MiB, step {step}, val top-1 {top1:.2f}%')
    print(f'manifest: {manifest_file}')


if __name__ == '__main__':
    main()
