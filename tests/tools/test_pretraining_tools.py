"""tools/misc/publish_tiny_checkpoint.py and
tools/analysis_tools/plot_pretraining.py on a real (short) stream
pretraining run of tools/train.py."""
import hashlib
import json

import torch
from PIL import Image

from mmboat.datasets import make_tiny_datasets
from mmboat.utils import load_checkpoint_file
from tests.helpers import REPO_ROOT, run_tool

TEACHER = 'resnet18-nano_stream-pretrain_tiny-shapes'


def test_publish_and_plot_a_pretraining_run(tmp_path):
    data = tmp_path / 'data' / 'tiny_shapes'
    make_tiny_datasets(
        data, tasks=['cls'], sizes=dict(cls=dict(train=(4, 64), val=(8, 64))))
    work = tmp_path / 'work'
    proc = run_tool(REPO_ROOT / 'tools' / 'train.py',
                    REPO_ROOT / 'configs' / 'tiny' / f'{TEACHER}.py',
                    '--work-dir', work, '--cfg-options',
                    'train_dataloader.dataset.images_per_epoch=32',
                    'train_dataloader.batch_size=8', 'train_cfg.max_epochs=2',
                    f'val_dataloader.dataset.data_root={data}/imagenet/')
    assert proc.returncode == 0, proc.stderr[-3000:]
    (work / 'commit').write_text('abc123\n')

    shipped = tmp_path / 'shipped'
    script = REPO_ROOT / 'tools' / 'misc' / 'publish_tiny_checkpoint.py'
    for whole in (False, True):
        proc = run_tool(script, work, '--shipped-dir', shipped,
                        *(['--whole-model'] if whole else []))
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = shipped / 'tiny_shapes' / f'{TEACHER}.pth'
        weights = load_checkpoint_file(str(out))['state_dict']
        trained = load_checkpoint_file(str(work / 'epoch_2.pth'))['state_dict']
        parts = ('backbone.', 'head.') if whole else ('backbone.', )
        assert set(weights) == {k for k in trained if k.startswith(parts)}
        assert all(torch.equal(weights[k], trained[k]) for k in weights)
        entry = json.loads(
            (shipped /
             'manifest.json').read_text())[f'tiny_shapes/{TEACHER}.pth']
        assert entry['sha256'] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert (entry['steps'], entry['epochs']) == (8, 2)
        assert entry['commit'] == 'abc123'
        assert entry['config'] == f'configs/tiny/{TEACHER}.py'
        assert 0 <= entry['val_top1'] <= 100 and entry['wall_minutes'] >= 0
        assert entry['command'].endswith(' --whole-model') == whole
    scalars = next(work.glob('*/vis_data/scalars.json')).read_text()
    top1 = [
        json.loads(line)['accuracy/top1'] for line in scalars.splitlines()
        if 'accuracy/top1' in line
    ]
    assert entry['val_top1'] == round(top1[-1], 2)
    # the curve up to the shipped epoch, from the logs: (step, top-1)
    assert entry['val_curve'] == [[4, round(top1[0], 2)],
                                  [8, round(top1[1], 2)]]

    picture = tmp_path / 'curve.png'
    proc = run_tool(
        REPO_ROOT / 'tools' / 'analysis_tools' / 'plot_pretraining.py', work,
        '--out', picture)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Image.open(picture).size == (960, 600)
    # the run with its shipped checkpoint marked (its curve drawn once)
    marked = tmp_path / 'marked.png'
    proc = run_tool(
        REPO_ROOT / 'tools' / 'analysis_tools' / 'plot_pretraining.py', work,
        '--shipped', '--manifest', shipped / 'manifest.json', '--out', marked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (Image.open(marked).tobytes() != Image.open(picture).tobytes())
    # the curves the manifest recorded, once the work dir is gone
    picture.unlink()
    proc = run_tool(
        REPO_ROOT / 'tools' / 'analysis_tools' / 'plot_pretraining.py',
        '--shipped', '--manifest', shipped / 'manifest.json', '--out', picture)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert Image.open(picture).size == (960, 600)
    # a folder that is not a pretraining run is refused with its name
    proc = run_tool(
        REPO_ROOT / 'tools' / 'analysis_tools' / 'plot_pretraining.py',
        tmp_path, '--out', picture)
    assert proc.returncode == 1
    assert f'{tmp_path}: no dumped' in proc.stderr
