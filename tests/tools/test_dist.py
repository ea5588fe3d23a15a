"""tools/dist_train.sh and tools/dist_test.sh: two torchrun processes on the
CPU (gloo) train a small BOAT-Swin classifier, validate it and test its
checkpoint; the Slurm scripts, which need srun, fail with a clear message.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
EPOCHS = 2

# Written beside the config and imported by it: each rank records what it
# trained on, the metrics it was given after each validation, how many
# validation samples it ran and a checksum of its final weights.
RECORD_HOOK = '''
import json
from pathlib import Path

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RecordRankHook(Hook):

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.record = dict(train_images=[], val_samples=0, val_metrics=[])

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.record['train_images'] += [
            s.img_path for s in data_batch['data_samples']]

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        self.record['val_samples'] += len(data_batch['data_samples'])

    def after_val_epoch(self, runner, metrics=None):
        self.record['val_metrics'].append(metrics)

    def after_run(self, runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        self.record['weight_sum'] = float(
            sum(v.double().sum() for v in model.state_dict().values()))
        self.record['world_size'] = runner.world_size
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f'rank{runner.rank}.json').write_text(
            json.dumps(self.record))
'''

CONFIG = '''
_base_ = '{repo}/configs/boat_swin/boat-swin-t_16xb64_in1k.py'
custom_imports = dict(imports=['mmboat', 'record_rank_hook'],
                      allow_failed_imports=False)
data_root = '{data}'
model = dict(
    backbone=dict(arch=dict(_delete_=True, embed_dims=16, depths=(2, 2, 2, 2),
                            num_heads=(1, 2, 4, 8)),
                  pretrain_img_size=64, drop_path_rate=0.),
    head=dict(num_classes=2, in_channels=128),
    train_cfg=None)
data_preprocessor = dict(num_classes=2)
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64)),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='train', pipeline=pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                 data_prefix='val', pipeline=pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs={epochs}, val_interval=1)
param_scheduler = [dict(type='ConstantLR', factor=1.0)]
default_hooks = dict(logger=dict(interval=1))
custom_hooks = [dict(type='RecordRankHook', out_dir='{records}')]
'''


def make_tree(root):
    """8 + 8 training and 5 + 5 validation images of two classes."""
    rng = np.random.default_rng(0)
    for split, n in (('train', 8), ('val', 5)):
        for label, cls in enumerate(('cat', 'dog')):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 80, (64, 64, 3)) + 120 * label
                Image.fromarray(img.astype(np.uint8)).save(folder / f'{i}.png')


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_script(script, *args, cwd, extra_path=None):
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    if extra_path is not None:
        env['PYTHONPATH'] = os.pathsep.join(
            p for p in (str(extra_path), env.get('PYTHONPATH')) if p)
    return subprocess.run(['bash', str(TOOLS / script), *map(str, args)],
                          cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=300)


def check(proc):
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def top1_lines(log, mode):
    """The runner's evaluation summary lines (rank 0 logs them)."""
    return re.findall(rf'Epoch\({mode}\).*accuracy/top1: ([\d.]+)', log)


@pytest.mark.slow
def test_dist_train_and_test_on_two_cpu_processes(tmp_path):
    make_tree(tmp_path / 'data')
    (tmp_path / 'record_rank_hook.py').write_text(RECORD_HOOK)
    config = tmp_path / 'cfg.py'
    config.write_text(CONFIG.format(repo=REPO, data=tmp_path / 'data',
                                    epochs=EPOCHS,
                                    records=tmp_path / 'records'))
    work = tmp_path / 'work'

    log = check(run_script('dist_train.sh', config, 2, '--work-dir', work,
                           cwd=tmp_path, extra_path=tmp_path))
    assert 'the 2 processes train on the CPU with the gloo backend' in log

    # both ranks trained, in step, each on its half of the training set
    ranks = [json.loads((tmp_path / 'records' / f'rank{r}.json').read_text())
             for r in (0, 1)]
    assert [r['world_size'] for r in ranks] == [2, 2]
    train_set = {str(p) for p in (tmp_path / 'data' / 'train').rglob('*.png')}
    for r in ranks:
        assert len(r['train_images']) == EPOCHS * len(train_set) // 2
    half = len(train_set) // 2
    for epoch in range(EPOCHS):
        halves = [set(r['train_images'][epoch * half:(epoch + 1) * half])
                  for r in ranks]
        assert halves[0] | halves[1] == train_set
        assert not halves[0] & halves[1]
    assert ranks[0]['weight_sum'] == ranks[1]['weight_sum']

    # each validation: the 10 images shared out (5 + 5), one evaluation whose
    # metrics both ranks received, one summary line in the log
    assert [r['val_samples'] for r in ranks] == [EPOCHS * 5, EPOCHS * 5]
    assert ranks[0]['val_metrics'] == ranks[1]['val_metrics']
    assert len(ranks[0]['val_metrics']) == EPOCHS
    val_top1 = top1_lines(log, 'val')
    assert len(val_top1) == EPOCHS
    scalars = next(work.glob('*/vis_data/scalars.json')).read_text()
    assert scalars.count('accuracy/top1') == EPOCHS

    # rank 0 saved the weights both ranks ended with
    checkpoint = work / f'epoch_{EPOCHS}.pth'
    state = torch.load(checkpoint, map_location='cpu',
                       weights_only=False)['state_dict']
    assert float(sum(v.double().sum() for v in state.values())) == \
        ranks[0]['weight_sum']

    # two processes test the checkpoint: the last validation's top-1
    log = check(run_script('dist_test.sh', config, checkpoint, 2,
                           '--work-dir', tmp_path / 'test', cwd=tmp_path,
                           extra_path=tmp_path))
    assert 'the 2 processes test on the CPU with the gloo backend' in log
    assert top1_lines(log, 'test') == [val_top1[-1]]


@pytest.mark.parametrize('script, args', [
    ('slurm_train.sh', ('partition', 'job', 'cfg.py', 'work_dir')),
    ('slurm_test.sh', ('partition', 'job', 'cfg.py', 'model.pth')),
])
def test_slurm_scripts_need_srun(script, args, tmp_path):
    if shutil.which('srun'):
        pytest.skip('srun is installed: this checks the message without it')
    proc = subprocess.run(['bash', str(TOOLS / script), *args], cwd=tmp_path,
                          text=True, capture_output=True)
    assert proc.returncode == 1
    assert "'srun' not found" in proc.stderr
    assert 'tools/dist_' in proc.stderr


@pytest.mark.parametrize('script, num_args', [
    ('dist_train.sh', 2), ('dist_test.sh', 3),
    ('slurm_train.sh', 4), ('slurm_test.sh', 4)])
def test_scripts_name_their_arguments(script, num_args, tmp_path):
    assert os.access(TOOLS / script, os.X_OK)
    proc = subprocess.run(['bash', str(TOOLS / script),
                           *['x'] * (num_args - 1)], cwd=tmp_path,
                          text=True, capture_output=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: bash ')
