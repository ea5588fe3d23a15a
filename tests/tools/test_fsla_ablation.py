"""tools/analysis_tools/fsla_ablation.py: real tools/train.py runs of the
tiny detection configs (BOAT and its no-FSLA twin, two seeds, a one-epoch
schedule on a few images), tabulated; a second call reuses the finished
runs."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from mmboat.datasets import make_tiny_datasets
from mmboat.utils.checkpoint import SHIPPED_MANIFEST
from tests.helpers import REPO_ROOT

SCRIPT = REPO_ROOT / 'tools' / 'analysis_tools' / 'fsla_ablation.py'


def ablation(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        cwd=tmp_path,  # the configs read data/tiny_shapes from here
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        text=True,
        timeout=1200)


@pytest.mark.slow
def test_ablation_table_from_real_runs(tmp_path):
    make_tiny_datasets(
        tmp_path / 'data' / 'tiny_shapes',
        tasks=['det'],
        sizes=dict(det=dict(train=(4, 128), val=(2, 128))))
    args = [
        '--work-dir', tmp_path / 'runs', '--tasks', 'det', '--families',
        'swin', '--seeds', '0', '1', '--init', 'scratch', '--out',
        tmp_path / 'table.md', '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'train_dataloader.batch_size=2'
    ]
    proc = ablation(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('[ablation] ') == 4  # 2 variants x 2 seeds
    table = (tmp_path / 'table.md').read_text()
    rows = [r for r in table.splitlines() if r.startswith('| swin |')]
    assert [r.split(' | ')[1:3] for r in rows] == [['BOAT', 'scratch'],
                                                   ['no FSLA', 'scratch']]
    # no pretrained backbone, no pretraining top-1
    assert [r.split(' | ')[3] for r in rows] == ['-', '-']
    for row in rows:
        cells = row.strip(' |').split(' | ')[4:]
        assert len(cells) == 2 and all(' ± ' in c for c in cells), row
    for seed in (0, 1):
        assert (tmp_path / 'runs' /
                'mask-rcnn_boat-swin-nano-nofsla-scratch_fpn_tiny-shapes' /
                f'seed{seed}' / 'last_checkpoint').exists()
    # everything is there: nothing trains again, the same table
    again = ablation(tmp_path, *args)
    assert again.returncode == 0 and '[ablation] ' not in again.stdout
    assert (tmp_path / 'table.md').read_text() == table


def test_pretraining_top1_is_that_of_the_backbone_the_config_reads():
    spec = importlib.util.spec_from_file_location('fsla_ablation', SCRIPT)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with open(SHIPPED_MANIFEST) as f:
        manifest = json.load(f)
    for variant in ('', '-nofsla'):
        shipped = manifest['tiny_shapes/boat-swin-nano'
                           f'{variant}_stream-pretrain_tiny-shapes.pth']
        assert tool.pretrain_top1(
            f'upernet_boat-swin-nano{variant}_tiny-shapes') == \
            shipped['val_top1']
        assert tool.pretrain_top1(
            f'upernet_boat-swin-nano{variant}-scratch_tiny-shapes') is None


def test_bad_arguments_exit_2(tmp_path):
    proc = ablation(tmp_path, '--work-dir', tmp_path, '--jobs', '0')
    assert proc.returncode == 2 and '--jobs must be at least 1' in proc.stderr
