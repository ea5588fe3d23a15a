"""tools/dist_train.sh and tools/dist_test.sh: two torchrun processes on the
CPU (gloo) train the tiny BOAT-Swin classifier on tiny-shapes, validate it
and test its checkpoint; the Slurm scripts, which need srun, fail with a
clear message.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmboat.datasets import make_tiny_datasets

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
EPOCHS = 2

# Written beside the config and imported by it: each rank records what it
# trained on, the metrics it was given after each validation, how many
# validation samples it ran and a checksum of its weights after training.
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

    def after_train(self, runner):
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

# The tiny classification config with the recording hook as its only custom
# hook (no EMA: the checkpoint holds the trained weights themselves).
CONFIG = """
_base_ = '{repo}/configs/tiny/boat-swin-nano_tiny-shapes.py'
custom_imports = dict(imports=['mmboat', 'record_rank_hook'],
                      allow_failed_imports=False)
custom_hooks = [dict(type='RecordRankHook', out_dir='records')]
"""
# A short schedule, as a user would give it on the command line.
SHORT = ('--cfg-options', f'train_cfg.max_epochs={EPOCHS}',
         'train_cfg.val_interval=1', 'train_dataloader.batch_size=8')
NUM_TRAIN, NUM_VAL = 64, 21  # an odd validation set: one rank gets padding


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run(command, cwd):
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(free_port()),
        OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(  # the recording hook
        p for p in (str(cwd), env.get('PYTHONPATH')) if p)
    proc = subprocess.run(
        list(map(str, command)),
        cwd=cwd,
        env=env,
        text=True,
        capture_output=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def top1_lines(log, mode):
    """The runner's evaluation summary lines (only rank 0 logs)."""
    return re.findall(rf'Epoch\({mode}\).*accuracy/top1: ([\d.]+)', log)


@pytest.mark.slow
def test_dist_train_and_test_on_two_cpu_processes(tmp_path):
    make_tiny_datasets(
        str(tmp_path / 'data' / 'tiny_shapes'),
        tasks=['cls'],
        sizes=dict(cls=dict(train=(NUM_TRAIN, 64), val=(NUM_VAL, 64))))
    (tmp_path / 'record_rank_hook.py').write_text(RECORD_HOOK)
    config = tmp_path / 'cfg.py'
    config.write_text(CONFIG.format(repo=REPO))

    log = run([
        'bash', TOOLS / 'dist_train.sh', config, 2, '--work-dir', 'work',
        *SHORT
    ], tmp_path)
    assert 'the 2 processes train on the CPU with the gloo backend' in log

    # both ranks trained, in step, each on its half of the training set
    ranks = [
        json.loads((tmp_path / 'records' / f'rank{r}.json').read_text())
        for r in (0, 1)
    ]
    assert [r['world_size'] for r in ranks] == [2, 2]
    half = NUM_TRAIN // 2
    for epoch in range(EPOCHS):
        seen = [
            set(r['train_images'][epoch * half:(epoch + 1) * half])
            for r in ranks
        ]
        assert len(seen[0]) == len(seen[1]) == half
        assert len(seen[0] | seen[1]) == NUM_TRAIN
    assert [len(r['train_images']) for r in ranks] == [EPOCHS * half] * 2
    assert ranks[0]['weight_sum'] == ranks[1]['weight_sum']

    # each validation: the images shared out (11 + 10, padded to 11 + 11),
    # evaluated once on the 21 gathered results, whose metrics both ranks
    # received; one summary line in the log and in the work dir's scalars
    assert [r['val_samples'] for r in ranks] == [EPOCHS * 11] * 2
    assert ranks[0]['val_metrics'] == ranks[1]['val_metrics']
    assert len(ranks[0]['val_metrics']) == EPOCHS
    for metrics in ranks[0]['val_metrics']:
        correct = metrics['accuracy/top1'] * NUM_VAL / 100
        assert correct == pytest.approx(round(correct), abs=1e-4)
    val_top1 = top1_lines(log, 'val')
    assert len(val_top1) == EPOCHS
    work = tmp_path / 'work'
    scalars = next(work.glob('*/vis_data/scalars.json')).read_text()
    assert scalars.count('accuracy/top1') == EPOCHS

    # rank 0 saved the weights both ranks ended with
    checkpoint = work / f'epoch_{EPOCHS}.pth'
    state = torch.load(
        checkpoint, map_location='cpu', weights_only=False)['state_dict']
    assert float(sum(v.double().sum() for v in state.values())) == \
        ranks[0]['weight_sum']

    # two test processes give the last validation's top-1, as does one
    log = run([
        'bash', TOOLS / 'dist_test.sh', config, checkpoint, 2, '--work-dir',
        'test2'
    ], tmp_path)
    assert 'the 2 processes test on the CPU with the gloo backend' in log
    assert top1_lines(log, 'test') == [val_top1[-1]]
    log = run([
        sys.executable, TOOLS / 'test.py', config, checkpoint, '--work-dir',
        'test1'
    ], tmp_path)
    assert 'gloo' not in log
    assert top1_lines(log, 'test') == [val_top1[-1]]


