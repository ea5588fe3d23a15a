"""End to end on the embedded tiny-shapes data, as a user runs it: the data
is generated in a temporary folder, a tiny config of configs/tiny/ trains
with tools/train.py and validates with the real evaluator (mIoU, top-1),
then tools/test.py reloads the saved checkpoint and
evaluates it, on a few images for a few steps. The full detection schedule
is run by tests/tools/test_quick_start.py; docs/benchmarks.md gives what
each tiny config reaches."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmboat.datasets import make_tiny_datasets

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / 'configs' / 'tiny'


def run(cwd, *args):
    """A tools/ script in a fresh interpreter, from ``cwd`` (where the
    configs' relative ``data/tiny_shapes`` lies)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, *map(str, args)],
                          cwd=cwd,
                          env=env,
                          text=True,
                          capture_output=True,
                          timeout=1200)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def metrics(log, *names):
    """The last value the log prints for each metric name."""
    values = {}
    for name in names:
        found = re.findall(re.escape(name) + r': (-?[\d.]+)', log)
        assert found, f'{name} not in the log:\n{log[-3000:]}'
        values[name] = float(found[-1])
    return values


def train_and_test(tmp_path, task, config, sizes, options, names):
    make_tiny_datasets(
        tmp_path / 'data' / 'tiny_shapes', tasks=[task], sizes={task: sizes})
    work = tmp_path / 'work'
    options = ['--cfg-options', *options] if options else []
    log = run(tmp_path, REPO / 'tools' / 'train.py', TINY / config,
              '--work-dir', work, *options)
    trained = metrics(log, *names)
    checkpoint = (work / 'last_checkpoint').read_text().strip()
    log = run(tmp_path, REPO / 'tools' / 'test.py', TINY / config, checkpoint,
              '--work-dir', tmp_path / 'test')
    tested = metrics(log, *names)
    # the reloaded checkpoint evaluates to what validation saw
    assert tested == pytest.approx(trained, abs=1e-4)
    return tested


@pytest.mark.slow
def test_segmentation(tmp_path):
    values = train_and_test(
        tmp_path, 'seg', 'upernet_boat-swin-nano_tiny-shapes.py',
        dict(train=(8, 128), val=(4, 128)), [
            'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
            'train_dataloader.batch_size=4'
        ], ['mIoU'])
    assert 0 <= values['mIoU'] <= 100


@pytest.mark.slow
def test_classification(tmp_path):
    values = train_and_test(
        tmp_path, 'cls', 'boat-swin-nano_tiny-shapes.py',
        dict(train=(32, 64), val=(8, 64)), [
            'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'train_dataloader.batch_size=8'
        ], ['accuracy/top1'])
    assert 0 <= values['accuracy/top1'] <= 100
