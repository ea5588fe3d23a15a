"""Faults in training: a run killed in the middle of an epoch and resumed
ends with the weights of an uninterrupted run, and two processes (gloo) end
with the weights of one process at the same total batch.

MMEngine 0.10 alone starts the interrupted epoch again (its trained batches
are trained twice) and does not save the random states (drop path, dropout,
augmentation in the training process); mmboat's ``ExactResumeHook``
(``mmboat/engine/hooks``, enabled in the tiny configs) fixes both.

The fast tests run a toy model in this process (a kill is an exception
after a checkpoint); the slow ones run tools/train.py on the tiny BOAT-Swin
classifier and kill it with SIGKILL.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmboat.datasets import make_tiny_datasets

REPO = Path(__file__).resolve().parents[2]
TINY_CLS = REPO / 'configs' / 'tiny' / 'boat-swin-nano_tiny-shapes.py'

# ------------------------------------------------------------------ toy runs


class ToyData(Dataset):
    """Each sample draws its augmentation from ``numpy``, ``random`` and
    ``torch`` (in the data worker, or in the training process when
    ``num_workers=0``)."""

    def __init__(self, num, augment=True):
        self.num, self.augment = num, augment

    def __len__(self):
        return self.num

    def __getitem__(self, idx):
        x = torch.arange(4.) * (idx + 1) / 10
        if self.augment:
            x = x + torch.from_numpy(np.random.rand(4)).float() + \
                random.random() + torch.rand(4)
        return dict(inputs=x, targets=torch.tensor(float(idx % 3)))


class ToyModel(BaseModel):
    """Dropout (``torch``) and a random scale (``random``) in training."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, inputs, targets=None, mode='tensor'):
        if self.training:
            inputs = self.dropout(inputs) * (1 + random.random())
        out = self.linear(inputs).squeeze(1)
        if mode == 'loss':
            return dict(loss=((out - targets)**2).mean())
        return [dict(pred=p, target=t) for p, t in zip(out, targets)]


class ToyMetric(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results += [
            float((s['pred'] - s['target'])**2) for s in data_samples
        ]

    def compute_metrics(self, results):
        return dict(mse=sum(results) / len(results))


class Killed(Exception):
    pass


class KillAt(Hook):
    """Stops the run after iteration ``at`` (after its checkpoint)."""
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            raise Killed


# 10 samples, batch 2: 5 iterations an epoch, 3 epochs
CASES = {
    # checkpoints every 3 iterations, killed at 8: resumed from iteration 6,
    # one batch into the second epoch
    'mid-epoch':
    dict(loop='epoch', ckpt=dict(by_epoch=False, interval=3)),
    'mid-epoch, no workers':
    dict(loop='epoch', ckpt=dict(by_epoch=False, interval=3), workers=0),
    # a checkpoint at each epoch end, then validation: resumed from epoch 1
    'epoch end, then validation':
    dict(loop='epoch', ckpt=dict(by_epoch=True, interval=1), val=True),
    # checkpoints every 5 iterations: after the last batch of epoch 1, before
    # the end of the epoch (param scheduler step) and its validation
    'last batch of an epoch':
    dict(loop='epoch', ckpt=dict(by_epoch=False, interval=5), val=True),
    # MMEngine's iteration loop (it skips the trained batches itself), with
    # an infinite sampler as in mmseg
    'iteration loop':
    dict(loop='iter', ckpt=dict(by_epoch=False, interval=3), val=True),
}


def toy_runner(work_dir,
               loop,
               ckpt,
               workers=1,
               val=False,
               hook=True,
               kill_at=None,
               resume=False):
    loader = dict(
        # MMEngine's iteration loop sleeps 2 s at each end of a finite sampler
        sampler=dict(
            type='DefaultSampler' if loop == 'epoch' else 'InfiniteSampler',
            shuffle=True),
        batch_size=2,
        num_workers=workers,
        collate_fn=dict(type='default_collate'))
    train_cfg = dict(type='ExactResumeEpochBasedTrainLoop', max_epochs=3,
                     val_interval=1) \
        if loop == 'epoch' else \
        dict(type='IterBasedTrainLoop', max_iters=15, val_interval=4)
    hooks = ([dict(type='ExactResumeHook')] if hook else []) + \
        ([KillAt(kill_at)] if kill_at else [])
    torch.manual_seed(0)  # the model is built before the runner seeds
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy_{uuid.uuid4().hex}',
        train_dataloader=dict(dataset=ToyData(10), **loader),
        val_dataloader=dict(
            dataset=ToyData(4, augment=False),
            **dict(
                loader,
                sampler=dict(type='DefaultSampler', shuffle=False),
                num_workers=0)) if val else None,
        val_evaluator=[ToyMetric()] if val else None,
        val_cfg=dict() if val else None,
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.002, momentum=0.5)),
        param_scheduler=dict(
            type='MultiStepLR', milestones=[1, 2], by_epoch=loop == 'epoch'),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', **ckpt),
            logger=dict(type='LoggerHook', interval=100),
            safe_checkpoint=dict(type='SafeCheckpointHook')),
        custom_hooks=hooks,
        randomness=dict(seed=0),
        resume=resume)


