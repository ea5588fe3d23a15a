"""MMEngine Runner checkpoints load back (load_from and resume) on
torch >= 2.6 through mmboat's SafeCheckpointHook, weights that do not fit
are refused, and foreign pickles still cannot run code. (That importing
mmboat replaces nothing of MMEngine is in tests/test_imports.py.)"""
import collections
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mmboat.utils.mmengine_compat import load_local_checkpoint


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


SAFE = dict(safe_checkpoint=dict(type='SafeCheckpointHook'))


def load(runner):
    """What ``Runner.train / val / test`` do before their loop: the
    ``before_run`` hooks, then ``load_or_resume``."""
    runner.call_hook('before_run')
    runner.load_or_resume()
    runner.call_hook('before_test')


def make_runner(work_dir, max_epochs, **kwargs):
    """A toy runner; ``load_from`` / ``resume`` also go into its config, as
    ``Runner.from_cfg`` puts them."""
    cfg = {k: kwargs[k] for k in ('load_from', 'resume') if k in kwargs}
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
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1), **SAFE),
        cfg=cfg,
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
    load(runner)
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(v, weights[k])


def test_allowlist_is_open_only_while_loading(trained, tmp_path):
    """The hook leaves torch's allowlist as it found it once the checkpoint
    is loaded; a plain torch.load still refuses MMEngine's objects."""
    ckpt, _ = trained
    before = torch.serialization.get_safe_globals()
    load(make_runner(tmp_path, 2, load_from=str(ckpt)))
    assert torch.serialization.get_safe_globals() == before
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(ckpt, weights_only=True)


def test_resume(trained, tmp_path):
    ckpt, weights = trained
    runner = make_runner(tmp_path, 3, load_from=str(ckpt), resume=True)
    load(runner)
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

    def load_checkpoint(model, path):
        return load_local_checkpoint(path)

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


# --- load_from / resume into a model with an mmboat backbone: the weights
# must fit (mmboat.utils.checkpoint.check_model_fits)


class BoatToyModel(BaseModel):
    """A model with a small mmboat backbone and a linear head."""

    def __init__(self, family='swin', arch=None, out_indices=(1, )):
        super().__init__()
        from mmboat.models import backbones
        archs = dict(
            swin=dict(embed_dims=16, depths=(1, 1), num_heads=(1, 2)),
            cswin=dict(
                embed_dims=16,
                depths=(1, 1),
                num_heads=(2, 4),
                split_sizes=(1, 7)))
        backbone = dict(
            swin=backbones.BOATSwinTransformer,
            cswin=backbones.BOATCSWinTransformer)[family]
        self.backbone = backbone(
            arch=arch or archs[family], out_indices=out_indices)
        self.head = nn.Linear(2, 1)

    def forward(self, *args, **kwargs):
        raise NotImplementedError


def boat_runner(work_dir, model, load_from, **cfg):
    return Runner(
        model=model,
        work_dir=str(work_dir),
        load_from=str(load_from),
        default_hooks=SAFE,
        cfg=dict(cfg, load_from=str(load_from)))


def save_weights(path, model):
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return path


def test_load_from_refuses_weights_of_the_other_family(tmp_path):
    from mmboat.utils import CheckpointError
    ckpt = save_weights(tmp_path / 'cswin.pth', BoatToyModel('cswin'))
    model = BoatToyModel('swin')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    runner = boat_runner(tmp_path, model, ckpt)
    with pytest.raises(CheckpointError) as error:
        load(runner)
    message = str(error.value)
    assert f'checkpoint {ckpt} does not fit the model (BoatToyModel with a '\
        'BOATSwinTransformer backbone)' in message
    assert 'holds BOAT-CSWin weights' in message
    assert 'missing weights (13):\n  backbone.patch_embed.projection.weight' \
        in message
    assert '--allow-partial' in message
    for k, v in runner.model.state_dict().items():  # nothing was loaded
        assert torch.equal(v, before[k]), k


def test_allow_partial_load(tmp_path):
    """allow_partial_load=True loads the weights that fit, with a
    warning that lists the others."""
    from unittest import mock
    source = BoatToyModel('swin')
    weights = {
        k: v
        for k, v in source.state_dict().items() if not k.startswith('head.')
    }
    torch.save(dict(state_dict=weights), tmp_path / 'headless.pth')
    model = BoatToyModel('swin')
    head = model.head.weight.clone()
    runner = boat_runner(
        tmp_path, model, tmp_path / 'headless.pth', allow_partial_load=True)
    with mock.patch('mmengine.logging.print_log') as log:
        load(runner)
    for k, v in weights.items():
        assert torch.equal(runner.model.state_dict()[k], v), k
    assert torch.equal(runner.model.head.weight, head)
    warning = log.call_args.args[0]
    assert 'missing weights (2):\n  head.weight\n  head.bias' in warning
    assert 'allow_partial_load is set' in warning


def test_load_from_checks_only_models_with_an_mmboat_backbone(tmp_path):
    torch.save(
        dict(state_dict={'other.weight': torch.zeros(1)}),
        tmp_path / 'other.pth')
    runner = make_runner(tmp_path, 1, load_from=str(tmp_path / 'other.pth'))
    load(runner)  # MMEngine's warning only, as before