@pytest.mark.parametrize('script, args', [
    ('slurm_train.sh', ('partition', 'job', 'cfg.py', 'work_dir')),
    ('slurm_test.sh', ('partition', 'job', 'cfg.py', 'model.pth')),
])
def test_slurm_scripts_need_srun(script, args, tmp_path):
    if shutil.which('srun'):
        pytest.skip('srun is installed: this checks the message without it')
    proc = subprocess.run(['bash', str(TOOLS / script), *args],
                          cwd=tmp_path,
                          text=True,
                          capture_output=True)
    assert proc.returncode == 1
    assert "'srun' not found" in proc.stderr
    assert 'tools/dist_' in proc.stderr


@pytest.mark.parametrize('script, num_args', [('dist_train.sh', 2),
                                              ('dist_test.sh', 3),
                                              ('slurm_train.sh', 4),
                                              ('slurm_test.sh', 4)])
def test_scripts_name_their_arguments(script, num_args, tmp_path):
    assert os.access(TOOLS / script, os.X_OK)
    proc = subprocess.run(
        ['bash', str(TOOLS / script), *['x'] * (num_args - 1)],
        cwd=tmp_path,
        text=True,
        capture_output=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith('usage: bash ')


@pytest.mark.parametrize('script, args, env, message', [
    ('dist_train.sh', ['c.py', '0'], {}, "GPUS must be a whole number >= 1, "
     "got '0'"),
    ('dist_train.sh', ['c.py', 'two'], {}, "GPUS must be a whole number "
     ">= 1, got 'two'"),
    ('dist_test.sh', ['c.py', 'w.pth', '-1'], {}, "GPUS must be a whole "
     "number >= 1, got '-1'"),
    ('dist_train.sh', ['c.py', '2'], dict(NNODES='0'), "NNODES must be a "
     "whole number >= 1, got '0'"),
    ('dist_train.sh', ['c.py', '2'], dict(NNODES='2', NODE_RANK='2'),
     "NODE_RANK must be a whole number from 0 to NNODES - 1 (1), got '2'"),
    ('slurm_train.sh', ['p', 'j', 'c.py', 'w'], dict(GPUS='two'),
     "GPUS must be a whole number >= 1, got 'two'"),
    ('slurm_test.sh', ['p', 'j', 'c.py', 'w.pth'], dict(GPUS_PER_NODE='0'),
     "GPUS_PER_NODE must be a whole number >= 1, got '0'"),
])
def test_scripts_check_their_numbers(script, args, env, message, tmp_path):
    """Refused with the argument named, before torchrun starts."""
    proc = subprocess.run(['bash', str(TOOLS / script), *args],
                          cwd=tmp_path,
                          env=dict(os.environ, PYTHON='false', **env),
                          text=True,
                          capture_output=True)
    assert proc.returncode == 2
    assert message in proc.stderr and 'Traceback' not in proc.stderr