def toy_weights(runner):
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def kill_and_resume(tmp_path, case, **kwargs):
    """(uninterrupted run, resumed run) after a kill at iteration 8."""
    full = toy_runner(tmp_path / 'full', **case, **kwargs)
    full.train()
    killed = toy_runner(tmp_path / 'killed', **case, **kwargs, kill_at=8)
    with pytest.raises(Killed):
        killed.train()
    resumed = toy_runner(tmp_path / 'killed', **case, **kwargs, resume=True)
    resumed.train()
    return full, resumed


@pytest.mark.parametrize('name', CASES)
def test_resume_is_exact(name, tmp_path):
    full, resumed = kill_and_resume(tmp_path, CASES[name])
    assert resumed.iter == full.iter == 15
    # bit for bit: the same batches, drop masks and augmentations
    a, b = toy_weights(full), toy_weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mmengine_alone_trains_the_interrupted_epoch_again(tmp_path):
    """What the hook fixes: without it, the resumed run trains the first
    batch of epoch 2 twice (16 iterations instead of 15) and ends with
    other weights."""
    full, resumed = kill_and_resume(tmp_path, CASES['mid-epoch'], hook=False)
    assert (full.iter, resumed.iter) == (15, 16)
    a, b = toy_weights(full), toy_weights(resumed)
    assert not all(torch.equal(a[k], b[k]) for k in a)


# -------------------------------------------------- tools/train.py, SIGKILL

# Imported by the configs below (their folder is on PYTHONPATH): the first
# hook SIGKILLs its own process right after iteration `at` (after the
# checkpoint of that iteration is written), the second records each
# iteration's loss, averaged over the processes, in WORK_DIR/losses.json.
TEST_HOOKS = '''
import json
import os
import signal

from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SigkillAtIterHook(Hook):
    priority = 'LOWEST'

    def __init__(self, at):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class RecordLossHook(Hook):

    def __init__(self):
        self.losses = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        loss = outputs['loss'].detach().clone()
        all_reduce(loss, op='mean')
        self.losses.append(loss.item())

    def after_train(self, runner):
        if get_dist_info()[0] == 0:
            out = os.path.join(runner.work_dir, 'losses.json')
            with open(out, 'w') as f:
                json.dump(self.losses, f)
'''

EPOCHS, NUM_TRAIN, BATCH = 2, 64, 8  # 8 iterations an epoch, 16 in all
CKPT_EVERY, KILL_AT = 4, 14  # resumed from iteration 12, mid epoch 2

