"""MMEngine Runner checkpoints load back (load_from and resume) on
torch >= 2.6, and foreign pickles still cannot run code."""
import collections
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmboat  # noqa: F401  (registers the checkpoint loader)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, x, y, mode='loss'):
        out = self.linear(torch.stack(x))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(y))**2).mean())
        return out


class ToyData(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(x=torch.full((2, ), float(i)), y=torch.ones(1))


def make_runner(work_dir, max_epochs, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1]),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        **kwargs)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('train')
    runner = make_runner(work_dir, 2)
    runner.train()
    ckpt = work_dir / 'epoch_2.pth'
    assert ckpt.is_file()
    return ckpt, {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_mmengine_checkpoints_hold_non_tensor_objects(trained):
    # the reason stock MMEngine 0.10 fails on torch >= 2.6
    ckpt, _ = trained
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt))
    assert any('HistoryBuffer' in g for g in unsafe)


def test_load_from(trained, tmp_path):
    ckpt, weights = trained
    runner = make_runner(tmp_path, 2, load_from=str(ckpt))
    runner.load_or_resume()
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(v, weights[k])


def test_resume(trained, tmp_path):
    ckpt, weights = trained
    runner = make_runner(tmp_path, 3, load_from=str(ckpt), resume=True)
    runner.load_or_resume()
    assert runner.epoch == 2 and runner.iter == 4
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert lr == pytest.approx(0.001)  # MultiStepLR stepped at epoch 1
    runner.train()
    assert runner.epoch == 3


class Payload:
    marker = None

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_foreign_pickle_cannot_run_code(tmp_path):
    from mmengine.runner import load_checkpoint
    marker = tmp_path / 'ran'
    Payload.marker = str(marker)
    evil = tmp_path / 'evil.pth'
    state_dict = {'linear.weight': torch.zeros(1, 2)}
    torch.save({'state_dict': state_dict, 'meta': Payload()}, evil)
    with pytest.raises(pickle.UnpicklingError, match='run code'):
        load_checkpoint(ToyModel(), str(evil))
    assert not marker.exists()
    # getattr is only allowed on HistoryBuffer's methods
    evil2 = tmp_path / 'evil2.pth'

    class GetattrPayload:

        def __reduce__(self):
            return (getattr, (collections.OrderedDict, 'fromkeys'))

    torch.save({'meta': GetattrPayload()}, evil2)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(ToyModel(), str(evil2))