# The tiny classifier as shipped (its custom_hooks included), on a small
# set, with a short schedule, checkpoints every few iterations and no
# validation; deterministic, one thread.
CONFIG = f'''
_base_ = '{TINY_CLS}'
train_dataloader = dict(batch_size={BATCH})
train_cfg = dict(max_epochs={EPOCHS})
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(by_epoch=False, interval={CKPT_EVERY}, max_keep_ckpts=-1))
randomness = dict(seed=0, deterministic=True)
'''


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def train(tmp_path, config, work_dir, *args, procs=1, expect=0):
    """tools/train.py (or tools/dist_train.sh) in ``tmp_path``."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHON=sys.executable,
        PORT=str(free_port()))
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(tmp_path), str(REPO), env.get('PYTHONPATH')) if p)
    if procs == 1:
        command = [sys.executable, REPO / 'tools' / 'train.py', config]
    else:
        command = ['bash', REPO / 'tools' / 'dist_train.sh', config, procs]
    proc = subprocess.run(
        list(map(str, [*command, '--work-dir', work_dir, *args])),
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=300)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def prepare(tmp_path):
    make_tiny_datasets(
        str(tmp_path / 'data' / 'tiny_shapes'),
        tasks=('cls', ),
        sizes=dict(cls=dict(train=(NUM_TRAIN, 64), val=(4, 64))))
    (tmp_path / 'mmboat_test_hooks.py').write_text(TEST_HOOKS)
    (tmp_path / 'cfg.py').write_text(CONFIG)


def with_hooks(tmp_path, name, *hooks):
    """The config of ``tmp_path/cfg.py`` with ``hooks`` added to its
    custom_hooks (written out flat, as MMEngine dumps it)."""
    cfg = Config.fromfile(tmp_path / 'cfg.py')
    cfg.custom_hooks = list(cfg.custom_hooks) + list(hooks)
    imports = cfg.get('custom_imports', dict(imports=[]))
    cfg.custom_imports = dict(
        imports=list(imports['imports']) + ['mmboat_test_hooks'],
        allow_failed_imports=False)
    cfg.dump(tmp_path / name)
    return tmp_path / name


def load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def losses(work_dir):
    """{iteration: loss} from the runs logged in ``work_dir``."""
    found = {}
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in scalars.read_text().splitlines():
            entry = json.loads(line)
            if 'loss' in entry:
                found[entry['step']] = entry['loss']
    return found


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bitwise_exact(tmp_path):
    prepare(tmp_path)
    last = f'iter_{EPOCHS * NUM_TRAIN // BATCH}.pth'

    train(tmp_path, 'cfg.py', 'full')
    killed = with_hooks(tmp_path, 'cfg_killed.py',
                        dict(type='SigkillAtIterHook', at=KILL_AT))
    train(tmp_path, killed, 'run', expect=-signal.SIGKILL)
    saved = {p.name for p in (tmp_path / 'run').glob('iter_*.pth')}
    assert saved == {'iter_4.pth', 'iter_8.pth', 'iter_12.pth'}
    log = train(tmp_path, 'cfg.py', 'run', '--resume')
    assert 'resumed epoch: 1, iter: 12' in log

    # 16 iterations in all, as in the uninterrupted run (MMEngine alone
    # trains epoch 2 from its start again: 20), and the same final state
    # bit for bit: weights, optimizer moments, the losses of iterations
    # 13-16
    assert {p.name for p in (tmp_path / 'run').glob('iter_*.pth')} == \
        saved | {last}
    full, resumed = load(tmp_path / 'full' / last), load(tmp_path / 'run' /
                                                         last)
    assert resumed['meta']['iter'] == full['meta']['iter'] == 16
    for key, value in full['state_dict'].items():
        assert torch.equal(value, resumed['state_dict'][key]), key
    moments = full['optimizer']['state']
    for idx, state in moments.items():
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(state[name],
                               resumed['optimizer']['state'][idx][name])
    full_losses, run_losses = losses(tmp_path / 'full'), losses(tmp_path /
                                                                'run')
    assert sorted(full_losses) == sorted(run_losses) == list(range(1, 17))
    assert full_losses == run_losses


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    """2 gloo processes with batch 4 each against 1 process with batch 8:
    the same samples at each step (DefaultSampler gives rank r the samples
    r, r + 2, ... of the order of the one-process run), averaged gradients.
    Drop path and the random flip are off: each process draws its own
    random numbers (and MMEngine seeds each rank's data workers
    differently), which no two runs of different sizes can share."""
    prepare(tmp_path)
    config = with_hooks(tmp_path, 'cfg_record.py', dict(type='RecordLossHook'))
    no_randomness = [
        'model.backbone.drop_path_rate=0.0',
        'train_dataloader.dataset.pipeline.1.prob=0.0'
    ]
    last = f'iter_{EPOCHS * NUM_TRAIN // BATCH}.pth'

    train(tmp_path, config, 'one', '--cfg-options', *no_randomness)
    log = train(
        tmp_path,
        config,
        'two',
        '--cfg-options',
        *no_randomness,
        f'train_dataloader.batch_size={BATCH // 2}',
        procs=2)
    assert 'the 2 processes train on the CPU with the gloo backend' in log

    one = json.loads((tmp_path / 'one' / 'losses.json').read_text())
    two = json.loads((tmp_path / 'two' / 'losses.json').read_text())
    assert len(one) == len(two) == 16
    # measured: losses within 2e-7, weights within 2e-6 (a qkv bias)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
    full, dist = load(tmp_path / 'one' / last), load(tmp_path / 'two' / last)
    torch.testing.assert_close(
        dist['state_dict'], full['state_dict'], rtol=1e-4, atol=1e-5)
    # each process's random states are in the checkpoint, for its resume
    assert len(dist['mmboat_resume']['rng_states']) == 2
